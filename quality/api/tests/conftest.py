"""A real run with quality gates: check results with failing samples, rows in quarantine, a PII column."""

from __future__ import annotations

import pytest

from atlas.api.testing import token_client, user_with_role
from atlas.tests.plugin import run_now
from pipelines.models import Dataset, RunStatus

CSV = "id,name,amount\n1,Ann,10\n2,Bob,20\n3,Cy,5\n4,Dee,7,extra,fields\n"


@pytest.fixture
def checked_run(wh, simple_pipeline, settings):
    """The people pipeline run with a drop check on chart.people.name (Ann and Cy fail) and a warn check."""
    from quality.models import Check

    settings.ATLAS_STEP_HOOKS = ["quality.hooks.QualityGate"]
    pipeline = simple_pipeline(csv_text=CSV, max_rejected_share=0.5)
    people = Dataset.objects.get(name="people")
    Check.objects.create(dataset=people, name="b_names", kind="regex", columns=["name"], params={"pattern": "^B"},
                         severity="drop", tolerance=0.9)
    Check.objects.create(dataset=people, name="has_amount", kind="not_null", columns=["amount"], severity="warn")
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    return pipeline


@pytest.fixture
def pii_on_names(db):
    """compliance knows chart.people.name and explore.people.name hold person names (proposed findings)."""
    from compliance.models import PiiFinding

    for name in ("people", "raw_people"):
        PiiFinding.objects.create(dataset=Dataset.objects.get(name=name), column="name", entity="PERSON",
                                  samples=["Ann", "Cy"], sample_size=2, share=1.0, mean_score=0.9)


@pytest.fixture
def clients(db):
    return {role: token_client(user_with_role(role, f"{role.lower()}-q")) for role in ("Operator", "Steward", "Analyst", "Auditor")}
