from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy (data-subject requests)"
    # What privacy adds to the others (atlas.extensions): erased subjects kept out of every ingest; its endpoints.
    contributes = {
        "overview_sections": ["privacy.overview.section"],
        "dataset_panels": ["privacy.panels.dataset_panel"],
        "background_tasks": ["privacy.background.KINDS"],
        "step_hooks": ["privacy.hooks.TombstoneGuard"],
        "step_versions": ["privacy.versions.step_versions"],
        "api_routes": ["privacy.api.urls.routes"],
        "metric_sources": ["privacy.metrics.subject_request_metrics"],
        "alert_sources": ["privacy.alerts.overdue_requests"],
    }
