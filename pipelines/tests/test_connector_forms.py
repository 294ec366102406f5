"""The admin form and the API refuse bad object storage and JSON API sources with the model's words, never echoing a secret."""

from __future__ import annotations

import json

from django.urls import reverse

from atlas.api.testing import assert_error, token_client, user_with_role
from pipelines.models import Source

SECRET = "AKIAREALLOOKINGKEY99"


def form(**fields) -> dict:
    return {"name": "src", "kind": "s3", "format": "csv", "location": "", "database": "", "query": "",
            "options": "{}", "schema": "[]", "description": "", **fields}


def test_the_admin_form_refuses_bad_connector_sources_and_saves_a_good_one(admin_client, db, settings):
    url = reverse("admin:pipelines_source_add")
    body = admin_client.post(url, form(location="s3://data/", options=json.dumps({"access_key_id": SECRET}))).content.decode()
    assert "Name an object or a glob of objects after the bucket" in body
    assert "never the secret itself" in body or "Reference both" in body
    body = admin_client.post(url, form(kind="api", location="https://api.example.com/v1/people", options=json.dumps({"pagination": {"style": "page"}}))).content.decode()
    assert "set format to jsonl" in body and "pagination (page) needs size" in body
    body = admin_client.post(url, form(location="s3://data/a/*.csv", options=json.dumps({"endpoint_url": "http://10.0.0.5:9000"}))).content.decode()
    assert "ATLAS_S3_ENDPOINTS" in body
    assert not Source.objects.exists()
    settings.ATLAS_S3_ENDPOINTS = ["http://10.0.0.5:9000"]
    good = {"endpoint_url": "http://10.0.0.5:9000", "access_key_id": "env:ATLAS_SOURCE_SECRET_K", "secret_access_key": "env:ATLAS_SOURCE_SECRET_S"}
    resp = admin_client.post(url, form(location="s3://data/a/*.csv", options=json.dumps(good)))
    assert resp.status_code == 302, resp.content.decode()[-2000:]
    assert Source.objects.get().options == good


def test_the_api_refuses_bad_connector_sources_with_the_field_and_creates_a_good_one(db):
    api = token_client(user_with_role("Operator", "ops"))
    resp = api.post("/api/v1/sources/", {"name": "b", "kind": "s3", "location": "s3://data/a.csv", "options": {"access_key_id": SECRET, "secret_access_key": SECRET}})
    error = assert_error(resp, 409, "conflict")
    assert "env:ATLAS_SOURCE_SECRET_" in str(error["detail"]["options"]) and SECRET not in resp.content.decode()
    resp = api.post("/api/v1/sources/", {"name": "a", "kind": "api", "format": "jsonl", "location": "https://api.example.com/p", "options": {"bearer": "Bearer " + SECRET}})
    error = assert_error(resp, 409, "conflict")
    assert "bearer must be a reference" in str(error["detail"]["options"]) and SECRET not in resp.content.decode()
    options = {"bearer": "env:ATLAS_SOURCE_SECRET_TOKEN", "records": "data", "pagination": {"style": "cursor", "cursor": "meta.next", "param": "cursor"}, "max_pages": 50}
    resp = api.post("/api/v1/sources/", {"name": "ok", "kind": "api", "format": "jsonl", "location": "https://api.example.com/p", "options": options})
    assert resp.status_code == 201, resp.content
    assert resp.json()["options"] == options
