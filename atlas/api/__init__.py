"""The pieces every Atlas API shares: permissions, errors, paging, throttling, schema.

App APIs (``pipelines/api/``, later ``quality/api/`` …) declare viewsets and
register them on :data:`atlas.api.urls.router`; everything cross-cutting is
configured once here and in ``REST_FRAMEWORK`` (settings).
"""
