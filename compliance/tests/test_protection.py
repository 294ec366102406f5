"""Scans after ingest, steward decisions, policies applied as SQL on the engine, and the gate."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from atlas.models import AuditEvent
from compliance.detection import scan_dataset
from compliance.models import ColumnPolicy, PiiFinding, PiiScan
from compliance.policies import PolicyError, decide_finding, pseudonym, set_policy, validate_policy
from pipelines.models import Dataset

from .conftest import run_now

pytestmark = pytest.mark.slow


@pytest.fixture
def steward(db):
    return get_user_model().objects.create_user("steward", password="x", is_staff=True)


def chart_rows(wh, table: str = "customers", columns: str = "*") -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(f'SELECT {columns} FROM chart."{table}" ORDER BY 1').fetchall()


def confirm_all(steward, **entities_by_column) -> None:
    for finding in PiiFinding.objects.filter(dataset__layer="explore"):
        decide_finding(finding, status="confirmed", actor=steward)


def test_ingest_scans_and_proposes_findings(wh, pii_hook, customers_pipeline):
    run = run_now(customers_pipeline())
    assert run.status == "succeeded", run.error
    scan = PiiScan.objects.get()
    assert (scan.status, scan.trigger, scan.dataset.name) == ("succeeded", "ingest", "raw_customers")
    found = {(f.column, f.entity, f.free_text) for f in PiiFinding.objects.all()}
    assert {("email", "EMAIL_ADDRESS", False), ("phone", "PHONE_NUMBER", False), ("first_name", "PERSON", False),
            ("birth_date", "DATE_OF_BIRTH", False), ("postcode", "POSTCODE", False)} <= found
    assert {e for c, e, t in found if c == "notes" and t} >= {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    assert not any(c in ("customer_id", "_batch_id", "_row_number") for c, _, _ in found)
    email = PiiFinding.objects.get(column="email")
    assert email.status == "proposed" and email.share == 1.0 and email.sample_size == 4 and email.name_evidence


def test_a_decision_survives_a_rescan(wh, pii_hook, customers_pipeline, steward):
    run_now(customers_pipeline())
    email = PiiFinding.objects.get(column="email")
    decide_finding(email, status="dismissed", actor=steward, note="test data")
    scan = scan_dataset(email.dataset, actor=steward)
    email.refresh_from_db()
    assert scan.status == "succeeded" and email.status == "dismissed" and email.last_scan == scan
    assert AuditEvent.objects.filter(action="pii.finding.dismissed", actor=steward).exists()


def test_confirmed_findings_protect_chart_on_the_engine(wh, pii_hook, customers_pipeline, steward, settings):
    pipeline = customers_pipeline(extra_refine=True)
    run_now(pipeline)
    confirm_all(steward)
    policies = {(p.dataset.table, p.column): p.action for p in ColumnPolicy.objects.select_related("dataset")}
    assert policies[("customers", "email")] == "hash" and policies[("contacts", "email")] == "hash"
    assert policies[("customers", "phone")] == "mask" and policies[("customers", "birth_date")] == "generalise"
    assert policies[("customers", "notes")] == "anonymise_text"
    set_policy(Dataset.objects.get(name="customers"), "first_name", action="drop", actor=steward)
    run = run_now(pipeline)
    assert run.status == "succeeded", run.error
    cols = [c.name for c in wh.columns("chart", "customers")]
    assert "first_name" not in cols
    rows = {r[0]: dict(zip(cols, r, strict=True)) for r in chart_rows(wh)}
    assert rows[1]["email"] == pseudonym("anna.schmidt@example.com")
    assert rows[1]["email"] == hmac.new(settings.PII_HASH_KEY.encode(), b"anna.schmidt@example.com",
                                        hashlib.sha256).hexdigest()
    assert rows[1]["phone"] == "*" * (len("+49 30 1234567") - 4) + "4567"
    assert rows[1]["birth_date"] == 1987 and rows[4]["birth_date"] == 2001
    assert rows[1]["postcode"] == "SW1A" and rows[2]["postcode"] == "101"
    assert rows[2]["notes"] == "Call me on <PHONE_NUMBER>"
    assert rows[3]["notes"] == "Send the invoice to <EMAIL_ADDRESS>"
    assert rows[4]["notes"] == "Ring the bell twice"
    # The same token in every table: pseudonymised emails still join.
    with wh.cursor() as cur:
        joined = cur.execute(
            'SELECT count(*) FROM chart."customers" c JOIN chart."contacts" k ON k.email = c.email'
        ).fetchone()[0]
    assert joined == 4
    step_run = run.step_runs.get(step_name="refine")
    assert step_run.details["pii_policies"]["email"] == "hash"
    assert settings.PII_HASH_KEY not in step_run.sql


def test_the_gate_refuses_confirmed_pii_without_a_policy(wh, pii_hook, customers_pipeline, steward):
    pipeline = customers_pipeline()
    run_now(pipeline)
    before = chart_rows(wh)
    confirm_all(steward)
    ColumnPolicy.objects.filter(column="email").delete()
    run = run_now(pipeline)
    assert run.status == "failed"
    step_run = run.step_runs.get(step_name="refine")
    assert "confirmed PII without a policy: email (EMAIL_ADDRESS)" in step_run.error
    # The published table is as it was (the staged one, with the other policies, is gone).
    assert chart_rows(wh) == before
    assert [t for t in wh.columns("chart", f"customers__r{run.pk}a1_stg")] == []
    with pytest.raises(PolicyError, match="needs a reason"):
        set_policy(Dataset.objects.get(name="customers"), "email", action="keep", actor=steward)
    set_policy(Dataset.objects.get(name="customers"), "email", action="keep", reason="joins with CRM",
               actor=steward)
    assert run_now(pipeline).status == "succeeded"
    assert chart_rows(wh, columns="email")[0][0].endswith("@example.com")
    assert AuditEvent.objects.filter(action="pii.policy.set", actor=steward).exists()


def test_hmac_tokens_are_equal_on_both_engines(wh, settings):
    """The warehouse under test and the other engine give Python's HMAC-SHA256 for the same text."""
    from atlas.warehouse.duckdb import DuckDBWarehouse
    from compliance.policies import hash_key

    # The PostgreSQL pass compares PostgreSQL with DuckDB; both must equal Python's HMAC.
    engines = [wh] + ([DuckDBWarehouse(":memory:")] if wh.vendor == "postgresql" else [])
    key = hash_key()
    values = ["anna@example.com", "Zoë Ünal", "", "x" * 200, "O'Brien; DROP TABLE"]
    tokens = []
    for engine in engines:
        engine.ensure_pii_hmac(key.key_id, key.ipad, key.opad)
        union = " UNION ALL ".join(f"SELECT {i} AS i, CAST(%s AS text) AS v" for i in range(len(values)))
        # PostgreSQL: pgcrypto's hmac() (the default where installed) and the built-in sha256 fallback.
        variants = [{}] + ([{"implementation": "sha256"}] if engine.vendor == "postgresql" else [])
        for kwargs in variants:
            sql = f"SELECT {engine.pii_hmac_sql('v', key.key_id, **kwargs)} FROM ({union}) AS t ORDER BY i"
            with engine.cursor() as cur:
                tokens.append([r[0] for r in cur.execute(engine.transpile(sql), values).fetchall()])
    assert tokens[0] == [pseudonym(v) for v in values]
    assert all(t == tokens[0] for t in tokens)
    if wh.vendor == "postgresql":
        assert "hmac(" in wh.pii_hmac_sql("v", key.key_id), "pgcrypto is installed in the test warehouse"


