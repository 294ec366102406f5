"""Roles: every role (and anonymous, and a user with no role) against every endpoint and admin page.

Allowed must be allowed and denied must be denied; the expectations are
written out here, not derived from atlas.roles, so a change to the roles
that changes who may do what fails this test until it is meant.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import NoReverseMatch, reverse
from rest_framework.test import APIClient

from atlas import roles
from atlas.api.testing import token_client, user_with_role
from compliance.models import ColumnPolicy, PiiFinding
from pipelines import runner
from pipelines.models import Dataset, Pipeline, PipelineRun, Source
from quality.models import Check

ROLES = ("Operator", "Steward", "Analyst", "Auditor")
EVERYONE = set(ROLES)
READERS_OF_SOURCES = {"Operator", "Steward", "Auditor"}
COMPLIANCE_READERS = {"Steward", "Auditor"}

# (method, url template, roles allowed); {pipeline}, {run} are filled in per test.
API = [
    ("get", "/api/v1/", {*EVERYONE, "nobody"}),  # the root lists links, no data
    ("get", "/api/v1/sources/", READERS_OF_SOURCES),
    ("get", "/api/v1/datasets/", EVERYONE),
    ("get", "/api/v1/datasets/{dataset}/", EVERYONE),
    ("get", "/api/v1/pipelines/", EVERYONE),
    ("get", "/api/v1/pipelines/{pipeline}/", EVERYONE),
    ("get", "/api/v1/steps/", EVERYONE),
    ("get", "/api/v1/runs/", EVERYONE),
    ("get", "/api/v1/runs/{run}/", EVERYONE),
    ("get", "/api/v1/step-runs/", EVERYONE),
    ("get", "/api/v1/audit-events/", {"Auditor"}),
    ("post", "/api/v1/sources/", {"Operator"}),
    ("post", "/api/v1/datasets/", {"Operator"}),
    ("post", "/api/v1/pipelines/", {"Operator"}),
    ("patch", "/api/v1/pipelines/{pipeline}/", {"Operator"}),
    ("post", "/api/v1/pipelines/{pipeline}/run/", {"Operator"}),
    ("post", "/api/v1/runs/{run}/cancel/", {"Operator"}),
    ("delete", "/api/v1/sources/{spare_source}/", {"Operator"}),
    # quality
    ("get", "/api/v1/checks/", EVERYONE),
    ("post", "/api/v1/checks/", {"Operator"}),
    ("patch", "/api/v1/checks/{check}/", {"Operator"}),
    ("get", "/api/v1/check-results/", EVERYONE),
    ("get", "/api/v1/quarantine/{dataset}/", EVERYONE),
    # compliance: findings and policies are the stewards' (auditors read them, PII masked)
    ("get", "/api/v1/pii-findings/", COMPLIANCE_READERS),
    ("get", "/api/v1/pii-findings/{finding}/", COMPLIANCE_READERS),
    ("post", "/api/v1/pii-findings/{finding}/decision/", {"Steward"}),
    ("get", "/api/v1/column-policies/", COMPLIANCE_READERS),
    ("post", "/api/v1/column-policies/", {"Steward"}),
    ("patch", "/api/v1/column-policies/{policy}/", {"Steward"}),
    # lineage
    ("get", "/api/v1/dataset-lineage/{dataset}/", EVERYONE),
    ("get", "/api/v1/lineage?dataset=d", EVERYONE),
    ("post", "/api/v1/lineage", {"Operator"}),  # other tools report into Atlas with an Operator's token
]

# Admin changelists whose expectations are fixed here; other apps' pages are checked below
# against the permissions their role holds.
ADMIN = {
    "pipelines.source": READERS_OF_SOURCES,
    "pipelines.dataset": EVERYONE,
    "pipelines.pipeline": EVERYONE,
    "pipelines.pipelinerun": EVERYONE,
    "pipelines.steprun": EVERYONE,
    "pipelines.loadedbatch": EVERYONE,
    "atlas.auditevent": {"Auditor"},
    "django_celery_beat.periodictask": {"Operator", "Auditor"},
    "auth.user": {"Auditor"},
    "auth.group": {"Auditor"},
}


@pytest.fixture
def objects(db, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id\n1\n")
    source = Source.objects.create(name="s", location=str(path))
    dataset = Dataset.objects.create(name="d", layer="explore", table="d")
    pipeline = Pipeline.objects.create(name="p")
    pipeline.steps.create(name="ingest", kind="ingest", source=source, output=dataset)
    run = runner.start_run(pipeline, dispatch=False)
    spare = Source.objects.create(name="spare", location=str(path))
    chart = Dataset.objects.create(name="c", layer="chart", table="c")
    check = Check.objects.create(dataset=dataset, name="id_set", kind="not_null", columns=["id"])
    finding = PiiFinding.objects.create(dataset=dataset, column="id", entity="PERSON", samples=["Ann"])
    policy = ColumnPolicy.objects.create(dataset=chart, column="name", action="hash")
    return {"source": source.pk, "spare_source": spare.pk, "dataset": dataset.pk, "pipeline": pipeline.pk, "run": run.pk,
            "chart": chart.pk, "check": check.pk, "finding": finding.pk, "policy": policy.pk}


OPENLINEAGE_EVENT = {
    "eventType": "COMPLETE", "eventTime": "2026-01-01T00:00:00Z", "producer": "https://example.invalid/airflow",
    "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run": {"runId": "3f5e9b2c-1c9a-4d7e-8a53-5f9f0d1e2a3b"}, "job": {"namespace": "airflow", "name": "dag.task"},
    "inputs": [], "outputs": [],
}


def body_for(method: str, url: str, n: int, objects: dict | None = None) -> dict:
    objects = objects or {}
    if method != "post" and method != "patch":
        return {}
    if url.endswith("/checks/"):
        return {"dataset": objects["dataset"], "name": f"new{n}", "kind": "not_null", "columns": ["id"]}
    if "/checks/" in url:
        return {"severity": "warn"}
    if url.endswith("/decision/"):
        return {"decision": "confirm"}
    if url.endswith("/column-policies/"):
        return {"dataset": objects["chart"], "column": f"new{n}", "action": "hash"}
    if "/column-policies/" in url:
        return {"action": "redact"}
    if url.endswith("/lineage"):
        return OPENLINEAGE_EVENT
    if url.endswith("/sources/"):
        return {"name": f"new{n}", "location": "x.csv"}  # relative: inside the first data root
    if url.endswith("/datasets/"):
        return {"name": f"new{n}", "layer": "chart", "table": f"new{n}"}
    if url.endswith("/pipelines/"):
        return {"name": f"new{n}"}
    if method == "patch":
        return {"description": "changed"}
    return {}


def client_for(role: str | None) -> APIClient:
    if role == "anonymous":
        return APIClient()
    return token_client(user_with_role(None if role == "nobody" else role, f"{role}-api"))


@pytest.mark.parametrize("role", [*ROLES, "nobody", "anonymous"])
def test_every_role_against_every_endpoint(role, objects):
    client = client_for(role)
    for n, (method, template, allowed) in enumerate(API):
        url = template.format(**objects)
        if url.endswith(("/run/", "/cancel/")):
            # Each operation needs its state: no active run to start one, an active one to cancel.
            PipelineRun.objects.update(status="failed")
            if url.endswith("/cancel/"):
                PipelineRun.objects.filter(pk=objects["run"]).update(status="queued")
        data = body_for(method, url, n, objects)
        response = getattr(client, method)(url, data, format="json") if data or method != "get" else client.get(url)
        if role in allowed:
            assert response.status_code in (200, 201, 204), (role, method, url, response.status_code, response.content)
        else:
            expected = 401 if role == "anonymous" else 403
            assert response.status_code == expected, (role, method, url, response.status_code, response.content)
            assert set(response.json()["error"]) == {"code", "message", "detail"}


def _changelist(model) -> str | None:
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    except NoReverseMatch:
        return None


@pytest.mark.parametrize("role", [*ROLES, "nobody"])
def test_every_role_against_every_admin_changelist(role, client, objects):
    user = user_with_role(None if role == "nobody" else role, f"{role}-admin", is_staff=True)
    client.force_login(user)
    checked = set()
    for model in admin.site._registry:
        url = _changelist(model)
        if url is None:
            continue
        label = model._meta.label_lower
        if label in ADMIN:
            allowed = role in ADMIN[label]
        else:
            opts = model._meta
            allowed = any(user.has_perm(f"{opts.app_label}.{a}_{opts.model_name}") for a in ("view", "change"))
        response = client.get(url)
        assert response.status_code == (200 if allowed else 403), (role, label, response.status_code)
        checked.add(label)
    assert set(ADMIN) <= checked


def test_anonymous_is_sent_to_the_admin_login(client):
    response = client.get(reverse("admin:pipelines_pipeline_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_groups_exist_after_migrate_with_their_permissions(db):
    assert set(Group.objects.filter(name__in=ROLES).values_list("name", flat=True)) == set(ROLES)
    operator = user_with_role("Operator")
    assert operator.has_perms(["pipelines.change_pipeline", "pipelines.add_step", "django_celery_beat.add_periodictask"])
    assert not operator.has_perm("pipelines.delete_pipelinerun")
    auditor = user_with_role("Auditor")
    assert auditor.has_perm("atlas.view_auditevent")
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in auditor.get_all_permissions())


def test_pii_in_clear_is_the_stewards_alone(db):
    if not Permission.objects.filter(content_type__app_label="compliance", codename="view_pii_clear").exists():
        pytest.skip("compliance has not defined view_pii_clear in this tree yet")
    assert user_with_role("Steward").has_perm(roles.PII_CLEAR)
    for name in ("Analyst", "Auditor", "Operator"):
        assert not user_with_role(name).has_perm(roles.PII_CLEAR), name


def test_sync_roles_is_idempotent(db):
    roles.sync_roles()
    assert roles.sync_roles() == {name: 0 for name in ROLES}


def test_a_migrate_syncs_the_roles_once_in_the_last_apps_turn_with_every_permission(db, monkeypatch):
    # post_migrate comes once per app: a sync in each turn ran 17 times for each migrate and each
    # flush of a transactional test's database (a quarter of a second each time)
    from django.core.management.sql import emit_post_migrate_signal

    Group.objects.all().delete()  # as a flush leaves them, the permissions re-made by Django's receivers
    Permission.objects.all().delete()
    calls = []
    sync = roles.sync_roles
    monkeypatch.setattr(roles, "sync_roles", lambda *a, **k: calls.append(1) or sync(*a, **k))
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert len(calls) == 1
    analyst = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Analyst").permissions.all()}
    # permissions of the first app and of the last app alike
    assert {"pipelines.view_pipeline", "retention.view_retentionpolicy"} <= analyst
    assert roles.sync_roles() == {name: 0 for name in ROLES}


def test_the_receiver_syncs_for_a_sender_that_is_no_app_and_waits_for_the_last_app(db, monkeypatch):
    from django.apps import apps

    calls = []
    monkeypatch.setattr(roles, "sync_roles", lambda *a, **k: calls.append(1) or {})
    roles.sync_roles_after_migrate(sender=None, using="default")
    assert calls == [1]
    roles.sync_roles_after_migrate(sender=apps.get_app_config("auth"), using="default")
    assert calls == [1]


def test_permissions_of_models_added_later_join_their_roles(db):
    ct = ContentType.objects.get_or_create(app_label="quality", model="laterthing")[0]
    view = Permission.objects.create(content_type=ct, codename="view_laterthing", name="Can view later thing")
    change = Permission.objects.create(content_type=ct, codename="change_laterthing", name="Can change later thing")
    gained = roles.sync_roles()
    assert gained["Analyst"] == 1 and gained["Auditor"] == 1 and gained["Steward"] == 1
    assert Group.objects.get(name="Analyst").permissions.filter(pk=view.pk).exists()
    assert not Group.objects.filter(permissions=change).exists()


def test_sync_removes_what_a_role_must_never_hold(db):
    ct = ContentType.objects.get_or_create(app_label="compliance", model="piifinding")[0]
    pii, _ = Permission.objects.get_or_create(content_type=ct, codename="view_pii_clear", defaults={"name": "PII"})
    analyst = Group.objects.get(name="Analyst")
    analyst.permissions.add(pii)
    roles.sync_roles()
    assert not analyst.permissions.filter(pk=pii.pk).exists()
    assert Group.objects.get(name="Steward").permissions.filter(pk=pii.pk).exists()


def test_an_unknown_role_name_is_a_clear_error():
    with pytest.raises(KeyError, match="No role named 'Admin'"):
        roles.role("Admin")
