"""Helpers for API tests in every app: users with a role, clients with a token."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from knox.models import AuthToken
from rest_framework.test import APIClient


def user_with_role(role: str | None, username: str | None = None, **extra):
    """A user in the role's group (``None``: a user with no role at all)."""
    User = get_user_model()
    user = User.objects.create_user(username=username or f"{(role or 'nobody').lower()}-user", password="pw", **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def token_client(user) -> APIClient:
    """An API client that authenticates as an integrator does: ``Authorization: Token <key>``.

    The key is a knox token (only its digest is stored, so it is made fresh for each client).
    """
    _, key = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one error body: {"error": {"code", "message", "detail"}}; returns the inner dict."""
    assert response.status_code == status, (response.status_code, getattr(response, "data", response.content))
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "detail"}, body
    assert body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def finished_task(client, response, *, state: str = "succeeded") -> dict:
    """A 202 + ``Location`` answer followed to its task (tests run tasks inline): the task's body."""
    assert response.status_code == 202, (response.status_code, response.content[:500])
    location = response["Location"]
    task = client.get(location)
    assert task.status_code == 200, task.content[:300]
    body = task.json()
    assert body["state"] == state, body
    return body


def task_result(client, response) -> dict:
    """What a succeeded task's ``result_url`` answers (e.g. the request a data-subject run completed)."""
    task = finished_task(client, response)
    assert task["result_url"], task
    result = client.get(task["result_url"])
    assert result.status_code == 200, result.content[:300]
    return result.json()