@pytest.mark.parametrize("secret", ["k" * 64, "k" * 65, "s" * 200, "short"])
def test_hmac_tokens_for_any_key_length(wh, settings, secret):
    """Keys of a block (64 bytes) or longer are hashed first (RFC 2104), on the engine too."""
    from compliance.policies import hash_key

    settings.PII_HASH_KEY = secret
    key = hash_key()
    wh.ensure_pii_hmac(key.key_id, key.ipad, key.opad)
    sql = f"SELECT {wh.pii_hmac_sql('v', key.key_id)} FROM (SELECT CAST(%s AS text) AS v) AS t"
    with wh.cursor() as cur:
        token = cur.execute(wh.transpile(sql), ["anna@example.com"]).fetchone()[0]
    assert token == hmac.new(secret.encode(), b"anna@example.com", hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("action", "options", "reason", "message"),
    [
        ("keep", {}, "", "needs a reason"),
        ("mask", {"keep_last": -1}, "", "keep_last"),
        ("mask", {"keep_last": "4"}, "", "keep_last"),
        ("generalise", {}, "", '"to"'),
        ("generalise", {"to": "prefix", "chars": 0}, "", "chars"),
        ("redact", {"text": 3}, "", "text must be a string"),
        ("shred", {}, "", "Unknown action"),
    ],
)
def test_bad_policies_are_refused_with_a_reason(action, options, reason, message):
    with pytest.raises(PolicyError, match=message):
        validate_policy(action, options, reason)


def test_policies_only_on_chart(db, steward):
    raw = Dataset.objects.create(name="raw", layer="explore", table="raw")
    with pytest.raises(PolicyError, match="Chart"):
        set_policy(raw, "email", action="hash", actor=steward)


def test_scan_of_an_unloaded_dataset_is_recorded_as_failed(wh):
    ds = Dataset.objects.create(name="empty", layer="explore", table="empty")
    scan = scan_dataset(ds)
    assert scan.status == "failed" and "has not been loaded yet" in scan.error


def test_scan_pii_command(wh, customers_pipeline, capsys, settings):
    settings.ATLAS_STEP_HOOKS = []
    run_now(customers_pipeline())  # no hook: nothing scanned yet
    assert not PiiScan.objects.exists()
    call_command("scan_pii", "explore.customers")
    out = capsys.readouterr().out
    assert "email: EMAIL_ADDRESS [proposed]" in out
    assert PiiScan.objects.get().trigger == "cli"
    with pytest.raises(CommandError, match="Unknown dataset"):
        call_command("scan_pii", "nope")


def test_hash_policies_need_the_key(settings):
    settings.PII_HASH_KEY = ""
    from compliance.policies import hash_key

    with pytest.raises(PolicyError, match="PII_HASH_KEY is not set"):
        hash_key()
