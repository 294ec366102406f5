"""The one extension point: what each app contributes, declared in its ``AppConfig``.

Like Django's app registry, an app says what it adds in one place, and the
apps that offer a place to extend (``pipelines``' runner and admin, the API,
``/metrics``) read it from here — no signals as side channels, no dotted-path
settings per concern, no module-name discovery, no ``apps.get_model`` reaching
into another app, no admin re-registration.

An app declares, on its ``AppConfig``::

    class QualityConfig(AppConfig):
        name = "quality"
        contributes = {
            "step_hooks": ["quality.hooks.QualityGate"],
            "metric_sources": ["quality.metrics.quality_metrics"],
        }

Each value is a list of dotted paths (resolved when first read, so declaring
imports nothing) or of the objects themselves; a dotted path may also name a
``list`` of items (e.g. an app's API routes). The kinds, and what each item
is, are :data:`KINDS`; an unknown kind is refused. Items come out in
``INSTALLED_APPS`` order, then in the order the app lists them — except step
hooks, which are ordered by their class's ``order`` (see :func:`step_hooks`).

Read with :func:`contributions` (every item of a kind, resolved) or
:func:`one` (a kind at most one app may contribute, e.g. the row masker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# kind -> what an item is (the documentation of the extension point).
KINDS: dict[str, str] = {
    "step_hooks": "a step hook class (pipelines.hooks); its ``order`` attribute places it among the others",
    "step_saved": "callable(step): a step's definition was saved (called once the save is committed)",
    "step_versions": "callable(step) -> JSON-able: what the app defines that shapes the step's output (its checks,"
    " policies); part of the step's definition version, so a change makes it run, not skip as up to date"
    " (pipelines.freshness)",
    "step_reads": "callable(step) -> dataset ids the step reads besides its SQL (e.g. what its checks read):"
    " the step runs after their producers",
    "step_row_reads": "callable(step) -> dataset ids whose change can change which of the step's rows are kept"
    " (quality: what its drop checks read); an incremental step recomputes in full when one changed"
    " (pipelines.incremental)",
    "row_masker": "callable(user, dataset, columns, rows) -> rows: hides what ``user`` may not see (one app only)",
    "select_masker": "callable(user, sql, inputs, columns, rows) -> rows: an operator's SELECT's rows not yet in"
    " any dataset (the editor's preview) as ``user`` may see them, column by column by lineage (one app only)",
    "metric_sources": "callable() -> iterable of prometheus metric families, added to every scrape",
    "lineage_assertions": "callable(step_run) -> list of OpenLineage data-quality assertion dicts",
    "urls": "(route, urlconf module path) included at the site's root, before the API (e.g. a receiver)",
    "api_routes": "(prefix, viewset, basename) registered under /api/v1/",
    "api_dataset_fields": "(name, field factory): a read-only field added to every dataset of the API",
    "dataset_admin": "a mixin class of the Dataset admin (its ``dataset_*`` attributes are merged, see pipelines.admin)",
    "dataset_panels": "callable(request, dataset) -> HTML or None: a section of the dataset page",
    "dataset_tools": "callable(request, dataset) -> (id, label, url) or None: a link above the dataset page",
    "run_panels": "callable(request, run_or_step_run) -> HTML or None: a section of a run's or step run's page",
    "request_scopes": "callable(request) -> context manager entered around each request, after the audit actor"
    " (e.g. compliance reads PII columns once and audits clear views once per request)",
    "metadata_pruners": "callable(now) -> {what: rows deleted}: removes the app's records past their keep period"
    " (atlas.housekeeping)",
    "alert_sources": "callable(now) -> iterable of atlas.alerting.Event: conditions that hold now (polled on a schedule)",
    "run_alert_events": "callable(run) -> iterable of atlas.alerting.Event: what a finished run gives rise to",
    "definition_kinds": "an atlas.definitions.specs.Kind: a model whose objects are definitions in a project"
    " directory (manage.py atlas export | plan | apply)",
    "pii_columns": "callable() -> iterable of atlas.extensions.PiiColumn: the PII each Atlas dataset column holds"
    " and the policy protecting it (lineage marks them on its graph and carries them along column lineage)",
    "overview_sections": "callable(request, now) -> atlas.overview.Section or None: a part of the admin's home"
    " (its verdict, what needs acting on, where to act)",
    "background_tasks": "atlas.background.Kind: a heavy action the API and admin enqueue (202 + a status resource)",
    "worker_start": "callable(): run once in each Celery worker process that executes tasks, when it starts"
    " (atlas.worker_start): load what the first task would otherwise load inside a run",
}
# Kinds whose items are (key, value) pairs with keys unique across apps.
PAIR_KINDS = {"api_dataset_fields"}
# Kinds at most one app may contribute.
SINGLE_KINDS = {"row_masker", "select_masker"}


@dataclass
class Registry:
    """What the apps contribute, in the order they were added; :func:`registry` builds it from the AppConfigs."""

    declared: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # app label -> kind -> items

    def add(self, app_label: str, contributes: dict[str, Iterable[Any]]) -> None:
        """Record an app's contributions; refuses an unknown kind, a second declaration, a duplicate item."""
        if app_label in self.declared:
            raise ImproperlyConfigured(f"App {app_label!r} declares its contributions twice; declare them once.")
        if not isinstance(contributes, dict):
            raise ImproperlyConfigured(f"App {app_label!r}: ``contributes`` must be a dict of kind -> list.")
        unknown = sorted(set(contributes) - set(KINDS))
        if unknown:
            raise ImproperlyConfigured(
                f"App {app_label!r} contributes unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}."
            )
        checked: dict[str, list[Any]] = {}
        for kind, items in contributes.items():
            if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                raise ImproperlyConfigured(f"App {app_label!r}: {kind} must be a list, not {type(items).__name__}.")
            items = list(items)
            if len(items) != len({repr(i) for i in items}):
                raise ImproperlyConfigured(f"App {app_label!r} contributes the same {kind} item twice.")
            if kind in SINGLE_KINDS and len(items) > 1:
                raise ImproperlyConfigured(f"App {app_label!r}: {kind} takes one item, not {len(items)}.")
            checked[kind] = items
        for kind in SINGLE_KINDS & set(checked):
            others = [label for label, kinds in self.declared.items() if kinds.get(kind)]
            if others and checked[kind]:
                raise ImproperlyConfigured(f"Apps {others[0]!r} and {app_label!r} both contribute the {kind}; one may.")
        self.declared[app_label] = checked

    def items(self, kind: str) -> list[tuple[str, Any]]:
        """``(app label, item)`` of a kind, in declaration order, dotted paths resolved."""
        if kind not in KINDS:
            raise KeyError(f"Unknown contribution kind {kind!r}; known: {', '.join(KINDS)}.")
        found = []
        for label, kinds in self.declared.items():
            for item in kinds.get(kind, ()):
                resolved = import_string(item) if isinstance(item, str) else item
                if isinstance(resolved, list):  # a dotted path may name a list of items
                    found.extend((label, i) for i in resolved)
                else:
                    found.append((label, resolved))
        if kind in PAIR_KINDS:
            keys = [pair[0] for _label, pair in found]
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise ImproperlyConfigured(f"Two apps contribute {kind} named {', '.join(dup)}.")
        return found


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The contributions of every installed app, in ``INSTALLED_APPS`` order (built once, when first read)."""
    reg = Registry()
    for config in apps.get_app_configs():
        contributes = getattr(config, "contributes", None)
        if contributes:
            reg.add(config.label, contributes)
    return reg


def contributions(kind: str) -> list[Any]:
    """Every item of ``kind``, in ``INSTALLED_APPS`` order, then in the order each app lists them."""
    return [item for _label, item in registry().items(kind)]


def one(kind: str) -> Any | None:
    """The item of a kind at most one app contributes (e.g. ``row_masker``), or None."""
    if kind not in SINGLE_KINDS:
        raise KeyError(f"{kind!r} is not a single-item kind ({', '.join(sorted(SINGLE_KINDS))}).")
    found = contributions(kind)
    return found[0] if found else None


def step_hooks() -> list[type]:
    """The contributed step hook classes, by their ``order`` (then app, then listed order): stable."""
    found = contributions("step_hooks")
    return [cls for _i, cls in sorted(enumerate(found), key=lambda pair: (getattr(pair[1], "order", 500), pair[0]))]


def step_reads(step: Any) -> set[int]:
    """The datasets ``step`` reads besides its SQL, by every app's ``step_reads`` (quality: its checks)."""
    found: set[int] = set()
    for reads in contributions("step_reads"):
        found.update(reads(step))
    return found


