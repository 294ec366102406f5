"""Routes the project router registers under /api/v1/ (contributed as api_routes in the AppConfig)."""

from . import views

routes = [
    ("alert-rules", views.AlertRuleViewSet, "alertrule"),
    ("alert-events", views.AlertEventViewSet, "alertevent"),
    ("alert-deliveries", views.DeliveryViewSet, "alertdelivery"),
]
