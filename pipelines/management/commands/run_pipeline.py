"""``manage.py run_pipeline NAME``: run a pipeline, print each step as it starts and ends, then the outcome."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import checks
from django.core.management.base import BaseCommand, CommandError

from pipelines.models import Pipeline, PipelineRun, RunStatus, Trigger

if TYPE_CHECKING:
    from pipelines.run_console import RunConsole


class Command(BaseCommand):
    help = "Run a pipeline, wait for it to end, print the outcome; exit non-zero unless it succeeded."
    # The models' checks only: the others (URLs, admin, templates, security) are about serving
    # pages and import every view; ``manage.py check`` runs them all (README "Commands").
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Pipeline name")
        parser.add_argument("--sync", action="store_true", help="Run in this process instead of a worker.")
        parser.add_argument("--no-wait", action="store_true", help="Queue the run and return at once.")
        parser.add_argument("--timeout", type=float, default=3600.0, help="Seconds to wait for a worker.")
        parser.add_argument(
            "--rerun-failed", type=int, metavar="RUN_ID",
            help="Re-run only the steps that failed or were skipped in this failed or partially failed run.",
        )
        parser.add_argument(
            "--select", "-s", nargs="+", default=[], metavar="SELECTOR",
            help="Run only these steps, as dbt selects: a step or dataset name, tag:NAME, *; +name adds"
                 " its upstream, name+ its downstream (2+name, name+1: at most that far).",
        )
        parser.add_argument("--exclude", nargs="+", default=[], metavar="SELECTOR", help="Leave these steps out.")
        parser.add_argument(
            "--full-refresh", action="store_true",
            help="Load files again that were loaded already; rebuild appended and merged tables (as dbt's).",
        )
        parser.add_argument(
            "--force", action="store_true",
            help="Run every step, even those up to date (inputs and definition unchanged since their last run).",
        )

    def handle(
        self, *args, name: str, sync: bool, no_wait: bool, timeout: float, rerun_failed: int | None = None,
        select: list[str] = (), exclude: list[str] = (), full_refresh: bool = False, force: bool = False,
        **options
    ) -> None:
        pipeline = Pipeline.objects.filter(name=name).first()
        if pipeline is None:
            known = ", ".join(Pipeline.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No pipeline named {name!r} (known: {known}).")
        # The runner, the selection and the console load once the pipeline is known (start-up).
        from pipelines import live, runner, selection
        from pipelines.run_console import RunConsole

        inline = sync or settings.CELERY_TASK_ALWAYS_EAGER
        try:
            if rerun_failed is not None:
                earlier = PipelineRun.objects.filter(pk=rerun_failed, pipeline=pipeline).first()
                if earlier is None:
                    raise CommandError(f"Pipeline {pipeline.name!r} has no run #{rerun_failed}.")
                run = runner.rerun_failed(earlier, trigger=Trigger.CLI, dispatch=not inline)
            else:
                only = selection.select_steps(pipeline, select, exclude)
                run = runner.start_run(pipeline, trigger=Trigger.CLI, dispatch=not inline, only_steps=only,
                                       full_refresh=full_refresh, force=force)
        except (runner.RunRefused, selection.SelectionError) as exc:  # the broker down included: one line
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Run #{run.pk} of {pipeline.name} queued.")
        if no_wait and not inline:
            return
        console = RunConsole(self.stdout)
        try:
            if inline:
                with live.listening(console):
                    runner.execute_run(run.pk)
                run.refresh_from_db()
            else:
                run = self._wait(run, timeout, console)
        finally:
            console.close()
        self._report(run, console)

    def _wait(self, run: PipelineRun, timeout: float, console: RunConsole) -> PipelineRun:
        """Follow a run a worker executes: the same step lines, read from what it stores."""
        from pipelines import live

        deadline = time.monotonic() + timeout
        watcher = live.RunWatcher(run)
        while True:
            run.refresh_from_db()
            for event, state in watcher.poll():
                console(event, state)
            if not run.is_active:
                return run
            if time.monotonic() > deadline:
                raise CommandError(f"Run #{run.pk} still {run.status} after {timeout:.0f} s (is a worker running?).")
            time.sleep(0.5)

    def _report(self, run: PipelineRun, console: RunConsole) -> None:
        from atlas import humanize
        from pipelines import live
        from pipelines.run_console import ended_line

        for sr in run.step_runs.all():  # the steps that never started (skipped after a failure, cancelled)
            if sr.pk not in console.ended:
                self.stdout.write(ended_line(live.step_state(sr)))
        took = live.duration_words(live.seconds(run.started_at, run.finished_at))
        line = (f"Run #{run.pk} {run.status} in {took}: {humanize.number(run.rows_out)} rows out,"
                f" {humanize.number(run.rows_rejected)} rejected.")
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"{line} {run.error}")
        self.stdout.write(self.style.SUCCESS(line))
