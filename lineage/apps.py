from django.apps import AppConfig


class LineageConfig(AppConfig):
    name = "lineage"
    verbose_name = "Lineage"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from pipelines import runner
        from pipelines.models import Step

        from . import hooks
        from .signals import step_saved

        post_save.connect(step_saved, sender=Step, dispatch_uid="lineage.step_saved")
        # Events are stored in the runner's transaction that records each new status (the outbox).
        runner.step_state_changed.connect(hooks.step_state_changed, dispatch_uid="lineage.step_state_changed")
        runner.run_state_changed.connect(hooks.run_state_changed, dispatch_uid="lineage.run_state_changed")
