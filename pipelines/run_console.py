"""What ``run_pipeline`` prints while a run goes: each step as it starts and as it ends (status, rows,
time, and the hooks after it), and a progress bar while an ingest loads its files.

The bar is rich's (imported only when one is drawn: commands start fast, see atlas/tests/test_startup.py),
drawn on standard error and only on a terminal; the step lines go to standard output, so a log or a
pipe gets the lines alone.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from atlas import humanize

from . import live


def started_line(state: dict[str, Any]) -> str:
    return f"  {state['name']:<28} started ({state['kind']})"


def ended_line(state: dict[str, Any]) -> str:
    rows = (f"{humanize.number(state['rows_in'])} rows in, {humanize.number(state['rows_out'])} out,"
            f" {humanize.number(state['rows_rejected'])} rejected")
    files = ""
    if state.get("files_total") is not None or state.get("files_done"):
        total = state["files_total"]
        files = f", {state['files_done']} of {total if total is not None else '?'} file{'' if total == 1 else 's'}"
    status = state["status_label"].lower()
    if state.get("up_to_date"):  # skipped as unchanged (pipelines.freshness): nothing ran
        return f"  {state['name']:<28} {status} ({state['up_to_date']})"
    if state["seconds"] is None:  # never started: skipped after an upstream failure, or cancelled
        line = f"  {state['name']:<28} {status}"
    else:
        line = f"  {state['name']:<28} {status} in {state['duration']}: {rows}{files}"
    if state.get("incremental"):  # how an incremental step ran (pipelines.incremental)
        line += f" ({state['incremental']})"
    after = state.get("after") or []
    if after:
        line += "; then " + ", ".join(label if secs is None else f"{label} {live.duration_words(secs)}"
                                      for label, secs in after)
    if state.get("error"):
        line += f"\n    {'error' if state['status'] == 'failed' else 'why'}: {state['error']}"
    return line


class RunConsole:
    """A listener (:func:`pipelines.live.listening`) and a watcher's consumer: prints step events."""

    def __init__(self, out: Any, *, bar_to: TextIO | None = None) -> None:
        self.out = out  # a command's stdout (OutputWrapper) or any object with write()
        stream = sys.stderr if bar_to is None else bar_to
        self.bar_to = stream if getattr(stream, "isatty", lambda: False)() else None
        self.ended: set[int] = set()
        self._bar = None
        self._task = None

    def __call__(self, event: str, state: dict[str, Any]) -> None:
        if event == live.STARTED:
            self._stop_bar()
            self.out.write(started_line(state) + "\n")
            if state["kind"] == "ingest":
                self._start_bar(state)
        elif event == live.PROGRESS:
            self._update_bar(state)
        elif event == live.ENDED and state["id"] not in self.ended:
            self._stop_bar()
            self.ended.add(state["id"])
            self.out.write(ended_line(state) + "\n")

    def close(self) -> None:
        self._stop_bar()

    # --- the bar (rich, lazily) ---------------------------------------------------------
    def _start_bar(self, state: dict[str, Any]) -> None:
        if self.bar_to is None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("  {task.description}"), BarColumn(), DownloadColumn(),
            TextColumn("{task.fields[files]} files, {task.fields[rows]} rows"), TimeElapsedColumn(),
            console=Console(file=self.bar_to), transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(state["name"], total=None, files="0", rows="0")
        self._update_bar(state)

    def _update_bar(self, state: dict[str, Any]) -> None:
        if self._bar is None:
            return
        total = state.get("bytes_total") or None
        files = f"{state.get('files_done') or 0}/{state['files_total'] if state.get('files_total') is not None else '?'}"
        self._bar.update(self._task, total=total, completed=state.get("bytes_done") or 0, files=files,
                         rows=humanize.number(state["rows_in"]))

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None
