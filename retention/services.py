"""Retention as plain functions: validate a policy, check a dataset, apply a policy, apply them all.

The admin, the API, the ``retention`` command and the daily beat task call
these same functions ("one behaviour, four doors"); every application leaves a
:class:`RetentionRun` and an audit event, whether it removed rows or failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from atlas import audit
from atlas.warehouse import WarehouseError, get_warehouse
from pipelines.models import Dataset, Layer

from . import expiry
from .models import RetentionPolicy, RetentionRun

logger = logging.getLogger(__name__)

MAX_PERIOD_DAYS = 36_600  # a hundred years: beyond that it is a typo, not a policy


class PolicyError(Exception):
    """A policy that cannot be applied; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class RetentionError(Exception):
    """A retention request that cannot go on (unknown dataset, no policy, …)."""


# --- validation ----------------------------------------------------------------------
def dataset_columns(dataset: Dataset) -> dict[str, str]:
    """Column name → type, from the warehouse when the table exists, else as last recorded."""
    try:
        wh = get_warehouse()
        if wh.table_exists(dataset.layer, dataset.table):
            return {c.name: c.type for c in wh.columns(dataset.layer, dataset.table)}
    except WarehouseError as exc:
        logger.warning("Cannot read the columns of %s: %s", dataset.qualified_table, exc)
    return dict(dataset.columns.values_list("name", "data_type"))


def column_kind(dataset: Dataset, column: str, columns: dict[str, str] | None = None) -> str:
    """``timestamp`` or ``text`` for a usable column; raises PolicyError otherwise."""
    columns = dataset_columns(dataset) if columns is None else columns
    if not columns:
        raise PolicyError(
            {
                "column": f"The columns of {dataset.name} are not known yet: load it once, then set its retention."
            }
        )
    if column not in columns:
        raise PolicyError(
            {
                "column": f"{dataset.name} has no column {column!r} (columns: {', '.join(sorted(columns))})."
            }
        )
    kind = expiry.type_kind(columns[column])
    if kind is None:
        raise PolicyError(
            {
                "column": f"{column} is {columns[column] or 'of unknown type'}: retention needs a date or timestamp"
                " column, an ingestion column (_ingested_at) or text holding ISO 8601 timestamps."
            }
        )
    return kind


def validate_policy(
    dataset: Dataset, column: str, period_days: Any, action: str, *, columns_may_be_unknown: bool = False
) -> str:
    """Check a policy against its dataset; return the column's kind (``timestamp``/``text``).

    ``columns_may_be_unknown``: a dataset never loaded takes the policy as it is (a project
    applied before the first run); its column is checked once the columns are known.
    """
    errors: dict[str, str] = {}
    if not isinstance(period_days, int) or isinstance(period_days, bool) or period_days < 1:
        errors["period_days"] = "Give a period of at least 1 day."
    elif period_days > MAX_PERIOD_DAYS:
        errors["period_days"] = (
            f"A period above {MAX_PERIOD_DAYS} days (a hundred years) is not a retention."
        )
    if action not in RetentionPolicy.Action.values:
        errors["action"] = f"Choose one of: {', '.join(RetentionPolicy.Action.values)}."
    kind = None
    if not (column or "").strip():
        errors["column"] = "Name the timestamp column the period runs from (e.g. _ingested_at)."
    else:
        columns = dataset_columns(dataset)
        if columns or not columns_may_be_unknown:
            try:
                kind = column_kind(dataset, column, columns)
            except PolicyError as exc:
                errors.update(exc.errors)
    if errors:
        raise PolicyError(errors)
    return kind or "timestamp"


def save_policy(
    policy: RetentionPolicy, *, actor=None, created: bool | None = None
) -> RetentionPolicy:
    """Validate, save and audit a policy (admin and API save through here)."""
    validate_policy(policy.dataset, policy.column, policy.period_days, policy.action)
    created = policy.pk is None if created is None else created
    if actor is not None and getattr(actor, "is_authenticated", False):
        policy.updated_by = actor
    with transaction.atomic():
        policy.save()
        audit.record(
            "retention.policy_created" if created else "retention.policy_changed",
            actor=actor,
            target=policy.dataset,
            column=policy.column,
            period_days=policy.period_days,
            policy_action=policy.action,
            enabled=policy.enabled,
        )
    return policy


def delete_policy(policy: RetentionPolicy, *, actor=None) -> None:
    with transaction.atomic():
        audit.record(
            "retention.policy_deleted",
            actor=actor,
            target=policy.dataset,
            column=policy.column,
            period_days=policy.period_days,
        )
        policy.delete()


# --- status --------------------------------------------------------------------------
def refresh_status(policy: RetentionPolicy, *, now=None) -> RetentionPolicy:
    """Compute from the warehouse whether the dataset holds rows past its retention; store it."""
    cutoff = policy.cutoff(now)
    dataset = policy.dataset
    fields = {"checked_at": timezone.now(), "status_error": ""}
    try:
        kind = column_kind(dataset, policy.column)
        found = expiry.inspect(
            get_warehouse(),
            dataset.layer,
            dataset.table,
            policy.column,
            kind,
            cutoff,
            explore=dataset.layer == Layer.EXPLORE,
        )
    except (PolicyError, WarehouseError) as exc:
        fields.update(status=RetentionPolicy.Status.ERROR, status_error=str(exc))
    else:
        if not found.exists or found.rows == 0:
            status = RetentionPolicy.Status.EMPTY
        elif found.expired_rows:
            status = RetentionPolicy.Status.OVERDUE
        else:
            status = RetentionPolicy.Status.WITHIN
        fields.update(
            status=status,
            oldest_value=found.oldest,
            expired_rows=found.expired_rows,
            unparseable_rows=found.unparseable_rows,
        )
    RetentionPolicy.objects.filter(pk=policy.pk).update(**fields)
    for key, value in fields.items():
        setattr(policy, key, value)
    return policy


