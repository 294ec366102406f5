"""Routes the project router registers under /api/v1/ (contributed as ``api_routes`` in the AppConfig)."""

from . import views

routes = [
    ("retention-policies", views.RetentionPolicyViewSet, "retentionpolicy"),
    ("retention-runs", views.RetentionRunViewSet, "retentionrun"),
    ("processing-records", views.ProcessingRecordViewSet, "processingrecord"),
]
