"""API tokens (issue 12): stored as digests only, with an expiry, revocable; the old clear keys migrated away.

The attack first: whoever reads the database (a backup, an Auditor with a
SQL console) must not find a key that works.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from atlas.api import tokens
from atlas.api.testing import user_with_role
from atlas.models import AuditEvent


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def integrator(db):
    return user_with_role("Operator", "integrator")


# --- the attack of the report -------------------------------------------------------------------------------
def test_attack_the_database_holds_no_usable_key(integrator):
    _, key = tokens.create_token("integrator")
    assert _client(key).get("/api/v1/pipelines/").status_code == 200
    with connection.cursor() as cur:
        cur.execute(f"SELECT * FROM {AuthToken._meta.db_table}")
        stored = [str(value) for row in cur.fetchall() for value in row]
    assert not any(key in value for value in stored)  # a digest and a 15-character lookup prefix only
    for value in stored:
        assert _client(value).get("/api/v1/pipelines/").status_code == 401


# --- expiry and revocation ------------------------------------------------------------------------------------
def test_every_token_expires(integrator, settings):
    token, key = tokens.create_token("integrator")
    assert token.expiry is not None
    assert abs((token.expiry - timezone.now()) - timedelta(days=settings.ATLAS_API_TOKEN_DAYS)) < timedelta(minutes=1)
    AuthToken.objects.filter(digest=token.digest).update(expiry=timezone.now() - timedelta(seconds=1))
    response = _client(key).get("/api/v1/pipelines/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert not AuthToken.objects.filter(digest=token.digest).exists()  # an expired token is deleted when seen


def test_revoking_stops_every_token_of_the_user_now(integrator):
    _, first = tokens.create_token("integrator")
    _, second = tokens.create_token("integrator", days=7)
    call_command("revoke_api_tokens", "integrator")
    assert _client(first).get("/api/v1/pipelines/").status_code == 401
    assert _client(second).get("/api/v1/pipelines/").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked").exists()


def test_a_superuser_revokes_a_token_in_the_admin(integrator, admin_client):
    token, key = tokens.create_token("integrator")
    response = admin_client.post("/admin/knox/authtoken/", {
        "action": "delete_selected", "_selected_action": [token.pk], "post": "yes"})
    assert response.status_code == 302
    assert _client(key).get("/api/v1/pipelines/").status_code == 401


def test_an_inactive_users_token_is_refused(integrator):
    _, key = tokens.create_token("integrator")
    integrator.is_active = False
    integrator.save()
    assert _client(key).get("/api/v1/pipelines/").status_code == 401


# --- the command -------------------------------------------------------------------------------------------------
def test_the_command_prints_the_key_once_and_audits(integrator, capsys):
    call_command("create_api_token", "integrator", "--days", "90")
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert len(key) == 64 and "expires" in captured.err and key not in captured.err
    assert _client(key).get("/api/v1/pipelines/").status_code == 200
    event = AuditEvent.objects.get(action="api_token.created")
    assert key not in str(event.detail) and key[:15] not in str(event.detail)


@pytest.mark.parametrize(("args", "message"), [
    (["nobody-here"], "No user named 'nobody-here'"),
    (["integrator", "--days", "0"], "A token lives 1 to"),
    (["integrator", "--days", "10000"], "ATLAS_API_TOKEN_MAX_DAYS"),
])
def test_the_command_refuses_clearly(integrator, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)


# --- tokens are nobody's role ----------------------------------------------------------------------------------------
def test_no_role_reads_or_manages_tokens_or_login_records(db):
    for group in Group.objects.filter(name__in=["Operator", "Steward", "Analyst", "Auditor"]):
        labels = set(group.permissions.values_list("content_type__app_label", flat=True))
        assert not labels & {"knox", "axes", "authtoken"}, (group.name, labels)


# --- the migration of DRF's clear keys -------------------------------------------------------------------------
def test_clear_keys_become_digests_and_their_table_is_dropped(integrator, transactional_db):
    old_key = "0123456789abcdef0123456789abcdef01234567"  # a DRF authtoken key: 40 hex characters
    with connection.schema_editor() as editor:
        editor.execute(f"CREATE TABLE {tokens.OLD_TABLE} ({connection.ops.quote_name('key')} varchar(40) PRIMARY KEY,"
                       " created timestamp, user_id integer NOT NULL)")
        editor.execute(f"INSERT INTO {tokens.OLD_TABLE} VALUES (%s, %s, %s)", [old_key, timezone.now(), integrator.pk])
    with connection.schema_editor() as editor:
        assert tokens.migrate_clear_tokens(editor) == 1
    assert tokens.OLD_TABLE not in connection.introspection.table_names()
    migrated = AuthToken.objects.get(user=integrator)
    assert migrated.digest != old_key and migrated.expiry is not None
    assert _client(old_key).get("/api/v1/pipelines/").status_code == 200  # integrators keep working
    with connection.schema_editor() as editor:
        assert tokens.migrate_clear_tokens(editor) == 0  # nothing left to do
