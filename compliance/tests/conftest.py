"""Fixtures for compliance tests: the pipeline factories, and the PII hook switched on."""

from __future__ import annotations

import pytest

from atlas.tests.plugin import run_now  # noqa: F401  (``from .conftest import run_now``)
from pipelines.tests.workers import broker, start  # noqa: F401  (the real worker fixtures: test_scan_worker)

HOOK = "compliance.hooks.PiiHook"

CUSTOMERS_CSV = (
    "customer_id,first_name,email,phone,birth_date,postcode,notes\n"
    "1,Anna,anna.schmidt@example.com,+49 30 1234567,1987-03-04,SW1A 1AA,Leave at the back door\n"
    "2,John,john.smith@example.org,+1 202 555 0143,1990-12-31,10115,Call me on +44 20 7946 0958\n"
    "3,Marie,marie.dupont@example.net,+33 1 42 68 53 00,1975-06-15,75008,Send the invoice to m.d@example.com\n"
    "4,James,james.brown@example.com,+44 20 7946 0123,2001-01-20,EC1A 1BB,Ring the bell twice\n"
)


@pytest.fixture
def pii_hook(settings):
    settings.ATLAS_STEP_HOOKS = [HOOK]
    return HOOK


@pytest.fixture
def customers_pipeline(db, make_csv):
    """Ingest a small customer file into Explore and refine it into chart.customers."""
    from pipelines.models import Dataset, Pipeline, Source, Step

    def build(csv_text: str = CUSTOMERS_CSV, *, extra_refine: bool = False) -> Pipeline:
        path = make_csv(csv_text, "customers.csv")
        source = Source.objects.create(name="customers", location=str(path))
        raw = Dataset.objects.create(name="raw_customers", layer="explore", table="customers")
        clean = Dataset.objects.create(name="customers", layer="chart", table="customers")
        pipeline = Pipeline.objects.create(name="customers")
        Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw,
                            write_mode="append")
        Step.objects.create(
            pipeline=pipeline, name="refine", kind="refine", output=clean, position=1,
            sql="SELECT CAST(customer_id AS integer) AS customer_id, trim(first_name) AS first_name,"
            " lower(trim(email)) AS email, phone, CAST(birth_date AS date) AS birth_date, postcode, notes"
            " FROM explore.customers",
        )
        if extra_refine:
            contacts = Dataset.objects.create(name="contacts", layer="chart", table="contacts")
            Step.objects.create(
                pipeline=pipeline, name="contacts", kind="refine", output=contacts, position=2,
                sql="SELECT lower(trim(email)) AS email, customer_id FROM explore.customers",
            )
        from pipelines.runner import save_step_inputs

        save_step_inputs(pipeline)
        return pipeline

    return build
