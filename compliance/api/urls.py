"""Routes the project router (``atlas.api.urls``) registers under /api/v1/, and the dataset's PII summary."""

from . import serializers, views

routes = [
    ("pii-findings", views.PiiFindingViewSet, "piifinding"),
    ("column-policies", views.ColumnPolicyViewSet, "columnpolicy"),
]

# Shown with every dataset of /api/v1/datasets/ (atlas.api.extensions).
dataset_fields = {"pii": serializers.dataset_pii_field}