def step_row_reads(step: Any) -> set[int]:
    """The datasets whose change can change which rows ``step`` keeps, by every app's ``step_row_reads``."""
    found: set[int] = set()
    for reads in contributions("step_row_reads"):
        found.update(reads(step))
    return found


class PiiColumn(NamedTuple):
    """One column as a ``pii_columns`` provider reports it (compliance's findings and policies)."""

    dataset_id: int
    column: str
    entities: tuple[str, ...] = ()  # entity types found on this very column (not dismissed), or its policy protects
    policy: str = ""  # the action of the policy protecting it ("" none, "keep" kept in clear with a reason)
    awaiting_review: bool = False  # the policy is applied by default until a steward decides


def pii_columns() -> dict[tuple[int, str], PiiColumn]:
    """What every ``pii_columns`` provider reports, merged by (dataset id, column)."""
    merged: dict[tuple[int, str], PiiColumn] = {}
    for provider in contributions("pii_columns"):
        for item in provider():
            key = (item.dataset_id, item.column)
            prior = merged.get(key)
            if prior is not None:
                item = item._replace(
                    entities=tuple(sorted(set(prior.entities) | set(item.entities))),
                    policy=item.policy or prior.policy,
                    awaiting_review=item.awaiting_review or prior.awaiting_review,
                )
            merged[key] = item
    return merged


