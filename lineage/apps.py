from django.apps import AppConfig


class LineageConfig(AppConfig):
    name = "lineage"
    verbose_name = "Lineage"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from pipelines.models import Step

        from .signals import step_saved

        post_save.connect(step_saved, sender=Step, dispatch_uid="lineage.step_saved")
