from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "pipelines"
    verbose_name = "Pipelines"
    # What pipelines adds to the project (atlas.extensions); the runner, its admin and API read what the
    # other apps contribute from the same registry.
    contributes = {
        "overview_sections": ["pipelines.overview.section"],
        "metric_sources": [
            "pipelines.metrics.pipeline_run_metrics",
            "pipelines.metrics.step_metrics",
            "pipelines.metrics.dataset_metrics",
        ],
        "api_routes": ["pipelines.api.urls.routes"],
        "metadata_pruners": ["pipelines.housekeeping.prune_runs"],
        "run_panels": ["pipelines.timeline.run_panel", "pipelines.backfill_admin.run_interval_panel"],
        "definition_kinds": ["pipelines.as_code.KINDS"],
    }

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
