"""Routes the project router (``atlas.api.urls``) registers under /api/v1/."""

from . import views

routes = [
    ("sources", views.SourceViewSet, "source"),
    ("datasets", views.DatasetViewSet, "dataset"),
    ("pipelines", views.PipelineViewSet, "pipeline"),
    ("steps", views.StepViewSet, "step"),
    ("runs", views.PipelineRunViewSet, "pipelinerun"),
    ("step-runs", views.StepRunViewSet, "steprun"),
]
