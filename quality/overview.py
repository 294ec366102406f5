"""Quality's part of the admin's home: failing checks, and stale datasets (freshness).

Contributed as ``overview_sections`` (atlas.overview).
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse

from atlas import humanize
from atlas.overview import BAD, OK, WARN, Item, Section

from . import freshness
from .models import Check, CheckKind, Outcome
from .status import latest_results

SHOWN = 8
OUTCOME_WORDS = {Outcome.FAIL: "failed", Outcome.ERROR: "could not run", Outcome.WARN: "warned"}


def failing_checks() -> tuple[list[tuple[Check, object]], list[tuple[Check, object]]]:
    """Enabled checks whose latest result failed or errored (worst first), and those that warned."""
    checks = Check.objects.enabled().exclude(kind=CheckKind.FRESHNESS).select_related("dataset")
    latest = latest_results(checks)
    by_id = {c.pk: c for c in checks}
    failing = [(by_id[i], r) for i, r in latest.items() if r.outcome in (Outcome.FAIL, Outcome.ERROR)]
    warned = [(by_id[i], r) for i, r in latest.items() if r.outcome == Outcome.WARN]
    failing.sort(key=lambda cr: (cr[1].outcome != Outcome.FAIL, -cr[1].created_at.timestamp()))
    return failing, warned


def checks_section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("quality.view_check"):
        return None
    failing, warned = failing_checks()
    shown = [*failing, *warned][:SHOWN]
    items = [
        Item(
            text=f"{check.dataset.qualified_table}: {check.name} {OUTCOME_WORDS[r.outcome]}"
            + (f" ({humanize.number(r.failing_rows)} rows, {humanize.percent(r.failing_share)})" if r.failing_rows else ""),
            url=reverse("admin:quality_checkresult_change", args=[r.pk]), level=BAD if r.outcome != Outcome.WARN else WARN,
            detail=humanize.local_time(r.created_at, now),
        )
        for check, r in shown
    ]
    if failing:
        summary, level = f"{len(failing)} check(s) failing" + (f", {len(warned)} warned." if warned else "."), BAD
    elif warned:
        summary, level = f"No check failing; {len(warned)} warned (rows set aside, or a warn threshold crossed).", WARN
    else:
        summary, level = "No check failing.", OK
    return Section(
        key="quality", title="Quality checks", order=20, level=level, summary=summary, items=items,
        total=len(failing) + len(warned), link=reverse("admin:quality_check_changelist") + ("?latest=fail" if failing else ""),
        link_label="Checks failing" if failing else "All checks",
    )


def freshness_section(request, now: datetime) -> Section | None:
    if not request.user.has_perm("quality.view_check"):
        return None
    states = freshness.states()
    stale = [s for s in states if s.breached]
    items = [
        Item(
            text=f"{s.layer}.{s.dataset} is "
            + (f"{humanize.number(s.age_hours)} h old" if s.age_hours is not None else "not loaded")
            + f" (limit {humanize.number(s.warn_after_hours if s.outcome == Outcome.WARN and s.warn_after_hours else s.max_age_hours)} h)",
            url=reverse("admin:quality_dataset", args=[s.dataset_id]),
            level=WARN if s.outcome == Outcome.WARN else BAD,
        )
        for s in stale[:SHOWN]
    ]
    if not states:
        summary, level = "No dataset has a freshness expectation (a freshness check).", OK
    elif stale:
        summary = f"{len(stale)} of {len(states)} dataset freshness expectation(s) not met."
        level = BAD if any(i.level == BAD for i in items) else WARN
    else:
        summary, level = f"All {len(states)} freshness expectation(s) met.", OK
    return Section(
        key="freshness", title="Stale datasets", order=25, level=level, summary=summary, items=items,
        total=len(stale), link=reverse("admin:quality_check_changelist") + f"?kind={CheckKind.FRESHNESS}",
        link_label="Freshness checks",
    )
