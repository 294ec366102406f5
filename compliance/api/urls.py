"""Routes the project router registers under /api/v1/ (contributed as api_routes in the AppConfig), and the dataset's PII summary."""

from . import serializers, views

routes = [
    ("pii-findings", views.PiiFindingViewSet, "piifinding"),
    ("column-policies", views.ColumnPolicyViewSet, "columnpolicy"),
]

# Shown with every dataset of /api/v1/datasets/ (contributed as api_dataset_fields in the AppConfig).
dataset_fields = [("pii", serializers.dataset_pii_field)]
