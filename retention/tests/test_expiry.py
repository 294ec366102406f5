"""Retention on the real warehouse (DuckDB, and PostgreSQL in the ATLAS_TEST_ENGINE=postgres pass)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from atlas.models import AuditEvent
from pipelines.models import Dataset
from retention import services
from retention.models import RetentionPolicy, RetentionRun

from .conftest import NOW, days_ago, explore_ids, table_ids

pytestmark = pytest.mark.django_db


# --- validation ------------------------------------------------------------------------
def test_a_policy_on_a_missing_column_is_refused_with_the_columns_named(typed_table):
    ds = typed_table([(1, days_ago(1))])
    policy = RetentionPolicy(dataset=ds, column="created", period_days=30)
    with pytest.raises(ValidationError) as err:
        policy.full_clean()
    message = err.value.message_dict["column"][0]
    assert "has no column 'created'" in message and "happened_at" in message


def test_a_policy_on_a_number_column_is_refused(typed_table):
    ds = typed_table([(1, days_ago(1))])
    with pytest.raises(services.PolicyError) as err:
        services.validate_policy(ds, "amount", 30, "delete")
    assert "retention needs a date or timestamp column" in err.value.errors["column"]


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (0, "at least 1 day"),
        (-5, "at least 1 day"),
        (10**6, "a hundred years"),
        ("30", "at least 1 day"),
    ],
)
def test_a_bad_period_is_refused(typed_table, period, message):
    ds = typed_table([(1, days_ago(1))])
    with pytest.raises(services.PolicyError) as err:
        services.validate_policy(ds, "happened_at", period, "delete")
    assert message in err.value.errors["period_days"]


def test_an_unknown_action_and_an_empty_column_are_refused(typed_table):
    ds = typed_table([(1, days_ago(1))])
    with pytest.raises(services.PolicyError) as err:
        services.validate_policy(ds, "", 30, "archive")
    assert set(err.value.errors) == {"column", "action"}


def test_a_dataset_never_loaded_cannot_have_a_policy_yet(wh):
    ds = Dataset.objects.create(name="later", layer="chart", table="later")
    with pytest.raises(services.PolicyError) as err:
        services.validate_policy(ds, "_ingested_at", 30, "delete")
    assert "not known yet" in err.value.errors["column"]


def test_timestamp_date_ingestion_and_text_columns_are_accepted(typed_table, explore_batches):
    ds = typed_table([(1, days_ago(1))])
    assert services.validate_policy(ds, "happened_at", 30, "delete") == "timestamp"
    dated = typed_table([(1, days_ago(1))], table="dated", ts_type="date")
    assert services.validate_policy(dated, "happened_at", 30, "delete") == "timestamp"
    raw, _ = explore_batches(["id,seen_at\n1,2026-01-01\n"], [1])
    assert services.validate_policy(raw, "_ingested_at", 30, "delete") == "timestamp"
    assert services.validate_policy(raw, "seen_at", 30, "delete") == "text"


# --- expiry on a typed column --------------------------------------------------------
def test_expiry_deletes_exactly_the_rows_older_than_the_cutoff_and_keeps_the_boundary(
    wh, typed_table
):
    cutoff = NOW - timedelta(days=30)
    ds = typed_table(
        [
            (1, cutoff - timedelta(days=400)),
            (2, cutoff - timedelta(seconds=1)),  # just expired
            (3, cutoff),  # exactly at the cutoff: kept
            (4, cutoff + timedelta(seconds=1)),
            (5, None),  # no timestamp: nothing says it is old
            (6, NOW),
        ]
    )
    Dataset.objects.filter(pk=ds.pk).update(row_count=6)  # as its last load left it
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert run.cutoff == cutoff
    assert (run.rows_removed, run.partitions_dropped, run.method) == (2, 0, "delete")
    assert table_ids(wh, "chart", "events") == [3, 4, 5, 6]
    policy.refresh_from_db()
    assert policy.status == RetentionPolicy.Status.WITHIN and policy.expired_rows == 0
    assert policy.oldest_value == cutoff
    ds.refresh_from_db()
    assert ds.row_count == 4
    event = AuditEvent.objects.filter(action="retention.applied").get()
    assert event.detail["rows_removed"] == 2 and event.target_id == str(ds.pk)


def test_a_date_column_counts_whole_days_in_utc(wh, typed_table):
    ds = typed_table(
        [(1, days_ago(31).date()), (2, days_ago(30).date()), (3, days_ago(29).date())],
        ts_type="date",
    )
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    run = services.apply_policy(policy, now=NOW)
    # The cutoff is 2026-05-02 12:00 UTC: 2026-05-01 and 2026-05-02 (midnight) are before it.
    assert run.rows_removed == 2
    assert table_ids(wh, "chart", "events") == [3]


def test_a_report_only_policy_never_deletes_and_stays_overdue(wh, typed_table):
    ds = typed_table([(1, days_ago(100)), (2, days_ago(1))], layer="navigate", table="totals")
    policy = services.save_policy(
        RetentionPolicy(dataset=ds, column="happened_at", period_days=30, action="report")
    )
    run = services.apply_policy(policy, now=NOW)
    assert (run.method, run.rows_expired, run.rows_removed) == ("report", 1, 0)
    assert table_ids(wh, "navigate", "totals") == [1, 2]
    policy.refresh_from_db()
    assert policy.is_overdue and policy.expired_rows == 1


def test_the_status_is_computed_from_the_warehouse(wh, typed_table):
    ds = typed_table([(1, days_ago(45)), (2, days_ago(1))])
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    services.refresh_status(policy, now=NOW)
    assert policy.status == RetentionPolicy.Status.OVERDUE
    assert (policy.expired_rows, policy.oldest_value) == (1, days_ago(45))
    services.refresh_status(policy, now=NOW - timedelta(days=20))
    assert policy.status == RetentionPolicy.Status.WITHIN


def test_a_dataset_whose_table_is_gone_is_skipped_and_reported(wh, typed_table):
    ds = typed_table([(1, days_ago(45))])
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    ds.columns.create(name="happened_at", data_type="timestamp with time zone")
    wh.drop_table("chart", "events")
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SKIPPED and "does not exist" in run.details["reason"]
    policy.refresh_from_db()
    assert policy.status == RetentionPolicy.Status.EMPTY


def test_a_column_dropped_since_fails_the_run_with_the_reason_and_changes_nothing(wh, typed_table):
    ds = typed_table([(1, days_ago(45))])
    policy = services.save_policy(RetentionPolicy(dataset=ds, column="happened_at", period_days=30))
    with wh.cursor() as cur:
        cur.execute(f"ALTER TABLE {wh.table('chart', 'events')} DROP COLUMN happened_at")
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.FAILED and "has no column 'happened_at'" in run.error
    assert table_ids(wh, "chart", "events") == [1]
    assert AuditEvent.objects.filter(action="retention.failed").count() == 1
    policy.refresh_from_db()
    assert policy.status == RetentionPolicy.Status.ERROR


# --- Explore: text timestamps, ingestion time, batches --------------------------------
SEEN_CSV = (
    "id,seen_at\n"
    "a,2026-01-01\n"  # expired
    "b,2026-01-01T10:00:00Z\n"  # expired
    "c, 2026-05-31 09:00:00+02:00 \n"  # recent (spaces trimmed)
    "d,31/12/2020\n"  # does not parse: kept and reported
    "e,2026-02-30\n"  # looks ISO, not a date: kept and reported
    "f,\n"  # empty: kept, not counted as unparseable
    "g,soon\n"
)


def test_text_timestamps_are_parsed_safely_and_unparseable_rows_are_reported_not_deleted(
    wh, explore_batches
):
    raw, _ = explore_batches([SEEN_CSV], [0], table="seen")
    policy = services.save_policy(RetentionPolicy(dataset=raw, column="seen_at", period_days=30))
    services.refresh_status(policy, now=NOW)
    assert (policy.status, policy.expired_rows, policy.unparseable_rows) == ("overdue", 2, 3)
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert (run.rows_removed, run.unparseable_rows) == (2, 3)
    assert explore_ids(wh, "seen") == ["c", "d", "e", "f", "g"]
    policy.refresh_from_db()
    assert policy.unparseable_rows == 3 and policy.status == RetentionPolicy.Status.WITHIN


def test_expired_batches_go_and_the_same_file_can_be_loaded_again(wh, explore_batches):
    old, new = "id\n1\n2\n", "id\n3\n"
    raw, batches = explore_batches([old, new], [400, 2])
    policy = services.save_policy(
        RetentionPolicy(dataset=raw, column="_ingested_at", period_days=365)
    )
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert run.rows_removed == 2
    assert run.details["batches_expired"] == [batches[0]]
    assert explore_ids(wh, "visits") == ["3"]
    # The expired file is forgotten by the batch ledger; the live one is not.
    assert (
        wh.loaded_batch(
            "explore.visits", raw.batches.get(batch_id=batches[0], status="loaded").checksum
        )
        is None
    )
    assert (
        wh.loaded_batch(
            "explore.visits", raw.batches.get(batch_id=batches[1], status="loaded").checksum
        )
        == batches[1]
    )
    from .conftest import run_now

    rerun = run_now(raw.producing_steps.get().pipeline)
    assert rerun.status == "succeeded", rerun.error
    assert explore_ids(wh, "visits") == ["1", "2", "3"]


def test_quarantined_records_expire_with_their_dataset(wh, explore_batches):
    raw, batches = explore_batches(["id,n\n1,2\n"], [400], table="q")
    name = wh.ensure_quarantine_table("explore", "q")
    with wh.cursor() as cur:
        cur.execute(
            f"INSERT INTO {wh.table('explore', name)} (_batch_id, _reason, _raw_record, _quarantined_at)"
            " VALUES (%s, 'bad', 'x,y,z', %s), (%s, 'bad', 'u,v,w', %s)",
            [batches[0], days_ago(400), batches[0], days_ago(3)],
        )
    policy = services.save_policy(
        RetentionPolicy(dataset=raw, column="_ingested_at", period_days=30)
    )
    run = services.apply_policy(policy, now=NOW)
    assert (run.rows_removed, run.quarantine_rows_removed) == (1, 1)
    assert wh.row_count("explore", name) == 1


@pytest.mark.postgres
def test_on_postgresql_expired_batches_are_dropped_as_whole_partitions(wh, explore_batches):
    raw, batches = explore_batches(["id\n1\n2\n", "id\n3\n", "id\n4\n"], [500, 400, 10])

    def partitions() -> list[str]:
        with wh.cursor() as cur:
            return sorted(
                r[0]
                for r in cur.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'explore.visits'::regclass"
                ).fetchall()
            )

    before = partitions()
    assert len(before) == 3
    policy = services.save_policy(
        RetentionPolicy(dataset=raw, column="_ingested_at", period_days=365)
    )
    # The status is read per partition (one row each, expired ones counted).
    services.refresh_status(policy, now=NOW)
    assert (policy.status, policy.expired_rows, policy.oldest_value) == (
        "overdue",
        3,
        days_ago(500),
    )
    run = services.apply_policy(policy, now=NOW)
    assert run.status == RetentionRun.Status.SUCCEEDED, run.error
    assert (run.method, run.partitions_dropped, run.rows_removed) == ("partition drop", 2, 3)
    policy.refresh_from_db()
    assert (policy.status, policy.expired_rows, policy.oldest_value) == ("within", 0, days_ago(10))
    assert sorted(run.details["batches_expired"]) == sorted(batches[:2])
    after = partitions()
    assert len(after) == 1
    # The dropped partitions are gone from the catalogue, not just emptied.
    with wh.cursor() as cur:
        for name in set(before) - set(after):
            assert cur.execute("SELECT to_regclass(%s)", [f"explore.{name}"]).fetchone()[0] is None
    assert explore_ids(wh, "visits") == ["4"]


@pytest.mark.postgres
def test_on_postgresql_a_partition_straddling_the_cutoff_is_deleted_into(wh, explore_batches):
    raw, batches = explore_batches(["id\n1\n2\n"], [400])
    with wh.cursor() as cur:  # not something an ingest produces: one row made young again
        cur.execute("UPDATE explore.visits SET _ingested_at = %s WHERE id = '2'", [days_ago(1)])
    policy = services.save_policy(
        RetentionPolicy(dataset=raw, column="_ingested_at", period_days=30)
    )
    run = services.apply_policy(policy, now=NOW)
    assert (run.partitions_dropped, run.rows_removed) == (0, 1)
    assert len(run.details["straddling_partitions"]) == 1
    assert explore_ids(wh, "visits") == ["2"]


def test_apply_all_applies_the_enabled_policies_and_isolates_failures(wh, typed_table):
    good = typed_table([(1, days_ago(45)), (2, days_ago(1))])
    off = typed_table([(1, days_ago(45))], table="off")
    broken = typed_table([(1, days_ago(45))], table="broken")
    services.save_policy(RetentionPolicy(dataset=good, column="happened_at", period_days=30))
    services.save_policy(
        RetentionPolicy(dataset=off, column="happened_at", period_days=30, enabled=False)
    )
    services.save_policy(RetentionPolicy(dataset=broken, column="happened_at", period_days=30))
    with wh.cursor() as cur:
        cur.execute(f"ALTER TABLE {wh.table('chart', 'broken')} DROP COLUMN happened_at")
    summary = services.apply_all(now=NOW)
    assert sorted((r.dataset.name, r.status) for r in summary.runs) == [
        ("chart_broken", "failed"),
        ("chart_events", "succeeded"),
    ]
    assert summary.rows_removed == 1
    assert table_ids(wh, "chart", "off") == [1]
