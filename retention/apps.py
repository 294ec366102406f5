from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Retention and records of processing"
    # What retention adds to the others (atlas.extensions): its metrics and endpoints.
    contributes = {
        "background_tasks": ["retention.background.KINDS"],
        "definition_kinds": ["retention.as_code.KINDS"],
        "metric_sources": ["retention.metrics.retention_metrics"],
        "api_routes": ["retention.api.urls.routes"],
        "dataset_admin": ["retention.dataset_admin.DatasetRetention"],
        "dataset_panels": ["retention.panels.dataset_panel"],
    }
