"""A dataset's quality at a glance: the latest outcome of each check and one overall status.

:func:`dataset_status` is what the dataset's admin page, the quality page and the
API read; it is computed from the recorded results (two metadata queries), never by
running checks.
"""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery

from pipelines.models import Dataset

from .models import Check, CheckResult, CheckRun, Outcome, Severity

# Overall status, worst first; a dataset takes the worst latest outcome of its enabled checks.
FAILED, ERROR, WARNED, PASSED = "failed", "error", "warned", "passed"
NO_CHECKS, NOT_RUN = "no_checks", "not_run"
OVERALL = {Outcome.FAIL: FAILED, Outcome.ERROR: ERROR, Outcome.WARN: WARNED, Outcome.PASS: PASSED}
RANK = {FAILED: 0, ERROR: 1, WARNED: 2, NOT_RUN: 3, PASSED: 4, NO_CHECKS: 5}
NEVER = "never"  # the latest outcome of a check that has not run yet


def latest_results(checks) -> dict[int, CheckResult]:
    """The most recent result of each check, by check id (checks that never ran are absent)."""
    latest = Subquery(
        CheckResult.objects.filter(check_ref=OuterRef("pk")).order_by("-created_at", "-id").values("pk")[:1]
    )
    ids = [i for i in checks.annotate(_latest=latest).values_list("_latest", flat=True) if i is not None]
    return {r.check_ref_id: r for r in CheckResult.objects.filter(pk__in=ids).select_related("check_run")}


def check_status(check: Check, result: CheckResult | None) -> dict[str, Any]:
    return {
        "id": check.pk,
        "name": check.name,
        "kind": check.kind,
        "severity": check.severity,
        "enabled": check.enabled,
        "outcome": result.outcome if result else NEVER,
        "failing_rows": result.failing_rows if result else None,
        "failing_share": result.failing_share if result else None,
        "rows_quarantined": result.rows_quarantined if result else 0,
        "message": result.message if result else "",
        "checked_at": result.created_at.isoformat() if result else None,
        "check_run": result.check_run_id if result else None,
        "result": result.pk if result else None,
    }


def overall(outcomes: list[str]) -> str:
    """The dataset's status from its enabled checks' latest outcomes (``never`` for one not run yet)."""
    if not outcomes:
        return NO_CHECKS
    statuses = [OVERALL.get(o, NOT_RUN) for o in outcomes]
    return min(statuses, key=RANK.__getitem__)


def dataset_status(dataset: Dataset, *, outcome: str | None = None, severity: str | None = None) -> dict[str, Any]:
    """The latest status of each check of ``dataset`` and an overall quality status.

    ``status`` is ``failed``, ``error``, ``warned``, ``not_run`` (a check never ran),
    ``passed`` or ``no_checks``, from the enabled checks only. ``outcome``
    (``pass``/``warn``/``fail``/``error``/``never``) and ``severity`` filter the
    ``checks`` listed; the overall status and ``counts`` always cover them all.
    """
    if outcome is not None and outcome not in (*Outcome.values, NEVER):
        raise ValueError(f"Unknown outcome {outcome!r}; choose one of: {', '.join([*Outcome.values, NEVER])}.")
    if severity is not None and severity not in Severity.values:
        raise ValueError(f"Unknown severity {severity!r}; choose one of: {', '.join(Severity.values)}.")
    checks = list(Check.objects.filter(dataset=dataset).order_by("name"))
    latest = latest_results(Check.objects.filter(dataset=dataset))
    last_run = CheckRun.objects.filter(dataset=dataset).order_by("-started_at", "-id").first()
    return _status(dataset, checks, latest, last_run, outcome=outcome, severity=severity)


def dataset_statuses(datasets: list[Dataset]) -> dict[int, dict[str, Any]]:
    """:func:`dataset_status` of many datasets, by id, in four queries whatever their number (API lists)."""
    ids = [d.pk for d in datasets]
    checks: dict[int, list[Check]] = {pk: [] for pk in ids}
    for check in Check.objects.filter(dataset_id__in=ids).order_by("name"):
        checks[check.dataset_id].append(check)
    latest = latest_results(Check.objects.filter(dataset_id__in=ids))
    newest = CheckRun.objects.filter(dataset=OuterRef("pk")).order_by("-started_at", "-id").values("pk")[:1]
    run_ids = dict(Dataset.objects.filter(pk__in=ids).annotate(_last=Subquery(newest)).values_list("pk", "_last"))
    runs = CheckRun.objects.in_bulk([i for i in run_ids.values() if i])
    return {d.pk: _status(d, checks[d.pk], latest, runs.get(run_ids.get(d.pk))) for d in datasets}


def _status(
    dataset: Dataset,
    checks: list[Check],
    latest: dict[int, CheckResult],
    last_run: CheckRun | None,
    *,
    outcome: str | None = None,
    severity: str | None = None,
) -> dict[str, Any]:
    rows = [check_status(c, latest.get(c.pk)) for c in checks]
    enabled = [r for r in rows if r["enabled"]]
    counts = {key: 0 for key in [*Outcome.values, NEVER]}
    for r in enabled:
        counts[r["outcome"]] += 1
    checked = [r["checked_at"] for r in enabled if r["checked_at"]]
    listed = [
        r for r in rows
        if (outcome is None or r["outcome"] == outcome) and (severity is None or r["severity"] == severity)
    ]
    return {
        "dataset": dataset.name,
        "table": dataset.qualified_table,
        "status": overall([r["outcome"] for r in enabled]),
        "checked_at": max(checked) if checked else None,
        "counts": counts,
        "checks": listed,
        "last_check_run": None if last_run is None else {
            "id": last_run.pk,
            "status": last_run.status,
            "trigger": last_run.trigger,
            "started_at": last_run.started_at.isoformat(),
            "rows_checked": last_run.rows_checked,
            "rows_quarantined": last_run.rows_quarantined,
        },
    }
