"""Routes the project router registers under /api/v1/ (contributed as ``api_routes`` in the AppConfig)."""

from . import views

routes = [
    ("dsr-requests", views.RequestViewSet, "datasubjectrequest"),
    ("subject-keys", views.SubjectKeyViewSet, "subjectkey"),
    ("tombstones", views.TombstoneViewSet, "tombstone"),
]
