"""The browsable API, with breadcrumbs that name only real endpoints.

DRF builds the breadcrumbs by resolving every prefix of the path; ``/api/v1``
(no trailing slash) resolves to the API's catch-all 404 view
(:func:`atlas.api.exceptions.not_found`), which the stock renderer listed as a
red "Not Found" first crumb.
"""

from __future__ import annotations

from django.urls import Resolver404, resolve
from rest_framework.renderers import BrowsableAPIRenderer as DRFBrowsableAPIRenderer


def _is_catch_all(url: str) -> bool:
    from .exceptions import (
        not_found,  # not at import: DRF imports the renderers while rest_framework.views loads
    )

    try:
        match = resolve(url.split("?", 1)[0])
    except Resolver404:
        return True
    return getattr(match.func, "cls", None) is getattr(not_found, "cls", object())


class BrowsableAPIRenderer(DRFBrowsableAPIRenderer):
    def get_breadcrumbs(self, request):
        return [(name, url) for name, url in super().get_breadcrumbs(request) if not _is_catch_all(url)]
