from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "quality"
    verbose_name = "Quality"
    # What quality adds to the others (atlas.extensions): the gate on every staged table, its results as
    # lineage assertions and metrics, its endpoints and the datasets' check status in the API.
    contributes = {
        "overview_sections": ["quality.overview.checks_section", "quality.overview.freshness_section"],
        "step_hooks": ["quality.hooks.QualityGate"],
        "step_reads": ["quality.dependencies.step_reads"],
        "step_row_reads": ["quality.dependencies.step_row_reads"],
        "step_versions": ["quality.versions.step_versions"],
        "lineage_assertions": ["quality.hooks.lineage_assertions"],
        "metric_sources": ["quality.metrics.quality_metrics", "quality.metrics.freshness_metrics"],
        "api_routes": ["quality.api.urls.routes"],
        "api_dataset_fields": ["quality.api.urls.dataset_fields"],
        "dataset_panels": ["quality.panels.dataset_panel"],
        "dataset_tools": ["quality.panels.dataset_tool"],
        "run_panels": ["quality.panels.run_panel"],
        "metadata_pruners": ["quality.housekeeping.prune_check_runs"],
        "run_alert_events": ["quality.alerts.run_events"],
        "alert_sources": ["quality.alerts.freshness_conditions"],
        "definition_kinds": ["quality.as_code.KINDS"],
    }