def dotted(obj: Any) -> str:
    """``module.qualname`` of a class or function, as ``settings.ATLAS_STEP_HOOKS`` names it."""
    return f"{obj.__module__}.{obj.__qualname__}"


def mask_rows(user, dataset, columns: list[str], rows: list) -> list[list]:
    """Rows as ``user`` may see them, by the contributed ``row_masker`` (compliance's); unchanged without one."""
    masker = one("row_masker")
    if masker is None or not rows:
        return [list(r) for r in rows]
    return masker(user, dataset, columns, rows)


def mask_select_rows(user, sql: str, inputs: list, columns: list[str], rows: list) -> list[list]:
    """Rows of an operator's SELECT over ``inputs`` as ``user`` may see them (compliance's ``select_masker``)."""
    masker = one("select_masker")
    if masker is None or not rows:
        return [list(r) for r in rows]
    return masker(user, sql, inputs, columns, rows)


@contextmanager
def added(app_label: str, contributes: dict[str, Iterable[Any]]) -> Iterator[Registry]:
    """Contributions of a pretend app for the duration of a ``with`` block (tests, tools that plug in late)."""
    reg = registry()
    reg.add(app_label, contributes)
    _changed()
    try:
        yield reg
    finally:
        reg.declared.pop(app_label, None)
        _changed()


_on_change: list[Callable[[], None]] = []


def on_change(forget: Callable[[], None]) -> None:
    """Register a function that forgets what its module built from the registry (called when it changes)."""
    if forget not in _on_change:
        _on_change.append(forget)


def _changed() -> None:
    for forget in _on_change:
        forget()