def refresh_all(*, enabled: bool | None = None) -> int:
    """Refresh the status of the policies (all, or only enabled/disabled ones); return how many are overdue."""
    qs = RetentionPolicy.objects.select_related("dataset")
    if enabled is not None:
        qs = qs.filter(enabled=enabled)
    return sum(refresh_status(policy).is_overdue for policy in qs)


# --- applying ------------------------------------------------------------------------
def apply_policy(
    policy: RetentionPolicy, *, trigger: str = RetentionRun.Trigger.MANUAL, actor=None, now=None
) -> RetentionRun:
    """Remove the dataset's expired rows (or only report them); record and audit the run.

    Never raises for a warehouse or validation failure: the run is recorded as
    failed with the error, and the warehouse is left as it was (one transaction).
    """
    now = now or timezone.now()
    dataset = policy.dataset
    run = RetentionRun.objects.create(
        dataset=dataset,
        policy=policy,
        trigger=trigger,
        triggered_by=actor if getattr(actor, "is_authenticated", False) else None,
        status=RetentionRun.Status.RUNNING,
        action=policy.action,
        column=policy.column,
        period_days=policy.period_days,
        cutoff=policy.cutoff(now),
        started_at=timezone.now(),
    )
    wh = None
    try:
        kind = column_kind(dataset, policy.column)
        wh = get_warehouse()
        if not wh.table_exists(dataset.layer, dataset.table):
            run.finish(
                RetentionRun.Status.SKIPPED,
                method="none",
                details={"reason": f"{dataset.qualified_table} does not exist yet."},
                save=False,
            )
        elif policy.action == RetentionPolicy.Action.REPORT:
            found = expiry.inspect(
                wh,
                dataset.layer,
                dataset.table,
                policy.column,
                kind,
                run.cutoff,
                explore=dataset.layer == Layer.EXPLORE,
            )
            run.finish(
                RetentionRun.Status.SUCCEEDED,
                method="report",
                rows_expired=found.expired_rows,
                unparseable_rows=found.unparseable_rows,
                save=False,
            )
        else:
            result = expiry.expire(
                wh,
                dataset.layer,
                dataset.table,
                policy.column,
                kind,
                run.cutoff,
                dataset_key=dataset.qualified_table,
                explore=dataset.layer == Layer.EXPLORE,
            )
            run.finish(
                RetentionRun.Status.SUCCEEDED,
                method=result.method,
                rows_expired=result.rows_expired,
                rows_removed=result.rows_removed,
                partitions_dropped=result.partitions_dropped,
                quarantine_rows_removed=result.quarantine_rows_removed,
                unparseable_rows=result.unparseable_rows,
                details={
                    "batches_expired": result.batches_expired,
                    "straddling_partitions": result.straddling_partitions,
                },
                save=False,
            )
    except (PolicyError, WarehouseError) as exc:
        run.fail(str(exc), save=False)
        logger.warning("Retention of %s failed: %s", dataset.name, exc)
    except Exception as exc:  # recorded too: the daily job goes on with the next dataset
        run.fail(f"Unexpected error: {exc!r}", save=False)
        logger.exception("Retention of %s failed unexpectedly", dataset.name)
    run.save()
    if run.rows_removed and run.status == RetentionRun.Status.SUCCEEDED:
        # The dataset's count as of its last load, less what went (no second scan).
        Dataset.objects.filter(pk=dataset.pk, row_count__isnull=False).update(
            row_count=Greatest(F("row_count") - run.rows_removed, Value(0))
        )
        # Trimmed outside a step: what reads or produces it is not up to date (pipelines.freshness)
        Dataset.objects.filter(pk=dataset.pk).update(data_version=F("data_version") + 1)
    audit.record(
        "retention.applied" if run.status != RetentionRun.Status.FAILED else "retention.failed",
        actor=actor if actor is not None else trigger,
        target=dataset,
        run=run.pk,
        trigger=trigger,
        status=run.status,
        cutoff=run.cutoff,
        column=run.column,
        method=run.method,
        rows_removed=run.rows_removed,
        partitions_dropped=run.partitions_dropped,
        quarantine_rows_removed=run.quarantine_rows_removed,
        unparseable_rows=run.unparseable_rows,
        error=run.error,
    )
    refresh_status(policy, now=now)
    return run


def policy_for(dataset: Dataset | str) -> RetentionPolicy:
    """The policy of a dataset (given or named); RetentionError when there is none."""
    if isinstance(dataset, str):
        found = Dataset.objects.filter(name=dataset).first()
        if found is None:
            raise RetentionError(f"No dataset named {dataset!r}.")
        dataset = found
    policy = RetentionPolicy.objects.select_related("dataset").filter(dataset=dataset).first()
    if policy is None:
        raise RetentionError(f"{dataset.name} has no retention policy.")
    return policy


@dataclass
class Summary:
    runs: list[RetentionRun]

    @property
    def failed(self) -> list[RetentionRun]:
        return [r for r in self.runs if r.status == RetentionRun.Status.FAILED]

    @property
    def rows_removed(self) -> int:
        return sum(r.rows_removed for r in self.runs)


def apply_all(*, trigger: str = RetentionRun.Trigger.SCHEDULE, actor=None, now=None) -> Summary:
    """Apply every enabled policy (the daily job); one failing dataset does not stop the others."""
    policies = (
        RetentionPolicy.objects.filter(enabled=True)
        .select_related("dataset")
        .order_by("dataset__name")
    )
    return Summary([apply_policy(p, trigger=trigger, actor=actor, now=now) for p in policies])
