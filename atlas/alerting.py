"""The vocabulary of alerts, shared by the apps that raise them and the ``alerts`` app that delivers them.

An app that knows of something worth an alert contributes it through the
extension point (:mod:`atlas.extensions`), without importing ``alerts``:

* ``alert_sources``: ``callable(now)`` yielding the :class:`Event` of every
  condition that holds now (a stale dataset, an overdue request, a finding
  awaiting review). ``alerts`` polls them on a schedule; a condition (its
  ``key``) fires once when it begins and again only after it has cleared.
* ``run_alert_events``: ``callable(run)`` yielding the events a finished
  pipeline run gives rise to (quality checks that failed or warned in it),
  read in the transaction that stores the run's end.

An event's text and facts hold names (pipelines, datasets, checks, steps),
counts, statuses and times only: never a row value, a sample or an error
text from the warehouse, which may quote one. The ``alerts`` app refuses
facts that are not plain scalars and caps every text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# kind -> what it means (the allowlist rules choose from)
EVENT_KINDS: dict[str, str] = {
    "run_failed": "A pipeline run failed",
    "run_partially_failed": "A pipeline run partially failed (some steps failed, independent ones went on)",
    "run_recovered": "A pipeline run succeeded after a failed one",
    "quality_fail": "Quality checks failed (or could not run) in a run",
    "quality_warn": "Quality checks warned in a run",
    "freshness_breached": "A dataset is older than its freshness expectation (warn or error age)",
    "dsr_overdue": "A data-subject request is past its due date",
    "pii_review": "A PII finding is awaiting a steward's review",
    "test": "A test alert (manage.py send_test_alert, the admin's action)",
}
WARNING, ERROR = "warning", "error"
SEVERITIES = (WARNING, ERROR)
Fact = str | int | float | bool | None


@dataclass(frozen=True)
class Event:
    """Something to alert on. ``key``: the identity of a polled condition (empty for one-off events)."""

    kind: str
    title: str
    severity: str = ERROR
    key: str = ""
    pipeline_id: int | None = None
    admin_path: str = ""  # a path of the admin (e.g. /admin/quality/checkrun/12/change/), joined to the base URL
    facts: dict[str, Fact] = field(default_factory=dict)
