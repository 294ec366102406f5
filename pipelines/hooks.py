"""Step hooks: how quality, compliance, privacy and lineage join the runner without it importing them.

Apps contribute hook classes (``contributes = {"step_hooks": [...]}`` in their
``AppConfig``, see :mod:`atlas.extensions`); they run by their ``order``
attribute, like Django's MIDDLEWARE (``failed`` in reverse).
``settings.ATLAS_STEP_HOOKS``, when set, overrides which hooks run and in which
order (a list of dotted paths; ``[]``: none).

A hook may define any of these methods; the runner (:mod:`pipelines.runner`)
calls them, and nothing else does:

=================  ===========================================================================
``run_started``    a run was claimed; called in the transaction that marks it running
``run_ending``     the run's steps are done (not cancelled); called before its end is stored, outside any
                   transaction: work the steps left to the run (compliance: the PII scans no gate needed)
``run_finished``   a run ended (``ctx.status``); called in the transaction that stores its end
``started``        a step run began; called in the transaction that marks it running
``prepare``        before anything is staged, for every step kind; may rewrite ``ctx.select_sql``
``staged``         a staged table (``ctx.staging``) before publishing; may raise :class:`GateFailed`
``published``      the step's output was published and its success stored
``skipped``        the step had nothing new to do (ingest: every file already loaded)
``failed``         the step failed (``ctx.error``); never raises, called in reverse order
=================  ===========================================================================

Run hooks get a :class:`RunContext`, step hooks a :class:`StepContext`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.utils.module_loading import import_string

from atlas import extensions
from atlas.warehouse import Warehouse
from atlas.warehouse.base import WriteMode

logger = logging.getLogger(__name__)
STEP_STAGES = ("started", "prepare", "staged", "published", "skipped", "failed")
RUN_STAGES = ("run_started", "run_ending", "run_finished")
STAGES = STEP_STAGES + RUN_STAGES
T = TypeVar("T")


class GateFailed(Exception):
    """A hook refuses to publish the staged data; the message tells the operator why."""


class Origin:
    """Why a step runs: its pipeline's run, or re-processing quarantined rows into its published table."""

    RUN = "run"
    REPROCESS = "reprocess"


@dataclass
class RunContext:
    run: Any  # PipelineRun
    status: str


# Set by the runner on the run object whose attempt this process executes (``execute_run``): a
# ``run_finished`` hook then knows every step of that attempt ran here, with its hooks, and can
# skip a query for what only another process (a lost attempt, the reaper) can have left behind.
EXECUTED_HERE = "_atlas_attempt_executed_here"


@dataclass
class StepContext:
    """One step run as the runner and its hooks share it: typed fields, no free-form dict."""

    run: Any  # PipelineRun
    step: Any  # Step
    step_run: Any  # StepRun
    warehouse: Warehouse
    schema: str
    target: str
    origin: str = Origin.RUN
    select_sql: str | None = None  # refine/aggregate, PostgreSQL dialect, before transpiling
    staging: str | None = None  # the table staged now, in ``schema``
    staged_tables: list[str] = field(default_factory=list)  # every staging table still to drop on failure
    staging_private: bool = False  # a prepare hook asks that the operator-SQL role may not read the staging table
    rows_quarantined: int = 0  # rows ``staged`` hooks moved out of ``staging`` (added up; the runner resets it)
    masked_columns: set[str] = field(default_factory=set)  # output columns a policy protected (for lineage)
    batch_id: str | None = None  # ingest
    incremental: bool = False  # an incremental step reading only new batches, merged by key (pipelines.incremental)
    # a merge that replaces the published rows of other keys than the staged rows' (affected groups: every group
    # recomputed, the staged rows holding those that still have rows): the table of those keys, in ``schema``
    merge_keys_from: str | None = None
    error: BaseException | None = None
    _slots: dict[type, Any] = field(default_factory=dict, repr=False)

    @property
    def write_mode(self) -> WriteMode:
        """How the output is published: the step's, but a full refresh rebuilds what it would add to."""
        if self.incremental:
            return WriteMode.MERGE
        return WriteMode.REPLACE if self.full_refresh else WriteMode(self.step.write_mode)

    @property
    def full_refresh(self) -> bool:
        return bool(getattr(self.run, "full_refresh", False))

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameters step SQL may bind (``:data_interval_start`` ...; ``atlas.sql.params``)."""
        return self.run.parameters() if hasattr(self.run, "parameters") else {}

    def slot(self, kind: type[T]) -> T:
        """The per-step state an app declares as its own class (created empty on first use)."""
        if kind not in self._slots:
            self._slots[kind] = kind()
        return self._slots[kind]


@lru_cache(maxsize=16)
def _load(paths: tuple[str, ...] | None) -> tuple[Any, ...]:
    classes = extensions.step_hooks() if paths is None else [import_string(p) for p in paths]
    return tuple(cls() for cls in classes)


extensions.on_change(_load.cache_clear)


def hook_paths() -> list[str]:
    """Dotted paths of the hooks that run, in order (the setting's, or every contributed hook)."""
    return [extensions.dotted(type(h)) for h in hooks()]


def hooks() -> tuple[Any, ...]:
    configured = getattr(settings, "ATLAS_STEP_HOOKS", None)
    return _load(None if configured is None else tuple(configured))


def call(stage: str, ctx: StepContext | RunContext) -> None:
    """Call every hook's ``stage`` method; ``failed`` never raises (it must not hide the error)."""
    if stage not in STAGES:
        raise ValueError(f"Unknown hook stage {stage!r}; one of {', '.join(STAGES)}.")
    ordered = reversed(hooks()) if stage == "failed" else hooks()
    for hook in ordered:
        method = getattr(hook, stage, None)
        if method is None:
            continue
        started = time.perf_counter()
        if stage == "failed":
            try:
                method(ctx)
            except Exception:
                logger.exception("Step hook %r failed while handling a failure", hook)
        else:
            try:
                method(ctx)
            finally:
                _record_time(ctx, stage, hook, time.perf_counter() - started)


TIMED_STAGES = ("prepare", "staged", "published")


def _record_time(ctx: Any, stage: str, hook: Any, seconds: float) -> None:
    """Add a hook's time to its step run's ``details["hook_seconds"]`` (``"<stage> <app>"``: seconds).

    The run timeline shows it: a step's own time includes its ``prepare`` and ``staged`` hooks
    (checks, policies); ``published`` hooks (the PII scan after an ingest, lineage) run after it ends.
    """
    step_run = getattr(ctx, "step_run", None)
    if stage not in TIMED_STAGES or step_run is None or seconds < 0.001:
        return
    key = f"{stage} {type(hook).__module__.split('.')[0]}"
    details = dict(step_run.details or {})
    spent = dict(details.get("hook_seconds") or {})
    spent[key] = round(spent.get(key, 0.0) + seconds, 3)
    step_run.details = {**details, "hook_seconds": spent}


def after_staging(ctx: StepContext) -> int:
    """Call the ``staged`` hooks on ``ctx.staging``; the rows they moved to quarantine (counted once)."""
    ctx.rows_quarantined = 0
    call("staged", ctx)
    moved, ctx.rows_quarantined = ctx.rows_quarantined, 0
    return moved
