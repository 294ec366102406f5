"""Skip what has not changed (issue 20): a step whose versions all match its last good execution is up to date.

Every execution of a step records, in its step run's ``details["versions"]``, the versions it ran
with (:class:`Versions`):

* its **definition**: a SHA-256 over the step (kind, SQL, write mode, keys, load policy), its source
  and output, the step hooks that run, what the apps say shapes its output (``step_versions``:
  quality's checks, compliance's column policies and the id — never the value — of the hash key,
  privacy's tombstones), Atlas's settings that change what a step writes, and, for SQL that binds
  run parameters, their values;
* its **inputs**: for each dataset it reads (its SQL's, and what its checks read), the step run that
  last published it and the dataset's ``data_version`` (bumped by retention's trims and erasures,
  which change rows outside any step); for an ingest of files, each file's path, size, mtime, ctime
  and inode (what ``make`` and rsync's quick check look at);
* its **output** as that execution left it: the step run that last published it and its
  ``data_version``.

Before a step runs, :func:`decide` compares the versions now with those of the step's last
execution. When all match, the step is **up to date**: it is not executed, its output and its
results (checks, PII findings) stay as they are, and its step run is ``skipped`` with
``details["up_to_date"]`` (shown as "Up to date" by the run page, the API, ``run_pipeline`` and
``/metrics``). A step downstream reads an unchanged version and is up to date in turn, unless its own
versions changed — dbt's ``state:modified+`` and the data versions of asset-based orchestrators.

Never up to date: a forced run (``force``) or a full refresh; a step whose last execution did not
succeed (failed, cancelled, skipped for an upstream failure) or whose hooks after publishing are
still owed; an output since trimmed or erased (its ``data_version`` moved) or dropped; a step with
no recorded versions (executed before this existed); SQL whose result depends on the clock or on
chance (``now()``, ``random()``...); an ingest of anything but local files (a URL, a bucket, an API,
a database query can change without telling): such ingests run, and end ``skipped`` as up to date
when every file they read was already loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from atlas import extensions

from .confinement import ConfinementError, resolve_files
from .models import Dataset, RunStatus, Source, Step, StepRun

VERSIONS = "versions"
UP_TO_DATE = "up_to_date"
LABEL = "Up to date"
# Atlas's settings that change what a step writes (the rest tune speed, limits or where things are).
OUTPUT_SETTINGS = ("ATLAS_INGEST_MAX_LINE_BYTES", "ATLAS_QUARANTINE_RAW_CHARS")
# SQL whose result changes from one execution to the next: never up to date.
VOLATILE_SQL = re.compile(
    r"\b(now|random|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|gen_random_uuid|uuid)\s*\("
    r"|\b(current_date|current_time|current_timestamp|localtime|localtimestamp)\b",
    re.IGNORECASE,
)


@dataclass
class Versions:
    """What one execution of a step ran with (stored as JSON in ``details["versions"]``)."""

    definition: str
    inputs: dict[str, list[int]] = field(default_factory=dict)  # dataset id -> [last publishing step run, data_version]
    files: list[list[Any]] | None = None  # an ingest of local files: [path, size, mtime_ns, ctime_ns, inode]
    output: list[int] | None = None  # after the execution: [last publishing step run, data_version]
    reads: dict[str, int] | None = None  # what its SQL reads, layer.table -> dataset id (see ``sql_reads``)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Versions | None:
        if not isinstance(value, dict) or not isinstance(value.get("definition"), str):
            return None
        return cls(definition=value["definition"], inputs=dict(value.get("inputs") or {}),
                   files=value.get("files"), output=value.get("output"), reads=value.get("reads"))


@dataclass
class Decision:
    """Whether a step may be skipped as up to date, why (one line), and the versions it runs with now."""

    up_to_date: bool
    reason: str
    versions: Versions | None = None
    previous: StepRun | None = None


# --- the versions ---------------------------------------------------------------------------------
def _source_definition(source: Source | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"kind": source.kind, "format": source.format, "location": source.location, "upload": source.upload.name
            if source.upload else "", "database": source.database, "query": source.query, "options": source.options,
            "schema": source.schema}


def definition(step: Step, parameters: dict[str, Any] | None = None) -> str:
    """The SHA-256 of everything that defines what ``step`` writes (see the module's docstring)."""
    from . import hooks

    doc = {
        "step": {"kind": step.kind, "sql": step.sql, "write_mode": step.write_mode, "merge_keys": step.merge_keys,
                 "max_rejected_share": step.max_rejected_share, "load_policy": getattr(step, "load_policy", "")},
        "source": _source_definition(step.source if step.source_id else None),
        "output": [step.output.layer, step.output.table],
        "hooks": hooks.hook_paths(),
        "apps": {extensions.dotted(fn): fn(step) for fn in extensions.contributions("step_versions")},
        "settings": {name: getattr(settings, name, None) for name in OUTPUT_SETTINGS},
    }
    if getattr(step, "incremental", False):  # only when set: the hash of every other step stays as it was
        doc["step"]["incremental"] = True
    if parameters:
        doc["parameters"] = parameters
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_versions(dataset_ids: set[int]) -> dict[str, list[int]]:
    """By dataset id: the step run that last published it (0: none) and its ``data_version``."""
    if not dataset_ids:
        return {}
    last = StepRun.objects.filter(output_id=OuterRef("pk"), status=RunStatus.SUCCEEDED).order_by("-id").values("id")[:1]
    found = {pk: (published, version) for pk, published, version in  # one query (issue 14: a run's fixed cost)
             Dataset.objects.filter(pk__in=dataset_ids).order_by().annotate(last=Subquery(last))
             .values_list("pk", "last", "data_version")}
    return {str(pk): [found.get(pk, (0, 0))[0] or 0, found.get(pk, (0, 0))[1]] for pk in sorted(dataset_ids)}


def output_version(step_run: StepRun, step: Step) -> list[int]:
    """The output's version once ``step_run`` ended: :func:`dataset_versions`'s, known without reading it once it published.

    A published step run is its output's last publisher (one writer per dataset, one run per pipeline at a
    time), and the ``data_version`` is the one its step was loaded with. Should something have bumped it
    since (a trim, an erasure), the next run finds the output changed and runs: never skipped wrongly.
    """
    if step_run.status == RunStatus.SUCCEEDED and step_run.pk and Step.output.is_cached(step):
        return [step_run.pk, step.output.data_version]
    return dataset_versions({step.output_id}).get(str(step.output_id))


def file_listing(source: Source) -> list[list[Any]] | None:
    """An ingest's local files as ``stat`` sees them; None when the source is not local files (or cannot be listed)."""
    if source.kind != Source.Kind.PATH:
        return None
    try:
        found = resolve_files(source.location)
    except ConfinementError:
        return None  # the ingest says why
    out = []
    for _shown, real in found:
        try:
            st = os.stat(real)
        except OSError:
            return None
        out.append([real, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    return out


def sql_reads(step: Step, before: Versions | None = None) -> dict[str, int]:
    """The datasets a step's SQL reads, ``layer.table`` -> id.

    Parsing and validating the SQL is most of what deciding costs; the same definition reads the
    same names, so when ``before`` ran with this very definition and every name it read still
    names the same dataset, its answer stands.
    """
    from .transform import known_tables, step_inputs

    if step.kind == Step.Kind.INGEST:
        return {}
    known = known_tables([step.sql])
    if before is not None and before.reads is not None:
        names = {d.qualified_table: d.pk for d in known.values()}
        if all(names.get(name) == pk for name, pk in before.reads.items()):
            return dict(before.reads)
    return {d.qualified_table: d.pk for d in step_inputs(step, known)}


def _parameters(run: Any, step: Step) -> dict[str, str] | None:
    """The run's parameters, where the step's SQL uses them (they then shape what it writes)."""
    from atlas.sql.params import uses_parameters

    if step.kind != Step.Kind.INGEST and uses_parameters(step.sql or ""):
        return {k: str(v) for k, v in run.parameters().items()}
    return None


def current(run: Any, step: Step, before: Versions | None = None) -> Versions:
    """The versions ``step`` would run with now (``output`` is filled in once it ran)."""
    now = Versions(definition=definition(step, _parameters(run, step)))
    now.reads = sql_reads(step, before if before is not None and before.definition == now.definition else None)
    reads = set(now.reads.values()) | set(extensions.step_reads(step))  # and what its checks read
    reads.discard(step.output_id)
    now.inputs = dataset_versions(reads)
    if step.kind == Step.Kind.INGEST and step.source_id:
        now.files = file_listing(step.source)
    return now


# --- deciding -------------------------------------------------------------------------------------
def last_execution(step: Step, run: Any) -> StepRun | None:
    """The step's latest finished step run in an earlier run (up-to-date ones included)."""
    return (
        StepRun.objects.filter(step=step, finished_at__isnull=False).exclude(run_id=run.pk)
        .exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).order_by("-finished_at", "-id").first()
    )


def decide(run: Any, step: Step) -> Decision:
    """Whether ``step`` is up to date in ``run``, and why (or why not)."""
    previous = last_execution(step, run)
    before = Versions.from_json((previous.details or {}).get(VERSIONS)) if previous is not None else None
    try:
        now = current(run, step, before)  # recorded whatever is decided: the next run compares with it
    except Exception as exc:  # an invalid definition: the step runs and fails with the reason
        return Decision(False, f"its versions cannot be read ({type(exc).__name__})")
    if getattr(run, "full_refresh", False):
        return Decision(False, "a full refresh runs every step", now)
    if getattr(run, "force", False):
        return Decision(False, "a forced run runs every step", now)
    if step.kind != Step.Kind.INGEST and VOLATILE_SQL.search(step.sql or ""):
        return Decision(False, "its SQL reads the clock or chance", now)
    if previous is None:
        return Decision(False, "it has not run before", now)
    if not _succeeded(previous):
        return Decision(False, f"its last execution (run #{previous.run_id}) did not succeed", now, previous)
    if previous.after_publish == "pending":
        return Decision(False, "what follows its last publish is still owed", now, previous)
    if before is None or before.output is None:
        return Decision(False, "its last execution recorded no versions", now, previous)
    if before.definition != now.definition:
        return Decision(False, "its definition changed", now, previous)
    if before.inputs != now.inputs:
        return Decision(False, "an input changed", now, previous)
    if step.kind == Step.Kind.INGEST and (now.files is None or before.files != now.files):
        return Decision(False, "its files may have changed", now, previous)
    if dataset_versions({step.output_id}).get(str(step.output_id)) != before.output:
        return Decision(False, "its output changed since (trimmed, erased or rewritten)", now, previous)
    if not run_warehouse_has(step.output):
        return Decision(False, "its output table is missing", now, previous)
    now.output = before.output
    return Decision(True, f"unchanged since run #{since_run(previous)}", now, previous)


def since_run(previous: StepRun) -> int:
    """The run whose execution of the step an up-to-date step keeps (the last that did not skip it)."""
    return ((previous.details or {}).get(UP_TO_DATE) or {}).get("since_run") or previous.run_id


def run_warehouse_has(dataset: Dataset) -> bool:
    """Whether the output table is there; False when the warehouse cannot say (the step then runs, and says why)."""
    from atlas.warehouse import WarehouseError, get_warehouse

    try:
        return get_warehouse().table_exists(dataset.layer, dataset.table)
    except WarehouseError:
        return False


def _succeeded(sr: StepRun) -> bool:
    return sr.status == RunStatus.SUCCEEDED or (sr.status == RunStatus.SKIPPED and not sr.error)


def is_up_to_date(sr: StepRun) -> bool:
    """A step run that was skipped as up to date (or an ingest that found every file loaded)."""
    return sr.status == RunStatus.SKIPPED and UP_TO_DATE in (sr.details or {})


def status_label(sr: StepRun) -> str:
    """The step run's status in words: "Up to date" for a step skipped as unchanged."""
    return sr.get_status_display()  # StepRun's: LABEL when up to date


# --- recording ------------------------------------------------------------------------------------
def mark_up_to_date(step_run: StepRun, decision: Decision) -> None:
    """Record the step as up to date: skipped, nothing executed, its versions carried forward."""
    since = since_run(decision.previous) if decision.previous else None
    now = timezone.now()
    step_run.status, step_run.error = RunStatus.SKIPPED, ""
    step_run.started_at = step_run.started_at or now
    step_run.finished_at = now
    step_run.details = {**(step_run.details or {}), UP_TO_DATE: {"reason": decision.reason, "since_run": since},
                        VERSIONS: decision.versions.as_json()}
    step_run.save(update_fields=["status", "error", "started_at", "finished_at", "details"])


def record_execution(step_run: StepRun, step: Step, versions: Versions | None) -> None:
    """After a step executed: the versions it ran with and its output's now; an ingest with nothing new is up to date."""
    if versions is None or not _succeeded(step_run):
        return
    executed_versions(step_run, step, versions)
    StepRun.objects.filter(pk=step_run.pk).update(details=step_run.details)


def executed_versions(step_run: StepRun, step: Step, versions: Versions) -> None:
    """:func:`record_execution`'s versions in ``step_run.details``, not stored (the runner stores them with the
    end of a published step's hooks, in one statement)."""
    # What the step's own hooks settled while it ran is part of what it wrote: the PII scan its gate
    # ran (findings) and the policies privacy by default added. So the definition is read again now,
    # from the same step object (its SQL as it ran); else the next run would find it "changed" and
    # run it once more for nothing. What the step's scope remembers (its checks, its confirmed subject
    # keys: no hook writes them) is what it ran with; the rest is read anew.
    versions.definition = definition(step, _parameters(step_run.run, step))
    versions.output = output_version(step_run, step)
    details = {**(step_run.details or {}), VERSIONS: versions.as_json()}
    if step_run.status == RunStatus.SKIPPED:  # an ingest whose every file was loaded already
        details[UP_TO_DATE] = {"reason": "every file was loaded already", "since_run": None}
    step_run.details = details
