"""S3-compatible object storage sources, against a real local S3 server (moto's server mode, pipelines/objectstore.py).

The issue's failure first: there was no object storage source at all; an s3:// glob of
gzip CSVs now loads, one batch per object, each with its checksum.
"""

from __future__ import annotations

import gzip
import os

import pytest
from django.core.exceptions import ValidationError

from atlas.warehouse.filereader import IngestError
from pipelines import objectstore
from pipelines.models import RunStatus, Source, StepRun
from pipelines.sources import CHUNK, source_files

from .conftest import explore_rows, run_now
from .connector_fixtures import S3_KEY_ID, S3_SECRET, s3_options

pytestmark = pytest.mark.xdist_group("s3")


def bucket(client, name: str, objects: dict[str, bytes]) -> str:
    client.create_bucket(Bucket=name)
    for key, body in objects.items():
        client.put_object(Bucket=name, Key=key, Body=body)
    return name


def test_an_s3_glob_of_gzip_csvs_loads_one_batch_per_object(wh, s3, s3_endpoint, ingest_pipeline):
    bucket(s3, "exports", {
        "daily/2026-01-01.csv.gz": gzip.compress(b"id,name\n1,Ann\n2,Bob\n"),
        "daily/2026-01-02.csv.gz": gzip.compress(b"id,name\n3,Cy\n"),
        "daily/notes.txt": b"not data",
        "daily/old/2025-12-31.csv.gz": gzip.compress(b"id,name\n9,Old\n"),  # * stays within one level
    })
    pipeline = ingest_pipeline(
        kind="s3", location="s3://exports/daily/*.csv.gz", options=s3_options(s3_endpoint), table="exports"
    )
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(explore_rows(wh, "exports", "id, name")) == [("1", "Ann"), ("2", "Bob"), ("3", "Cy")]
    step = StepRun.objects.get(run=run)
    assert step.rows_out == 3
    labels = sorted(step.batches.values_list("file", flat=True))
    assert labels == ["s3://exports/daily/2026-01-01.csv.gz", "s3://exports/daily/2026-01-02.csv.gz"]


def test_objects_already_loaded_are_skipped_and_only_a_new_object_loads(wh, s3, s3_endpoint, ingest_pipeline):
    bucket(s3, "incoming", {"a/1.csv": b"id\n1\n", "a/2.csv": b"id\n2\n"})
    pipeline = ingest_pipeline(kind="s3", location="s3://incoming/a/*.csv", options=s3_options(s3_endpoint), table="incoming")
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    s3.put_object(Bucket="incoming", Key="a/3.csv", Body=b"id\n3\n")
    s3.put_object(Bucket="incoming", Key="a/copy-of-1.csv", Body=b"id\n1\n")  # same content, another name
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert sorted(explore_rows(wh, "incoming", "id")) == [("1",), ("2",), ("3",)]
    step = StepRun.objects.get(run=run)
    assert step.rows_out == 1
    assert step.batches.filter(status="skipped").count() == 3


def test_double_star_crosses_levels_and_a_plain_key_names_one_object(db, s3, s3_endpoint):
    bucket(s3, "tree", {"x/a.csv": b"id\n1\n", "x/y/b.csv": b"id\n2\n", "x/y/z/c.csv": b"id\n3\n", "x/y/b.json": b"{}"})

    def labels(location: str) -> list[str]:
        source = Source(name="s", kind="s3", location=location, options=s3_options(s3_endpoint))
        with source_files(source) as files:
            return [f.label for f in files]

    assert labels("s3://tree/x/**.csv") == ["s3://tree/x/a.csv", "s3://tree/x/y/b.csv", "s3://tree/x/y/z/c.csv"]
    assert labels("s3://tree/x/*/?.csv") == ["s3://tree/x/y/b.csv"]
    assert labels("s3://tree/x/y/[!a]*.csv") == ["s3://tree/x/y/b.csv"]
    assert labels("s3://tree/x/a.csv") == ["s3://tree/x/a.csv"]


def test_glob_regex_keeps_single_stars_within_one_level():
    rx = objectstore.glob_regex("p/*.csv.gz")
    assert rx.match("p/a.csv.gz") and not rx.match("p/q/a.csv.gz") and not rx.match("p/a.csv.gz.bak")
    assert objectstore.parse("s3://b-1/p/*.csv").prefix == "p/"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://missing-bucket/a/*.csv", "the bucket does not exist (NoSuchBucket)"),
        ("s3://present/a/none-*.csv", "No object matches s3://present/a/none-*.csv."),
        ("s3://present/a/absent.csv", "no such object"),
    ],
)
def test_what_cannot_be_read_is_named_clearly(db, s3, s3_endpoint, location, expected):
    if "present" in location:
        bucket(s3, "present", {"a/x.csv": b"id\n1\n"})
    source = Source(name="s", kind="s3", location=location, options=s3_options(s3_endpoint))
    with pytest.raises(IngestError) as info, source_files(source) as files:
        list(files)
    assert expected in str(info.value)
    assert S3_SECRET not in str(info.value) and S3_KEY_ID not in str(info.value)


