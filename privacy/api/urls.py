"""Routes the project router (``atlas.api.urls``) registers under /api/v1/."""

from . import views

routes = [
    ("dsr-requests", views.RequestViewSet, "datasubjectrequest"),
    ("subject-keys", views.SubjectKeyViewSet, "subjectkey"),
    ("tombstones", views.TombstoneViewSet, "tombstone"),
]
