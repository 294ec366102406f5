"""Subprocesses whose peak memory is measured by the kernel (``wait4``'s ``ru_maxrss``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _module_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _reap(proc: subprocess.Popen[str]) -> float:
    """Wait for ``proc``; return its peak resident memory in MiB."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}")
    return round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


class AtlasChild:
    """``benchmarks.ingest.atlas_run --serve`` for one engine and file: ``load()`` runs one timed rep."""

    def __init__(self, engine: str, path: str, pg_url: str, quiet: bool = True) -> None:
        args = ["--engine", engine, "--file", path, "--pg-url", pg_url, "--serve"]
        if not quiet:
            args.append("--no-quiet-wait")
        self.proc = subprocess.Popen(
            _module_cmd("benchmarks.ingest.atlas_run", *args),
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"the Atlas benchmark process stopped (exit {self.proc.returncode}); see above")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def _send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def load(self, path: str | None = None) -> dict[str, Any]:
        return self._send(f"load {path}" if path else "load")

    def finish(self) -> dict[str, Any]:
        """End the process; its summary, with the kernel's view of its peak memory."""
        summary = self._send("done")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.close()
        summary["ru_maxrss_mib"] = _reap(self.proc)
        return {**self.ready, **summary}


def run_pandas(path: str, pg_url: str, reps: int, max_seconds: float, quiet: bool) -> dict[str, Any]:
    args = ["--file", path, "--pg-url", pg_url, "--reps", str(reps), "--max-seconds", str(max_seconds)]
    if not quiet:
        args.append("--no-quiet-wait")
    proc = subprocess.Popen(_module_cmd("benchmarks.ingest.pandas_run", *args), cwd=_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    maxrss = _reap(proc)
    return {**json.loads(out.strip().splitlines()[-1]), "ru_maxrss_mib": maxrss}


def run_breakdown(path: str, pg_url: str, reps: int, engine: str = "postgres") -> dict[str, Any]:
    args = ["--file", path, "--pg-url", pg_url, "--reps", str(reps), "--engine", engine]
    out = subprocess.run(
        _module_cmd("benchmarks.ingest.breakdown", *args),
        cwd=_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
