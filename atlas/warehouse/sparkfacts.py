"""What Spark ran for a step, as Spark Connect tells it: facts for the step's lineage events (issue 21).

Spark Connect gives its client, per operation (one statement or DataFrame action), its id and
the progress of its stages: stage id, tasks, bytes read (``SparkSession.registerProgressHandler``,
called in the thread that runs the operation). The backend keeps them per thread; the lineage
hook takes them when a step starts (a baseline, nothing emitted) and when it ends
(:meth:`SparkJobFacts.take_job_facts`): the application (id, master, Spark version, the Connect
session), the operations and stages the step ran, the bytes its stages read, and what it wrote
to its output (the view's new parts: bytes from the catalog's statistics, files).

Job ids are not in the protocol (the server groups a step's jobs by operation, and stages are
what its progress reports); where a fact is not exposed it is left out, never guessed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spark import SparkWarehouse

KEEP_OPERATIONS = 2000  # per thread, between two takes (a step's statements are far fewer)


class _Thread(threading.local):
    def __init__(self) -> None:
        self.operations: OrderedDict[str, dict[int, tuple[int, int]]] = OrderedDict()
        self.baseline: dict[tuple[str, str], list[str]] = {}
        self.paused = False  # take_job_facts's own catalogue reads are nobody's step


class SparkJobFacts:
    """Mixed into ``SparkWarehouse``: the progress handler and ``take_job_facts``."""

    def _facts_thread(self) -> _Thread:
        state = self.__dict__.get("_job_facts_state")
        if state is None:
            state = self.__dict__.setdefault("_job_facts_state", _Thread())
        return state

    def _on_progress(self, stages: Any, inflight_tasks: int, operation_id: str | None, done: bool) -> None:  # noqa: ARG002
        """Spark Connect's progress of one operation (the latest state of each of its stages)."""
        state = self._facts_thread()
        if not operation_id or state.paused:
            return
        ops = state.operations
        seen = ops.setdefault(operation_id, {})
        for stage in stages or ():
            seen[int(stage.stage_id)] = (int(stage.num_tasks), int(stage.num_bytes_read))
        while len(ops) > KEEP_OPERATIONS:
            ops.popitem(last=False)

    def _application(self: SparkWarehouse) -> dict[str, Any]:
        app = self.__dict__.get("_app_facts")
        if app is None:
            spark = self.spark()
            conf = {}
            for key in ("spark.app.id", "spark.master", "spark.app.name"):
                try:
                    conf[key] = spark.conf.get(key)
                except Exception:  # noqa: BLE001 - a server that does not say
                    conf[key] = None
            app = {
                "applicationId": conf["spark.app.id"], "master": conf["spark.master"], "appName": conf["spark.app.name"],
                "sparkVersion": spark.version, "connectSessionId": spark.session_id,
            }
            app = {k: v for k, v in app.items() if v}
            self.__dict__["_app_facts"] = app
        return app

    def take_job_facts(self: SparkWarehouse, schema: str | None = None, table: str | None = None) -> dict[str, Any]:
        """What this thread ran on Spark since the last call, and what it wrote to ``schema.table`` since then."""
        state = self._facts_thread()
        operations, state.operations = state.operations, OrderedDict()
        state.paused = True
        try:
            return self._facts_of(state, operations, schema, table)
        finally:
            state.paused = False

    def _facts_of(
        self: SparkWarehouse, state: _Thread, operations: OrderedDict, schema: str | None, table: str | None
    ) -> dict[str, Any]:
        key = (schema, table) if schema and table else None
        parts = self._parts(schema, table) if key and self._kind(schema, table) == "VIEW" else []
        before = state.baseline.pop(key, None) if key else None
        if key:
            state.baseline[key] = parts
        stages = {sid: st for op in operations.values() for sid, st in op.items()}
        facts: dict[str, Any] = {
            "application": self._application(),
            "operations": len(operations),
            "operationIds": [op for op, st in operations.items() if st],
            "stages": len(stages),
            "tasks": sum(t for t, _ in stages.values()),
            "bytesRead": sum(b for _, b in stages.values()),
        }
        if key and before is not None:
            facts["output"] = self._written(schema, [p for p in parts if p not in set(before)])
        return facts

    def _written(self: SparkWarehouse, schema: str, parts: list[str]) -> dict[str, int]:
        """Bytes (the catalog's statistics of each part) and files of the parts a step added."""
        size, files, known = 0, 0, True
        for part in parts:
            stats = [r for r in self._run(f"DESCRIBE TABLE EXTENDED {self.sq(schema, part)}") if r[0] == "Statistics"]
            if stats:
                size += int(str(stats[0][1]).split(" ", 1)[0])
            else:
                known = False
            try:
                files += len(self.spark().table(f"`{schema}`.`{part}`").inputFiles())
            except Exception:  # noqa: BLE001 - not told: left out
                known = False
        return {"bytes": size, "files": files} if known and parts else {}