def test_an_endpoint_is_admitted_only_when_the_operator_lists_it(db, s3, s3_endpoint, settings):
    bucket(s3, "guarded", {"a.csv": b"id\n1\n"})
    source = Source(name="guarded", kind="s3", location="s3://guarded/a.csv", options=s3_options(s3_endpoint))
    source.full_clean()
    settings.ATLAS_S3_ENDPOINTS = []
    with pytest.raises(ValidationError) as info:
        source.full_clean()
    assert "ATLAS_S3_ENDPOINTS" in str(info.value)
    with pytest.raises(IngestError, match="not allowed: an operator must list it in ATLAS_S3_ENDPOINTS"), source_files(source):
        pass
    for endpoint in ("http://169.254.169.254", "file:///etc", "http://user:pw@127.0.0.1:9000"):
        with pytest.raises(ValidationError):
            Source(name="x", kind="s3", location="s3://guarded/a.csv", options={"endpoint_url": endpoint}).full_clean()


@pytest.mark.parametrize(
    ("location", "options", "field", "message"),
    [
        ("s3://Bad_Bucket/a.csv", {}, "location", "not a valid bucket name"),
        ("s3://data/", {}, "location", "Name an object or a glob"),
        ("https://data/a.csv", {}, "location", "needs an s3://bucket/key location"),
        ("s3://data/a.csv", {"access_key_id": S3_KEY_ID, "secret_access_key": "env:ATLAS_SOURCE_SECRET_X"}, "options", "never the secret itself"),
        ("s3://data/a.csv", {"access_key_id": "env:ATLAS_SOURCE_SECRET_X"}, "options", "Reference both"),
        ("s3://data/a.csv", {"secret_access_key": "env:SECRET_KEY", "access_key_id": "env:ATLAS_SOURCE_SECRET_X"}, "options", "may only reference"),
        ("s3://data/a.csv", {"anonymous": "yes"}, "options", "anonymous must be true or false"),
        ("s3://data/a.csv", {"anonymous": True, "access_key_id": "env:ATLAS_SOURCE_SECRET_X", "secret_access_key": "env:ATLAS_SOURCE_SECRET_Y"}, "options", "takes no credentials"),
        ("s3://data/a.csv", {"region": "EU WEST"}, "options", "region must be"),
        ("s3://data/a.csv", {"bucket_policy": 1}, "options", "Unknown option(s): bucket_policy"),
    ],
)
def test_bad_s3_sources_are_refused_at_save_with_a_clear_error(db, location, options, field, message):
    source = Source(name="bad", kind="s3", location=location, options=options)
    with pytest.raises(ValidationError) as info:
        source.full_clean()
    assert message in " ".join(info.value.message_dict.get(field, [])), info.value.message_dict
    assert S3_KEY_ID not in str(info.value)


def test_credentials_come_from_references_or_the_environment_never_the_database(db, s3, s3_endpoint, monkeypatch):
    bucket(s3, "creds", {"a.csv": b"id\n1\n"})
    by_reference = Source.objects.create(name="ref", kind="s3", location="s3://creds/a.csv", options=s3_options(s3_endpoint))
    stored = str(Source.objects.filter(pk=by_reference.pk).values_list("options", flat=True)[0])
    assert S3_SECRET not in stored and S3_KEY_ID not in stored
    with source_files(by_reference) as files:
        assert [f.size for f in files] == [5]

    monkeypatch.delenv("ATLAS_SOURCE_SECRET_S3_SECRET")
    with pytest.raises(IngestError, match="ATLAS_SOURCE_SECRET_S3_SECRET is not set"), source_files(by_reference):
        pass

    from_environment = Source(name="env", kind="s3", location="s3://creds/a.csv", options={"endpoint_url": s3_endpoint})
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(IngestError, match="has no credentials") as info, source_files(from_environment):
        pass
    assert "AWS_ACCESS_KEY_ID" in str(info.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    with source_files(from_environment) as files:
        assert [f.label for f in files] == ["s3://creds/a.csv"]


def test_objects_stream_to_disk_in_bounded_pieces_one_object_at_a_time(db, s3, s3_endpoint, monkeypatch):
    """Never a whole object in memory: written in pieces of at most CHUNK; the object before is removed."""
    big = b"id,text\n" + b"".join(b"%d,%s\n" % (i, b"x" * 90) for i in range(60_000))  # ~5.6 MB
    bucket(s3, "big", {"p/1.csv": big, "p/2.csv": big.replace(b"x", b"y")})
    pieces: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            pieces.append(len(data))
            return self.fh.write(data)

    monkeypatch.setattr(objectstore, "open", lambda path, mode: Spy(real_open(path, mode)), raising=False)
    source = Source(name="big", kind="s3", location="s3://big/p/*.csv", options=s3_options(s3_endpoint))
    present = []
    with source_files(source) as files:
        for f in files:
            present.append(sorted(n for n in os.listdir(os.path.dirname(f.path)) if n.startswith("object-")))
            assert f.size == len(big)
    assert sum(pieces) == 2 * len(big) and max(pieces) <= CHUNK and len(pieces) > 2
    assert present == [["object-0"], ["object-1"]]  # one object on disk at a time


def test_credentials_the_server_refuses_are_a_clear_error_without_the_secret(db, s3, s3_endpoint):
    """The server enforcing signatures (moto's auth on): an unknown key is named as such, its value never shown."""
    import urllib3

    bucket(s3, "locked", {"a.csv": b"id\n1\n"})
    source = Source(name="locked", kind="s3", location="s3://locked/*.csv", options=s3_options(s3_endpoint))
    assert urllib3.request("POST", f"{s3_endpoint}/moto-api/reset-auth", body=b"0").status == 200
    try:
        with pytest.raises(IngestError) as info, source_files(source):
            pass
    finally:
        assert urllib3.request("POST", f"{s3_endpoint}/moto-api/reset-auth", body=b"inf").status == 200
    assert str(info.value) == "s3://locked/*.csv: the access key is not known to the service (InvalidAccessKeyId)."
