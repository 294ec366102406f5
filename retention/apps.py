from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Retention and records of processing"

    def ready(self) -> None:
        from atlas.metrics import register_source

        from .metrics import retention_metrics

        register_source(retention_metrics)
