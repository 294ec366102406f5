"""Routes the project router registers under /api/v1/ (contributed as ``api_routes`` in the AppConfig)."""

from . import views

routes = [
    ("sources", views.SourceViewSet, "source"),
    ("datasets", views.DatasetViewSet, "dataset"),
    ("pipelines", views.PipelineViewSet, "pipeline"),
    ("steps", views.StepViewSet, "step"),
    ("runs", views.PipelineRunViewSet, "pipelinerun"),
    ("step-runs", views.StepRunViewSet, "steprun"),
    ("backfills", views.BackfillViewSet, "backfill"),
]
