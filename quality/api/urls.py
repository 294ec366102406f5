"""Routes the project router (``atlas.api.urls``) registers under /api/v1/, and the dataset's check status."""

from . import serializers, views

routes = [
    ("checks", views.CheckViewSet, "check"),
    ("check-results", views.CheckResultViewSet, "checkresult"),
    ("quarantine", views.QuarantineViewSet, "quarantine"),
]

# Shown with every dataset of /api/v1/datasets/ (atlas.api.extensions).
dataset_fields = {"quality": serializers.dataset_quality_field}
