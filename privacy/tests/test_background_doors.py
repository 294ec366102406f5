"""Heavy privacy actions answer 202 + Location to a task (issue 17: verify-erasure 11.9 s and a key's
confirm 23.9 s inside the request, past gunicorn's timeout)."""

from __future__ import annotations

from atlas.api.testing import assert_error, finished_task, task_result, token_client, user_with_role
from atlas.models import BackgroundTask
from privacy.models import SubjectKey

from .conftest import count


def _erasure(steward, email: str) -> int:
    pk = steward.post("/api/v1/dsr-requests/", {"kind": "erasure", "identifiers": {"email": [email]}},
                      format="json").json()["id"]
    steward.post(f"/api/v1/dsr-requests/{pk}/verify/")
    return pk


def test_verify_erasure_is_enqueued_and_its_task_tells_the_outcome(shop, wh):
    steward, auditor = token_client(user_with_role("Steward")), token_client(user_with_role("Auditor"))
    pk = _erasure(steward, "bob@example.com")
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/verify-erasure/"), 409, "dsr_refused")  # still at once
    assert not BackgroundTask.objects.exists()

    ran = steward.post(f"/api/v1/dsr-requests/{pk}/run/")
    assert ran.status_code == 202 and ran["Location"].endswith(f"/api/v1/tasks/{ran.json()['id']}/")
    task = finished_task(steward, ran)
    assert task["kind"] == "privacy.run_request" and task["progress"] == 1.0 and task["error"] == ""
    assert task["target"] == f"privacy.datasubjectrequest:{pk}"

    verified = steward.post(f"/api/v1/dsr-requests/{pk}/verify-erasure/")
    body = task_result(steward, verified)
    assert body["status"] == "completed" and body["proof"]["rows_found"] == 0
    assert count(wh, "explore.customers") == 2
    # Whoever asked reads their task; an auditor reads every task; anyone else finds none.
    task_url = verified["Location"]
    assert auditor.get(task_url).status_code == 200
    assert_error(token_client(user_with_role("Analyst")).get(task_url), 404)
    assert token_client(user_with_role("Analyst", username="a2")).get("/api/v1/tasks/").json()["results"] == []
    assert "bob@example.com" not in str(auditor.get("/api/v1/tasks/").json())


def test_confirming_a_key_builds_its_index_as_a_task(shop):
    steward = token_client(user_with_role("Steward"))
    _pipeline, ds, _files = shop
    key = SubjectKey.objects.create(dataset=ds["orders"], column="order_id", kind="order_id", status="proposed")
    response = steward.post(f"/api/v1/subject-keys/{key.pk}/confirm/")
    task = finished_task(steward, response)
    assert task["kind"] == "privacy.build_key_index" and task["result"]["key"] == key.pk
    key.refresh_from_db()
    assert key.status == "confirmed"
    assert steward.get(task["result_url"]).json()["status"] == "confirmed"


def test_a_refused_run_fails_its_task_with_the_reason(shop):
    steward = token_client(user_with_role("Steward"))
    pk = _erasure(steward, "bob@example.com")
    finished_task(steward, steward.post(f"/api/v1/dsr-requests/{pk}/run/"))
    assert_error(steward.post(f"/api/v1/dsr-requests/{pk}/run/"), 409, "dsr_refused")  # completed: refused at once
