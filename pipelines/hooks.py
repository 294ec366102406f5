"""Step hooks: how quality, compliance and lineage join the runner without it importing them.

``settings.ATLAS_STEP_HOOKS`` lists dotted paths to classes; each may define
any of ``prepare``, ``staged``, ``published`` and ``failed`` taking a
:class:`StepContext`. They are called in order (``failed`` in reverse), like
Django's MIDDLEWARE. ``prepare`` may rewrite ``ctx.select_sql``; ``staged`` may
raise :class:`GateFailed` to stop publishing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from atlas.warehouse import Warehouse

logger = logging.getLogger(__name__)
# ``skipped``: the step had nothing new to do (ingest: every file already loaded); nothing was published.
STAGES = ("prepare", "staged", "published", "failed", "skipped")


class GateFailed(Exception):
    """A hook refuses to publish the staged data; the message tells the operator why."""


@dataclass
class StepContext:
    run: Any  # PipelineRun
    step: Any  # Step
    step_run: Any  # StepRun
    warehouse: Warehouse
    schema: str
    target: str
    select_sql: str | None = None  # refine/aggregate, PostgreSQL dialect, before transpiling
    staging: str | None = None  # staged table, in ``schema``
    batch_id: str | None = None  # ingest
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # for hooks to talk to each other


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(import_string(p)() for p in paths)


def hooks() -> tuple[Any, ...]:
    return _load(tuple(settings.ATLAS_STEP_HOOKS))


def call(stage: str, ctx: StepContext) -> None:
    """Call every hook's ``stage`` method; ``failed`` never raises (it must not hide the error)."""
    assert stage in STAGES
    ordered = reversed(hooks()) if stage == "failed" else hooks()
    for hook in ordered:
        method = getattr(hook, stage, None)
        if method is None:
            continue
        if stage == "failed":
            try:
                method(ctx)
            except Exception:
                logger.exception("Step hook %r failed while handling a failure", hook)
        else:
            method(ctx)
