"""Sources confined: path sources read only inside ATLAS_DATA_ROOTS; uploads are size-limited.

The first tests replay the attacks of issue 12: a path source that read
``/etc/passwd``, ``../../../../etc/passwd``, ``/**`` and an env file holding
SECRET_KEY and PII_HASH_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from atlas.warehouse.filereader import IngestError
from pipelines.confinement import data_roots, resolve_location
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step
from pipelines.sources import source_files

from .conftest import explore_rows, run_now

ENV_FILE = "SECRET_KEY=attack-secret-key-value\nPII_HASH_KEY=attack-pii-key-value\n"


@pytest.fixture
def roots(settings, tmp_path) -> tuple[Path, Path]:
    """Two data roots under tmp_path, and a directory beside them that is NOT a root."""
    data, other = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    other.mkdir()
    (tmp_path / "data2").mkdir()
    settings.ATLAS_DATA_ROOTS = [data, str(tmp_path / "data2")]
    return data, other


def refused_at_save(location: str) -> str:
    with pytest.raises(ValidationError) as info:
        Source(name="evil", kind="path", location=location).full_clean()
    return " ".join(info.value.message_dict["location"])


def refused_at_read(location: str) -> str:
    source = Source(
        name="evil", kind="path", location=location
    )  # saved before the rules, or edited in the DB
    with pytest.raises(IngestError) as info, source_files(source):
        pass
    return str(info.value)


# --- the attacks ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "location", ["/etc/passwd", "../../../../etc/passwd", "/**", "/etc/*", "../*"]
)
def test_attack_a_path_source_outside_the_data_roots_is_refused(db, roots, location):
    message = refused_at_save(location)
    assert "ATLAS_DATA_ROOTS" in message and str(roots[0]) in message
    assert "root:" not in message
    message = refused_at_read(location)
    assert "ATLAS_DATA_ROOTS" in message and "root:" not in message


def test_attack_an_env_file_with_secrets_is_never_read(db, roots):
    _, outside = roots
    env_file = outside / ".env"
    env_file.write_text(ENV_FILE)
    for location in (str(env_file), str(roots[0] / ".." / "outside" / ".env"), "../outside/.env"):
        for message in (refused_at_save(location), refused_at_read(location)):
            assert "ATLAS_DATA_ROOTS" in message
            assert (
                "attack-secret-key-value" not in message and "attack-pii-key-value" not in message
            )


def test_attack_a_run_over_a_path_outside_the_roots_fails_without_showing_the_file(wh, roots):
    _, outside = roots
    (outside / "secrets.csv").write_text(ENV_FILE)
    source = Source.objects.create(
        name="evil", location=str(outside / "secrets.csv")
    )  # no clean(): old row
    pipeline = Pipeline.objects.create(name="evil")
    out = Dataset.objects.create(name="raw_evil", layer="explore", table="evil")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out)
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    error = run.step_runs.get().error
    assert "ATLAS_DATA_ROOTS" in error and "attack-secret-key-value" not in error
    assert not wh.table_exists("explore", "evil")


def test_attack_a_symlink_inside_a_root_pointing_out_is_refused(db, roots):
    data, outside = roots
    (outside / ".env").write_text(ENV_FILE)
    (data / "innocent.csv").symlink_to(outside / ".env")
    assert "ATLAS_DATA_ROOTS" in refused_at_save(str(data / "innocent.csv"))
    assert "ATLAS_DATA_ROOTS" in refused_at_read(str(data / "innocent.csv"))


def test_attack_a_glob_inside_a_root_never_yields_a_linked_file_outside(db, roots):
    data, outside = roots
    (data / "a.csv").write_text("id\n1\n")
    (outside / "b.csv").write_text(ENV_FILE)
    (data / "b.csv").symlink_to(outside / "b.csv")
    Source(
        name="ok", kind="path", location=str(data / "*.csv")
    ).full_clean()  # the pattern itself is fine
    message = refused_at_read(str(data / "*.csv"))
    assert "b.csv" in message and "ATLAS_DATA_ROOTS" in message
    assert "attack-secret-key-value" not in message


def test_attack_a_symlink_swapped_after_save_is_refused_at_read(db, roots):
    data, outside = roots
    (data / "real.csv").write_text("id\n1\n")
    (outside / ".env").write_text(ENV_FILE)
    link = data / "current.csv"
    link.symlink_to(data / "real.csv")
    Source(name="ok", kind="path", location=str(link)).full_clean()
    link.unlink()
    link.symlink_to(outside / ".env")
    assert "ATLAS_DATA_ROOTS" in refused_at_read(str(link))


def test_a_directory_link_in_the_pattern_is_resolved_too(db, roots):
    data, outside = roots
    (outside / "x.csv").write_text("id\n1\n")
    (data / "sub").symlink_to(outside, target_is_directory=True)
    assert "ATLAS_DATA_ROOTS" in refused_at_save(str(data / "sub" / "*.csv"))
    assert "ATLAS_DATA_ROOTS" in refused_at_read(str(data / "sub" / "*.csv"))


# --- what stays allowed --------------------------------------------------------------------
def test_a_relative_location_is_taken_relative_to_the_first_root(wh, roots):
    data, _ = roots
    (data / "in").mkdir()
    (data / "in" / "people.csv").write_text("id,name\n1,Ann\n")
    source = Source.objects.create(name="people", location="in/people.csv")
    source.full_clean()
    with source_files(source) as files:
        assert [f.path for f in files] == [os.path.realpath(data / "in" / "people.csv")]
        assert files[0].label.endswith("/in/people.csv")
    pipeline = Pipeline.objects.create(name="people")
    out = Dataset.objects.create(name="raw_people", layer="explore", table="people")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out)
    assert run_now(pipeline).status == RunStatus.SUCCEEDED
    assert explore_rows(wh, "people", "id, name") == [("1", "Ann")]


def test_any_root_may_hold_the_file_and_links_inside_the_roots_are_fine(db, roots, tmp_path):
    data, _ = roots
    second = tmp_path / "data2"
    (second / "a.csv").write_text("id\n1\n")
    (data / "to_second.csv").symlink_to(second / "a.csv")
    for location in (str(second / "a.csv"), str(data / "to_second.csv"), str(second / "*.csv")):
        Source(name="ok", kind="path", location=location).full_clean()
        assert resolve_location(location) == [os.path.realpath(second / "a.csv")]


def test_the_default_roots_are_the_data_demo_and_upload_directories(db, settings):
    """Never VAR_DIR itself: it holds the metadata database and the warehouse file."""
    from atlas import settings as module

    if "ATLAS_DATA_ROOTS" in os.environ:
        pytest.skip("ATLAS_DATA_ROOTS is set in this environment")
    defaults = [
        str(module.VAR_DIR / "data"),
        str(module.ATLAS_DEMO_DIR),
        str(module.MEDIA_ROOT / "sources"),
    ]
    configured = module.ATLAS_DATA_ROOTS
    assert configured == defaults
    settings.ATLAS_DATA_ROOTS = defaults
    assert data_roots() == [os.path.realpath(r) for r in defaults]
    assert "ATLAS_DATA_ROOTS" in refused_at_save(str(module.VAR_DIR / "atlas.sqlite3"))


def test_a_missing_file_inside_a_root_is_a_clear_error(db, roots):
    data, _ = roots
    message = refused_at_read(str(data / "nope.csv"))
    assert "no such file" in message
    message = refused_at_read(str(data / "*.nope"))
    assert "No file matches" in message


# --- uploads --------------------------------------------------------------------------------
def source_post(**extra) -> dict:
    return {
        "name": "up",
        "kind": "upload",
        "format": "csv",
        "location": "",
        "database": "",
        "query": "",
        "options": "{}",
        "schema": "[]",
        "description": "",
        **extra,
    }


def test_attack_an_upload_over_the_limit_is_refused_while_it_streams(
    admin_client, db, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ATLAS_UPLOAD_MAX_BYTES = 10_000
    big = SimpleUploadedFile("big.csv", b"id\n" + b"1\n" * 20_000)
    resp = admin_client.post(reverse("admin:pipelines_source_add"), source_post(upload=big))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert "larger than the upload limit" in body and "ATLAS_UPLOAD_MAX_BYTES" in body
    assert not Source.objects.exists()
    stored = list((tmp_path / "media").rglob("*")) if (tmp_path / "media").exists() else []
    assert not [p for p in stored if p.is_file()]


def test_an_upload_under_the_limit_is_stored_and_loaded(admin_client, wh, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ATLAS_UPLOAD_MAX_BYTES = 10_000
    small = SimpleUploadedFile("small.csv", b"id,v\n1,a\n")
    resp = admin_client.post(reverse("admin:pipelines_source_add"), source_post(upload=small))
    assert resp.status_code == 302, resp.content.decode()[:2000]
    source = Source.objects.get()
    with source_files(source) as files:
        assert files[0].size == len(b"id,v\n1,a\n")


def test_a_request_body_over_the_limit_is_refused_before_it_is_read(
    admin_client, client, db, settings
):
    settings.ATLAS_UPLOAD_MAX_BYTES = 1_000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    big = SimpleUploadedFile("big.csv", b"x" * 5_000)
    resp = admin_client.post(reverse("admin:pipelines_source_add"), source_post(upload=big))
    assert resp.status_code == 413
    assert "ATLAS_UPLOAD_MAX_BYTES" in resp.content.decode()
    resp = client.post(
        "/api/v1/sources/", data='{"name": "' + "x" * 5_000 + '"}', content_type="application/json"
    )
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert (
        error["code"] == "request_too_large" and "DATA_UPLOAD_MAX_MEMORY_SIZE" in error["message"]
    )


def test_an_upload_whose_file_was_replaced_by_a_link_out_of_media_is_refused(
    db, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    source = Source(name="up", kind="upload", upload=SimpleUploadedFile("u.csv", b"id\n1\n"))
    source.save()
    outside = tmp_path / "outside.env"
    outside.write_text(ENV_FILE)
    os.unlink(source.upload.path)
    os.symlink(outside, source.upload.path)
    with pytest.raises(IngestError) as info, source_files(source):
        pass
    assert "attack-secret-key-value" not in str(info.value) and "MEDIA_ROOT" in str(info.value)


def test_an_upload_name_edited_to_climb_out_of_media_is_refused(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    source = Source(name="up", kind="upload", upload="../../../../etc/passwd")  # edited in the DB
    with pytest.raises(IngestError, match="is refused") as info, source_files(source):
        pass
    assert "root:" not in str(info.value)
