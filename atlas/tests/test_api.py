"""The API's common behaviour: one error body for every error, auth, throttling, schema and docs."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command
from rest_framework.test import APIClient

from atlas import audit
from atlas.api.testing import assert_error, token_client, user_with_role


@pytest.fixture
def auditor(db):
    return token_client(user_with_role("Auditor"))


def test_anonymous_is_401_and_told_to_send_a_token(db):
    response = APIClient().get("/api/v1/pipelines/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(client.get("/api/v1/pipelines/"), 401, "authentication_failed")


def test_a_user_without_a_role_is_403(db):
    assert_error(token_client(user_with_role(None)).get("/api/v1/datasets/"), 403, "permission_denied")


def test_an_unknown_url_under_the_api_is_404_in_the_same_shape(auditor):
    error = assert_error(auditor.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert "/api/v1/no-such-thing/" in error["message"]


def test_a_missing_object_is_404(auditor):
    assert_error(auditor.get("/api/v1/pipelines/424242/"), 404, "not_found")


def test_a_wrong_method_is_405(auditor):
    assert_error(auditor.delete("/api/v1/audit-events/"), 405, "method_not_allowed")


def test_malformed_json_is_400(db):
    client = token_client(user_with_role("Operator"))
    response = client.post("/api/v1/pipelines/", data="{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_throttling_is_429_with_retry_after(settings, db):
    cache.clear()
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "2/min"}}
    client = token_client(user_with_role("Analyst"))
    assert client.get("/api/v1/datasets/").status_code == 200
    assert client.get("/api/v1/datasets/").status_code == 200
    response = client.get("/api/v1/datasets/")
    error = assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0 and error["detail"]["retry_after_seconds"] > 0
    cache.clear()


def test_the_audit_log_is_readable_by_the_auditor_newest_first_and_filterable(auditor):
    for i in range(3):
        audit.record("test.thing", n=i)
    audit.record("other.thing")
    body = auditor.get("/api/v1/audit-events/", {"action_prefix": "test."}).json()
    assert [e["detail"]["n"] for e in body["results"]] == [2, 1, 0]
    first = body["results"][0]
    assert set(first) >= {"seq", "at", "actor", "action", "hash", "prev_hash"}
    assert auditor.get(f"/api/v1/audit-events/{first['seq']}/").json()["hash"] == first["hash"]
    assert_error(auditor.post("/api/v1/audit-events/", {"action": "forged"}), 405)


def test_tokens_are_made_with_a_manage_py_command(db, capsys):
    user_with_role("Operator", "integrator")
    call_command("create_api_token", "integrator", "--days", "30")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/pipelines/").status_code == 200


def test_the_schema_documents_every_endpoint_and_its_errors(admin_client, db):
    response = admin_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in ("/api/v1/sources/", "/api/v1/datasets/{id}/", "/api/v1/pipelines/{id}/run/",
                 "/api/v1/runs/", "/api/v1/step-runs/", "/api/v1/audit-events/"):
        assert path in paths, path
    for path, operations in paths.items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/lineage"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404", "429"} <= codes, (method, path, codes)
            assert operation["responses"]["404"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    assert "409" in paths["/api/v1/pipelines/{id}/run/"]["post"]["responses"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_swagger_ui_is_served_offline_from_our_static_files(admin_client, db):
    response = admin_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr" not in html and "unpkg" not in html


def test_every_endpoint_has_a_browsable_page(client, django_user_model, wh):
    """Every route of the router answers a browser with DRF's browsable page (lists, and detail-only routes)."""
    from django.urls import NoReverseMatch, reverse

    from atlas.api.urls import router
    from pipelines.models import Dataset

    dataset = Dataset.objects.create(name="d", layer="explore", table="d")
    client.force_login(django_user_model.objects.create_superuser("browser", "b@example.invalid", "pw"))
    seen = []
    for prefix, _viewset, basename in router.registry:
        try:
            url = reverse(f"{basename}-list")
        except NoReverseMatch:
            url = reverse(f"{basename}-detail", args=[dataset.pk])
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, (prefix, response.status_code)
        assert b"Django REST framework" in response.content, prefix
        seen.append(prefix)
    assert {"checks", "check-results", "quarantine", "pii-findings", "column-policies", "dataset-lineage"} <= set(seen)


def test_the_schema_generates_without_a_warning(db, tmp_path):
    """drf-spectacular resolves every view, serializer and enum name of every app's API (a warning fails)."""
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/dataset-lineage/{id}/" in out.read_text()
