from django.apps import AppConfig


class LineageConfig(AppConfig):
    name = "lineage"
    verbose_name = "Lineage"
    # What lineage adds to the others (atlas.extensions): events for every run and step, the graph kept
    # current, the receiver and the graph in the API, the outbox backlog in /metrics, the dataset page's link.
    contributes = {
        "overview_sections": ["lineage.overview.section"],
        "step_hooks": ["lineage.hooks.LineageHook"],
        "step_saved": ["lineage.hooks.step_saved"],
        "metric_sources": ["lineage.metrics.lineage_metrics"],
        "urls": [("api/v1/lineage", "lineage.api.urls")],
        "api_routes": ["lineage.api.urls.routes"],
        "dataset_tools": ["lineage.panels.dataset_tool"],
        "metadata_pruners": ["lineage.housekeeping.prune_lineage"],
    }
