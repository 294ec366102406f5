"""Seed the benchmark database: 1,000 datasets (columns, checks, results, PII findings) and 100,000 runs.

Run by ``benchmarks.api`` in its own process with the benchmark's settings; prints a token.
"""

from __future__ import annotations

import os
import random
import sys
from datetime import timedelta

import django


def main(datasets: int, runs: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from knox.models import AuthToken

    from compliance.models import PiiFinding
    from pipelines.models import Dataset, DatasetColumn, Pipeline, PipelineRun, RunStatus, StepRun
    from quality.models import Check, CheckResult, CheckRun

    rng = random.Random(7)
    now = timezone.now()
    layers = ["explore", "chart", "navigate"]
    made = Dataset.objects.bulk_create(
        [Dataset(name=f"ds_{i:04d}", layer=layers[i % 3], table=f"t_{i:04d}", row_count=rng.randint(0, 10**6),
                 last_loaded_at=now) for i in range(datasets)]
    )
    DatasetColumn.objects.bulk_create(
        [DatasetColumn(dataset=d, name=f"c{j}", position=j, data_type="text") for d in made for j in range(8)]
    )
    checks = Check.objects.bulk_create(
        [Check(dataset=d, name=f"rows_{d.pk}", kind="row_count", params={"min": 1}) for d in made]
        + [Check(dataset=d, name=f"nn_{d.pk}", kind="not_null", columns=["c0"]) for d in made]
    )
    check_runs = CheckRun.objects.bulk_create(
        [CheckRun(dataset=d, trigger="manual", table=f"{d.layer}.{d.table}", status="passed", rows_checked=10)
         for d in made]
    )
    run_of = {r.dataset_id: r for r in check_runs}
    CheckResult.objects.bulk_create(
        [CheckResult(check_run=run_of[c.dataset_id], check_ref=c, check_name=c.name, kind=c.kind, severity="warn",
                     outcome=rng.choice(["pass", "pass", "warn", "fail"]), failing_rows=0) for c in checks]
    )
    PiiFinding.objects.bulk_create(
        [PiiFinding(dataset=d, column="c1", entity="EMAIL_ADDRESS", status=rng.choice(["proposed", "confirmed"]),
                    share=0.9, mean_score=0.9) for d in made[::3]]
    )
    pipelines = Pipeline.objects.bulk_create([Pipeline(name=f"p_{i:02d}") for i in range(20)])
    batch = []
    for i in range(runs):
        started = now - timedelta(minutes=runs - i)
        batch.append(PipelineRun(pipeline=pipelines[i % 20], trigger="schedule", status=RunStatus.SUCCEEDED,
                                 created_at=started, started_at=started, finished_at=started + timedelta(seconds=30),
                                 rows_in=1000, rows_out=1000))
        if len(batch) == 10_000:
            PipelineRun.objects.bulk_create(batch)
            batch = []
    PipelineRun.objects.bulk_create(batch)
    last = list(PipelineRun.objects.order_by("-id")[:2000])
    StepRun.objects.bulk_create(
        [StepRun(run=r, step_name=f"s{j}", kind="refine", status=RunStatus.SUCCEEDED, position=j) for r in last
         for j in range(3)]
    )
    user = get_user_model().objects.create_superuser("bench", password="bench-only-not-secret")
    _, key = AuthToken.objects.create(user=user)
    print(key)


def token_only() -> None:
    """A fresh token for the seeded user (``BENCH_API_REUSE=1`` keeps the database of an earlier run)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
    django.setup()
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    _, key = AuthToken.objects.create(user=get_user_model().objects.get(username="bench"))
    print(key)


if __name__ == "__main__":
    if sys.argv[1:] == ["--token-only"]:
        token_only()
    else:
        main(int(sys.argv[1]), int(sys.argv[2]))
