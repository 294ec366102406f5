"""No PII in what leaves Atlas (issue 15, item 5): a corpus of failing steps whose data is PII.

Each case makes a real step fail on the test's engine (DuckDB embedded, or PostgreSQL in the
PostgreSQL pass) with a cast, a constraint violation (unique, not null, check, foreign key),
a JSON parse, a date parse or an ingest parse error, on rows holding e-mails, names and
phones. None of those values may appear in the stored step-run and run errors, their
tracebacks and tries, the OpenLineage events, the log records, the API's run body or an
alert's text; the message keeps what is useful (the problem, the type, the table).
"""

from __future__ import annotations

import json
import logging

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions

from atlas.api.exceptions import exception_handler
from atlas.api.testing import token_client, user_with_role
from atlas.scrub import VALUE, scrub, scrub_record, scrub_traceback
from atlas.tests.plugin import run_now
from pipelines.models import RunStatus, Step

pytestmark = pytest.mark.django_db

EMAIL, EMAIL2 = "giulia.esposito@posta-example.it", "jan.dekker@voorbeeld.nl"
NAME, NAME2 = "Giulia Esposito", "Żaneta O'Brien"
PHONE = "+39 06 6982 4410"
PII = (EMAIL, EMAIL2, NAME, NAME2, PHONE, "giulia.esposito", "Esposito", "O'Brien", "6982 4410", "jan.dekker")
CSV = f"id,name,amount\n1,{EMAIL},10\n2,{NAME},-3\n3,{PHONE},7\n4,{NAME2},\n5,{EMAIL},2\n"
REFINE = "SELECT CAST(id AS integer) AS id, {expr} AS name, CAST(amount AS numeric(12,2)) AS amount FROM explore.people"
CHART_DDL = "CREATE TABLE chart.people (id integer, name text {constraint}, amount numeric(12,2) {amount})"

# name -> (refine expression, DDL of the published table or None, what the error must still say)
CASES = {
    "cast e-mail to integer": ("CAST(name AS integer)", None, ("integer", "int")),
    "cast name to date": ("CAST(name AS date)", None, ("date",)),
    "cast phone to bigint": ("CAST(name AS bigint)", None, ("bigint", "int64")),
    "cast name to numeric": ("CAST(name AS numeric(10,2))", None, ("numeric", "decimal")),
    "cast name to boolean": ("CAST(name AS boolean)", None, ("boolean", "bool")),
    "json parse": ("CAST(CAST(name AS json) AS text)", None, ("json",)),
    "unique": ("CASE WHEN id IN ('1', '5') THEN name ELSE id END", ("UNIQUE", ""), ("unique", "duplicate")),
    "not null": ("CASE WHEN id = '4' THEN NULL ELSE name END", ("NOT NULL", ""), ("null",)),
    "check": ("name", ("", "CHECK (amount > 0)"), ("check",)),
    "foreign key": ("name", ("REFERENCES chart.parents (email)", ""), ("foreign key",)),
}


def _leaks(text: str) -> list[str]:
    return [v for v in PII if v.lower() in text.lower()]


@pytest.fixture
def lineage_hook(settings):
    settings.ATLAS_STEP_HOOKS = ["lineage.hooks.LineageHook"]
    settings.OPENLINEAGE_URL = ""


@pytest.fixture
def alert_rule(db):
    from alerts.models import AlertRule

    return AlertRule.objects.create(name="ops", events=["run_failed", "run_partially_failed"], channel="webhook",
                                    url="https://hooks.example.com/atlas")


def _fail(wh, simple_pipeline, case):
    expr, ddl, _useful = CASES[case]
    pipeline = simple_pipeline(csv_text=CSV)
    Step.objects.filter(pipeline=pipeline, name="refine").update(sql=REFINE.format(expr=expr), write_mode="append")
    if ddl is not None:
        with wh.cursor() as cur:
            if "REFERENCES" in ddl[0]:
                cur.execute("CREATE TABLE chart.parents (email text PRIMARY KEY)")
                cur.execute("INSERT INTO chart.parents VALUES ('someone.else@example.com')")
            cur.execute(CHART_DDL.format(constraint=ddl[0], amount=ddl[1]))
    return run_now(pipeline)


