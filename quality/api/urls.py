"""Routes the project router registers under /api/v1/ (contributed as api_routes in the AppConfig), and the dataset's check status."""

from . import serializers, views

routes = [
    ("checks", views.CheckViewSet, "check"),
    ("check-results", views.CheckResultViewSet, "checkresult"),
    ("quarantine", views.QuarantineViewSet, "quarantine"),
]

# Shown with every dataset of /api/v1/datasets/ (contributed as api_dataset_fields in the AppConfig).
dataset_fields = [("quality", serializers.dataset_quality_field)]
