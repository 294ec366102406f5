"""Routes the project router (``atlas.api.urls``) registers under /api/v1/."""

from . import views

routes = [
    ("retention-policies", views.RetentionPolicyViewSet, "retentionpolicy"),
    ("retention-runs", views.RetentionRunViewSet, "retentionrun"),
    ("processing-records", views.ProcessingRecordViewSet, "processingrecord"),
]