@pytest.mark.step_hooks  # the project's hooks: PII scan, quality, alerts, lineage
@pytest.mark.parametrize("case", list(CASES))
def test_a_failing_step_on_pii_leaks_no_value_anywhere(wh, simple_pipeline, alert_rule, caplog, settings, case):
    # Privacy by default would protect (or drop) the PII column before the failing expression is
    # ever evaluated: these cases are about the failure, so no default protection.
    settings.PII_DEFAULT_PROTECT_CONFIDENCE = 1.1
    from alerts import messages
    from alerts.models import AlertEvent
    from lineage.models import OutboxEvent

    caplog.set_level(logging.DEBUG)
    run = _fail(wh, simple_pipeline, case)
    assert run.status in (RunStatus.FAILED, "partial"), run.status
    step = run.step_runs.get(step_name="refine")
    assert step.status == RunStatus.FAILED and step.error

    stored = {
        "step error": step.error, "step traceback": step.traceback, "step tries": json.dumps(step.tries),
        "run error": run.error, "run traceback": run.traceback,
        "lineage events": json.dumps([e.payload for e in OutboxEvent.objects.all()]),
        "logs": caplog.text + " ".join(r.getMessage() for r in caplog.records),
    }
    api = token_client(user_with_role("Analyst", "ana"))
    stored["API run"] = json.dumps(api.get(f"/api/v1/runs/{run.pk}/").json())
    events = list(AlertEvent.objects.all())
    assert any(e.kind in ("run_failed", "run_partially_failed") for e in events), events
    stored["alerts"] = " ".join(messages.text(e, alert_rule) + json.dumps(messages.webhook_payload(e, alert_rule))
                                + json.dumps(messages.slack_payload(e, alert_rule)) for e in events)
    for where, text in stored.items():
        assert not _leaks(text), f"{case}: {where} leaks {_leaks(text)}:\n{text}"
    # Still useful: what went wrong, where.
    _expr, _ddl, useful = CASES[case]
    assert any(word in step.error.lower() for word in useful), step.error
    fail = OutboxEvent.objects.filter(event_type="FAIL", step_run=step).get()
    assert fail.payload["run"]["facets"]["errorMessage"]["message"] == step.error


def test_an_ingest_parse_error_on_pii_leaks_no_value(wh, simple_pipeline, lineage_hook, caplog):
    """A file whose rows do not parse (too many fields) and a reject limit of none: the step fails."""
    from lineage.models import OutboxEvent

    caplog.set_level(logging.DEBUG)
    bad = f'id,name,amount\n1,{EMAIL},10\n2,"{NAME}",{PHONE},x,y\n3,{NAME2},"unterminated {EMAIL2}\n'
    pipeline = simple_pipeline(csv_text=bad, max_rejected_share=0.0)
    run = run_now(pipeline)
    step = run.step_runs.get(step_name="ingest")
    texts = [step.error, step.traceback, run.error, json.dumps(step.tries), caplog.text,
             json.dumps([e.payload for e in OutboxEvent.objects.all()])]
    for text in texts:
        assert not _leaks(text), text
    assert step.status == RunStatus.FAILED, step.error
    assert "line" in step.error.lower() or "reject" in step.error.lower() or "quarantine" in step.error.lower(), step.error


# --- the engines' own messages, straight from a raw connection -----------------------------------
STATEMENTS = [
    f"SELECT CAST('{EMAIL}' AS integer)",
    f"SELECT CAST('{NAME}' AS date)",
    f"SELECT CAST('{PHONE}' AS bigint)",
    f"SELECT CAST('{NAME}' AS timestamp)",
    f"SELECT CAST('{{\"email\": \"{EMAIL}\", }}' AS json)",
    "INSERT INTO s.p VALUES (2, '{EMAIL}')".replace("{EMAIL}", EMAIL),
    "INSERT INTO s.c VALUES ('nobody@example.com', 'x', 1)",
    f"INSERT INTO s.c VALUES ('{EMAIL}', NULL, 1)",
    f"INSERT INTO s.c VALUES ('{EMAIL}', '{NAME}', -1)",
]


def _raw_errors(wh) -> list[str]:
    """The messages the engine itself gives (what a careless ``str(exc)`` would store)."""
    ddl = ("CREATE SCHEMA s", "CREATE TABLE s.p (id integer PRIMARY KEY, email text UNIQUE)",
           f"INSERT INTO s.p VALUES (1, '{EMAIL}')",
           "CREATE TABLE s.c (email text REFERENCES s.p (email), name text NOT NULL, n integer CHECK (n > 0))")
    errors = []
    if wh.vendor == "postgresql":
        import psycopg

        with psycopg.connect(wh.conninfo, autocommit=True) as con:
            con.execute("DROP SCHEMA IF EXISTS s CASCADE")
            for sql in ddl:
                con.execute(sql)
            for sql in STATEMENTS:
                try:
                    con.execute(sql)
                except psycopg.Error as exc:
                    errors.append(str(exc))
            with pytest.raises(psycopg.Error) as info, con.cursor().copy("COPY s.c FROM STDIN (FORMAT csv)") as copy:
                copy.write(f"{EMAIL},{NAME},{PHONE}\n")
            errors.append(str(info.value))
            con.execute("DROP SCHEMA s CASCADE")
    else:
        import duckdb

        con = duckdb.connect()
        for sql in ddl:
            con.execute(sql)
        for sql in [*STATEMENTS, f"SELECT strptime('{EMAIL}', '%Y-%m-%d')",
                    f"SELECT json_extract('{{\"e\": {EMAIL}}}', '$.e')"]:
            try:
                con.execute(sql)
            except duckdb.Error as exc:
                errors.append(str(exc))
    return errors


