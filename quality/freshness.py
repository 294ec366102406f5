"""The state of every freshness expectation: one definition, read by ``/metrics`` and by alerts.

A dataset's freshness expectation is an enabled ``freshness`` check: its
``max_age_hours`` is the error age (the check's severity applies beyond it),
``warn_after_hours`` an optional warn age. Beat evaluates them
(``quality.check_freshness``); the latest result of each check is its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Subquery

from .models import Check, CheckKind, CheckResult, Outcome


@dataclass(frozen=True)
class FreshnessState:
    check_id: int
    check: str
    dataset_id: int
    dataset: str
    layer: str
    max_age_hours: Any
    warn_after_hours: Any
    outcome: str | None  # of the latest evaluation; None: not evaluated yet
    check_run_id: int | None
    age_hours: float | None

    @property
    def breached(self) -> bool:
        """Not fresh: the latest evaluation did not pass (a warning, a violation or an error)."""
        return self.outcome not in (None, Outcome.PASS)


def states() -> list[FreshnessState]:
    """Every enabled freshness check with its latest outcome, by dataset then check name."""
    latest = CheckResult.objects.filter(check_ref=OuterRef("pk")).order_by("-created_at", "-pk")
    rows = (
        Check.objects.filter(kind=CheckKind.FRESHNESS, enabled=True)
        .annotate(
            latest=Subquery(latest.values("outcome")[:1]),
            latest_run=Subquery(latest.values("check_run_id")[:1]),
            latest_observed=Subquery(latest.values("observed")[:1]),
        )
        .values_list("pk", "name", "dataset_id", "dataset__name", "dataset__layer", "params", "latest",
                     "latest_run", "latest_observed")
        .order_by("dataset__name", "name")
    )
    out = []
    for pk, name, dataset_id, dataset, layer, params, outcome, run_id, observed in rows:
        params = params or {}
        age = observed.get("age_hours") if isinstance(observed, dict) else None
        out.append(FreshnessState(
            pk, name, dataset_id, dataset, layer, params.get("max_age_hours"), params.get("warn_after_hours"),
            outcome, run_id, age if isinstance(age, int | float) else None,
        ))
    return out
