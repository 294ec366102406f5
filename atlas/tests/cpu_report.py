"""Where the suite's CPU goes, per test (issue 21: CI under 15 minutes on 2 CPUs).

With ``ATLAS_TEST_CPU_REPORT=FILE``, every test's setup, call and teardown append one JSON
line to ``FILE``: its node id, wall seconds, the CPU seconds of the process running it and of
the children it waited for (``os.times``: subprocesses such as ``manage.py`` or a worker),
and which pass it ran in (``ATLAS_TEST_ENGINE``). Each xdist worker also records its
start-up (imports, collection, Django set-up before its first test) as ``<session start>``.
CPU, unlike wall time, hardly moves with the machine's load, so this is what to compare.
``python -m atlas.tests.cpu_report FILE`` sums it by file and lists the costliest tests.
Off (nothing imported, nothing written) without the variable.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import defaultdict

import pytest

REPORT = os.environ.get("ATLAS_TEST_CPU_REPORT", "")
_STARTED = (time.monotonic(), os.times())
_first = True


def _cpu(t) -> tuple[float, float]:
    return t.user + t.system, t.children_user + t.children_system


def _write(nodeid: str, wall: float, before, after) -> None:
    own0, kids0 = _cpu(before)
    own1, kids1 = _cpu(after)
    line = {"test": nodeid, "wall": round(wall, 4), "cpu": round(own1 - own0, 4), "children": round(kids1 - kids0, 4),
            "engine": os.environ.get("ATLAS_TEST_ENGINE", "embedded"), "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}
    with open(REPORT, "a") as out:
        out.write(json.dumps(line) + "\n")


if REPORT:

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):  # noqa: ARG001
        global _first
        if _first:
            _first = False
            _write("<session start>", time.monotonic() - _STARTED[0], _STARTED[1], os.times())
        began, before = time.monotonic(), os.times()
        yield
        _write(item.nodeid, time.monotonic() - began, before, os.times())


def summary(path: str, top: int = 40) -> str:
    with open(path) as lines:
        rows = [json.loads(line) for line in lines]
    by_file: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for r in rows:
        key = (r["engine"], r["test"].split("::")[0])
        acc = by_file[key]
        acc[0] += r["cpu"] + r["children"]
        acc[1] += r["wall"]
        acc[2] += 1
    lines = [f"{'engine':9} {'cpu s':>8} {'wall s':>8} {'tests':>6}  file"]
    total = sum(a[0] for a in by_file.values())
    for (engine, name), (cpu, wall, n) in sorted(by_file.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{engine:9} {cpu:8.1f} {wall:8.1f} {n:6d}  {name}")
    lines.append(f"total CPU {total:.1f} s over {len(rows)} records")
    lines.append("")
    lines.append("costliest tests:")
    for r in sorted(rows, key=lambda r: -(r["cpu"] + r["children"]))[:top]:
        lines.append(f"{r['engine']:9} {r['cpu'] + r['children']:8.2f} {r['wall']:8.2f}  {r['test']}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40))
