"""The demo pipeline end to end: the generator's dirt is handled exactly."""

import json

import pytest
from django.conf import settings
from django.core.management import call_command

from demo.install import PIPELINE
from pipelines.models import Dataset, LoadedBatch, Pipeline, RunStatus
from pipelines.tests.conftest import run_now


@pytest.mark.step_hooks  # the default hooks: this test is about what they do
def test_the_demo_runs_through_all_layers_and_counts_match_the_manifest(wh, capsys):
    call_command("load_demo", "--rows", "600")
    manifest = json.loads((settings.ATLAS_DEMO_DIR / "manifest.json").read_text())["files"]
    run = run_now(Pipeline.objects.get(name=PIPELINE))
    assert run.status == RunStatus.SUCCEEDED, run.error
    steps = {s.step_name: s for s in run.step_runs.all()}
    # The quality gate drops orders whose status is empty to quarantine (check status_present).
    dirt = json.loads((settings.ATLAS_DEMO_DIR / "manifest.json").read_text())["dirt"]
    dropped = {"orders": dirt["orders"]["empty_status"]}
    assert dropped["orders"] > 0
    for name, info in manifest.items():
        ingest = steps[f"ingest_{name}"]
        assert ingest.rows_rejected == info["malformed_rows"], name
        assert ingest.rows_out == info["good_rows"] + info["duplicate_rows"], name
        refine = steps[f"refine_{name}"]
        assert refine.rows_out == info["good_rows"] - dropped.get(name, 0), name
        quarantined = sum(q["rows_quarantined"] for q in refine.details.get("quality", []))
        assert quarantined == dropped.get(name, 0), name
    clv = Dataset.objects.get(layer="navigate", table="customer_lifetime_value")
    assert clv.row_count == manifest["customers"]["good_rows"]
    with wh.cursor() as cur:
        null_dates = cur.execute("SELECT count(*) FROM chart.customers WHERE birth_date IS NULL").fetchone()[0]
        padded = cur.execute("SELECT count(*) FROM chart.customers WHERE email <> trim(lower(email))").fetchone()[0]
        revenue = cur.execute("SELECT sum(revenue) FROM navigate.daily_revenue").fetchone()[0]
    assert null_dates == 0 and padded == 0 and revenue > 0

    again = run_now(Pipeline.objects.get(name=PIPELINE))
    assert again.status == RunStatus.SUCCEEDED
    assert {s.status for s in again.step_runs.filter(kind="ingest")} == {RunStatus.SKIPPED}
    assert LoadedBatch.objects.filter(status="skipped").count() == 4