def test_every_raw_engine_error_is_scrubbed_and_stays_readable(wh):
    errors = _raw_errors(wh)
    assert len(errors) >= 9, errors
    assert any(_leaks(e) for e in errors), "the engine does quote the values"
    for raw in errors:
        clean = scrub(raw)
        assert not _leaks(clean), (raw, clean)
        assert scrub(clean) == clean  # idempotent
        assert clean.split("\n")[0].split(":")[0] == raw.split("\n")[0].split(":")[0]  # the class stays


def test_api_error_bodies_carry_no_value(wh):
    for raw in _raw_errors(wh):
        for exc in (exceptions.APIException(f"The warehouse could not be read: {raw}"),
                    exceptions.ValidationError({"sql": [raw]}), DjangoValidationError(raw)):
            response = exception_handler(exc, {"view": None})
            body = json.dumps(response.data)
            assert not _leaks(body), body


def test_log_records_and_tracebacks_carry_no_value(wh, caplog):
    errors = _raw_errors(wh)
    log = logging.getLogger("atlas.tests.scrub")
    caplog.set_level(logging.INFO)
    for raw in errors:
        log.warning("Step failed: %s", raw)
        log.info(f"inline {raw}")
        try:
            raise RuntimeError(raw)
        except RuntimeError:
            log.exception("Unhandled")
    assert not _leaks(caplog.text), caplog.text
    assert not _leaks(" ".join(r.getMessage() for r in caplog.records))
    assert caplog.text.count("Traceback (most recent call last)") == len(errors)


def test_scrub_keeps_names_numbers_and_structure():
    assert scrub('null value in column "email" of relation "people" violates not-null constraint\n'
                 "DETAIL:  Failing row contains (1, ann@x.org, null).") == (
        'null value in column "email" of relation "people" violates not-null constraint\n'
        "DETAIL:  Failing row contains (<row>).")
    assert scrub("COPY people, line 7, column age: \"Ann\"") == f"COPY people, line 7, column age: {VALUE}"
    assert scrub('Constraint Error: Duplicate key "email: a@b.co" violates unique constraint.') == (
        f'Constraint Error: Duplicate key "email: {VALUE}" violates unique constraint.')
    # A value holding a quote is hidden whole; apostrophes of words are not quotes.
    assert "Brien" not in scrub("Could not convert string 'Ann O'Brien' to INT32")
    assert scrub("The step's run can't start: step 'refine' failed.") == "The step's run can't start: step 'refine' failed."
    assert scrub(None) == "" and scrub("") == ""


def test_a_traceback_keeps_its_frames_and_loses_the_values():
    try:
        raise ValueError(f'invalid input syntax for type integer: "{EMAIL}"')
    except ValueError:
        import traceback

        text = traceback.format_exc()
    clean = scrub_traceback(text)
    assert EMAIL not in clean and "test_scrubbing.py" in clean and "Traceback" in clean
    assert 'invalid input syntax for type integer: "<value>"' in clean


def test_a_log_record_made_before_installation_is_scrubbed_by_scrub_record():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "failed: %s", (f"Key (email)=({EMAIL}) already exists.",), None)
    assert EMAIL not in scrub_record(record).getMessage()


def test_alert_facts_and_titles_are_scrubbed_when_recorded(db):
    from alerts.service import record
    from atlas.alerting import Event

    [row] = record([Event(kind="run_failed", title=f"Run failed: Could not convert string '{EMAIL}' to INT32",
                          facts={"error": f'invalid input syntax for type date: "{NAME}"', "rows": 3})], rules=[])
    assert not _leaks(row.title + json.dumps(row.facts)), (row.title, row.facts)
    assert row.facts["rows"] == 3


def test_errors_stored_by_an_older_release_are_scrubbed_when_read(wh, simple_pipeline):
    """``ErrorTextField`` scrubs on read: rows written before this release show no value either."""
    from django.db import connection

    from pipelines.models import PipelineRun

    run = run_now(simple_pipeline())
    with connection.cursor() as cur:
        cur.execute(f"UPDATE {PipelineRun._meta.db_table} SET error = %s WHERE id = %s",
                    [f"Key (email)=({EMAIL}) already exists.", run.pk])
    assert PipelineRun.objects.get(pk=run.pk).error == f"Key (email)=({VALUE}) already exists."
