"""What a run reads once: the catalogue and a step's inputs, remembered for one stage of a run.

A one-step run used to read the same things many times over: every dataset of the catalogue
(``known_tables``) five times, the step's SQL validated five times, each time asking the
warehouse for its inputs' columns — once to plan, once to find upstream steps, once to begin the
step, once for each lineage event. Inside a :func:`scope` (the runner opens one to plan a run and
one per step) they are read once and the answer is reused; outside one, nothing is remembered.

A scope is short on purpose: planning sees the catalogue as it is when the run starts (and hands
what it read to the steps it comes to before one executes, as nothing of the run changed it in
between: the runner seeds their scopes with it and ``transform.share_catalogue``), and each
step validates its SQL against the warehouse as it is when that step starts (after its upstream
steps published), exactly as before. A step's own publish forgets what was remembered of the
table it wrote (:func:`forget_table`). Scopes are per thread (a ``ContextVar``): the runs a worker's
thread pool executes side by side never share one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()
_current: ContextVar[dict | None] = ContextVar("atlas_run_memo", default=None)


@contextmanager
def scope(seed: dict | None = None) -> Iterator[dict]:
    """Remember lookups until the block ends (a nested scope starts empty and ends with its block).

    ``seed``: what another scope remembered (:func:`scope` yields it), known from the start here
    (copied: what this scope forgets or adds stays in it).
    """
    token = _current.set(dict(seed) if seed else {})
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def active() -> bool:
    return _current.get() is not None


def remembered(key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, once per scope and ``key`` (an exception is not remembered: the next call tries again).

    Outside a scope, ``compute()`` every time.
    """
    memo = _current.get()
    if memo is None:
        return compute()
    found = memo.get(key, _MISSING)
    if found is _MISSING:
        found = memo[key] = compute()
    return found


def remember(key: tuple, value: Any) -> None:
    """Have the current scope answer ``key`` with ``value`` (outside a scope: nothing)."""
    memo = _current.get()
    if memo is not None:
        memo[key] = value


def peek(key: tuple) -> Any:
    """What the scope remembers under ``key``, or None."""
    memo = _current.get()
    return None if memo is None else memo.get(key)


def forget_table(layer: str, table: str) -> None:
    """A table was written (published, replaced): what was remembered about it is stale."""
    memo = _current.get()
    if memo is None:
        return
    for key in [k for k in memo if k[:1] == ("table",) and k[1:3] == (layer, table)]:
        del memo[key]


def table_columns(wh: Any, layer: str, table: str) -> list | None:
    """The warehouse's columns of ``layer.table`` (``wh.columns``), or None when it has no such table; once per scope."""

    def look() -> list | None:
        columns = wh.columns(layer, table)  # a table has columns: asked whether it exists only when none came
        return columns if columns or wh.table_exists(layer, table) else None

    return remembered(("table", layer, table, "columns"), look)


def clear() -> None:
    """Forget everything the current scope remembers (a step's next try reads afresh)."""
    memo = _current.get()
    if memo is not None:
        memo.clear()
