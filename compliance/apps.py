from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"
    # What compliance adds to the others (atlas.extensions): column policies in every refine step, the
    # PII gate, a scan after every ingest; the row masker every page and endpoint showing rows uses;
    # findings in /metrics; its endpoints and the datasets' PII summary in the API; PII and policies to lineage.
    contributes = {
        "overview_sections": ["compliance.overview.section"],
        "background_tasks": ["compliance.background.KINDS"],
        "definition_kinds": ["compliance.as_code.KINDS"],
        "step_hooks": ["compliance.hooks.PiiHook"],
        "step_versions": ["compliance.versions.step_versions"],
        "run_panels": ["compliance.scan_tasks.run_panel"],
        "worker_start": ["compliance.scan_tasks.warm_up"],
        "row_masker": ["compliance.masking.mask_rows"],
        "select_masker": ["compliance.masking.mask_select_rows"],
        "request_scopes": ["compliance.masking.request_scope"],
        "metric_sources": ["compliance.metrics.compliance_metrics"],
        "api_routes": ["compliance.api.urls.routes"],
        "api_dataset_fields": ["compliance.api.urls.dataset_fields"],
        "dataset_admin": ["compliance.dataset_admin.DatasetPiiScan"],
        "dataset_tools": ["compliance.dataset_admin.dataset_tool"],
        "metadata_pruners": ["compliance.housekeeping.prune_scans"],
        "alert_sources": ["compliance.alerts.findings_awaiting_review"],
        "pii_columns": ["compliance.lineage_facts.pii_columns"],
    }
