from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
    # What alerts adds to the others (atlas.extensions): a run hook that writes a finished run's events
    # in the transaction of its end, its endpoints and its outbox backlog in /metrics. What it alerts on
    # beyond runs, the other apps contribute (alert_sources, run_alert_events): alerts imports none of them.
    contributes = {
        "step_hooks": ["alerts.hooks.AlertHook"],
        "definition_kinds": ["alerts.as_code.KINDS"],
        "api_routes": ["alerts.api.urls.routes"],
        "metric_sources": ["alerts.metrics.alert_metrics"],
    }
