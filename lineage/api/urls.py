from django.urls import path

from . import views

# Registered by the project router under /api/v1/ (contributed as api_routes in the AppConfig).
routes = [("dataset-lineage", views.DatasetLineageViewSet, "dataset-lineage")]

urlpatterns = [
    path("", views.LineageView.as_view(), name="lineage-api"),
]
