"""Web hardening (issue 12): secure defaults, settings from the environment, login throttling, shared throttles.

The attacks of the report come first: 100 wrong passwords answered 100 × 401
(never throttled), and throttles counted per process.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from atlas.api import auth
from atlas.api.testing import user_with_role
from conftest import service_or_skip

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/admin/login/"
GOOD = "Correct-horse-battery-9"


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password=GOOD, is_staff=True)


def _login(client, password: str, ip: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": "alice", "password": password, "next": "/admin/"}, REMOTE_ADDR=ip)


# --- the attacks of the report ---------------------------------------------------------------------
def test_attack_a_hundred_wrong_passwords_on_the_admin_are_locked_out(client, alice, settings):
    codes = [_login(client, f"wrong-{i}").status_code for i in range(100)]
    limit = settings.AXES_FAILURE_LIMIT
    assert codes[: limit - 1] == [200] * (limit - 1)  # the form again, "please enter a correct..."
    assert set(codes[limit:]) == {429}, codes
    locked = _login(client, "wrong-again")
    assert "Too many failed logins" in locked.content.decode() and int(locked["Retry-After"]) > 0

    # The right password during the lock-out is refused too, and no session is opened.
    assert _login(client, GOOD).status_code == 429
    assert "_auth_user_id" not in client.session

    # The same user from another address is not locked out (a stranger cannot lock a user out).
    other = _login(client, GOOD, ip="198.51.100.20")
    assert other.status_code == 302 and client.session["_auth_user_id"] == str(alice.pk)


def test_attack_a_hundred_wrong_passwords_over_http_basic_are_locked_out(alice, settings):
    client = APIClient()
    codes = []
    for i in range(100):
        client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"alice:wrong-{i}".encode()).decode())
        codes.append(client.get("/api/v1/lineage?dataset=d", REMOTE_ADDR="203.0.113.8").status_code)
    limit = settings.AXES_FAILURE_LIMIT
    assert set(codes[: limit - 1]) == {401} and set(codes[limit:]) == {429}, codes
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"alice:{GOOD}".encode()).decode())
    response = client.get("/api/v1/lineage?dataset=d", REMOTE_ADDR="203.0.113.8")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "locked_out" and int(response["Retry-After"]) > 0


_THROTTLE_SCRIPT = """
import json, os, sys
import django
django.setup()
from django.test import RequestFactory
from rest_framework.request import Request
from atlas.api.throttling import AnonRateThrottle
from rest_framework.settings import api_settings
api_settings.DEFAULT_THROTTLE_RATES["anon"] = "5/min"
ip, n = sys.argv[1], int(sys.argv[2])
request = Request(RequestFactory().get("/api/v1/", REMOTE_ADDR=ip))
print(json.dumps([AnonRateThrottle().allow_request(request, None) for _ in range(n)]))
"""


@pytest.mark.redis
def test_attack_throttles_are_counted_once_for_every_process(tmp_path):
    """Two web processes share one count in Redis: 5/min is five requests, not five per worker."""
    service_or_skip("Redis", "127.0.0.1", 6379)
    ip = f"192.0.2.{secrets.randbelow(250) + 1}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "true",
           "ATLAS_VAR_DIR": str(tmp_path), "CACHE_URL": "redis://127.0.0.1:6379/13"}

    def process(n: int) -> list[bool]:
        out = subprocess.run([sys.executable, "-c", _THROTTLE_SCRIPT, ip, str(n)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert process(3) == [True, True, True]
    assert process(3) == [True, True, False]  # the second process sees the first's three


# --- settings from the environment, secure by default ----------------------------------------------------
def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The production environment the README documents (no DEBUG), plus ``extra``."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
        "ATLAS_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "atlas.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://atlas.example.com",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
        "ATLAS_METRICS_TOKEN": secrets.token_urlsafe(32),
        # The other secrets production sets (audit chain, PII pseudonyms): their own checks want them.
        "ATLAS_AUDIT_KEY": secrets.token_urlsafe(32),
        "PII_HASH_KEY": secrets.token_urlsafe(32),
        **extra,
    }


def _settings_in(env: dict[str, str], *names: str) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}, default=str))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "atlas.settings"},
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_check_deploy_gives_zero_warnings_with_the_documented_production_environment(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            env=_production_env(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "System check identified no issues" in result.stdout, result.stdout


def test_production_is_secure_by_default(tmp_path):
    found = _settings_in(
        _production_env(tmp_path), "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS",
        "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_AGE", "SECURE_PROXY_SSL_HEADER", "CACHES",
    )
    assert found["SESSION_COOKIE_SECURE"] and found["CSRF_COOKIE_SECURE"] and found["SECURE_SSL_REDIRECT"]
    assert found["SECURE_HSTS_SECONDS"] >= 31_536_000 and found["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert found["SECURE_CONTENT_TYPE_NOSNIFF"] and found["SESSION_COOKIE_HTTPONLY"] and found["X_FRAME_OPTIONS"] == "DENY"
    assert found["SESSION_COOKIE_AGE"] <= 12 * 3600
    assert found["SECURE_PROXY_SSL_HEADER"] is None  # opt-in: trusting a header is a decision
    assert found["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert found["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/1"


def test_every_security_setting_comes_from_the_environment(tmp_path):
    found = _settings_in(
        _production_env(tmp_path, SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="60",
                        SESSION_COOKIE_SECURE="false", SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
                        SESSION_COOKIE_AGE="600", X_FRAME_OPTIONS="SAMEORIGIN", ATLAS_LOGIN_FAILURE_LIMIT="3"),
        "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER",
        "SESSION_COOKIE_AGE", "X_FRAME_OPTIONS", "AXES_FAILURE_LIMIT",
    )
    assert found == {"SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 60, "SESSION_COOKIE_SECURE": False,
                     "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SESSION_COOKIE_AGE": 600,
                     "X_FRAME_OPTIONS": "SAMEORIGIN", "AXES_FAILURE_LIMIT": 3}


def test_a_malformed_proxy_header_is_a_clear_error_at_start(tmp_path):
    env = {**_production_env(tmp_path, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"), "DJANGO_SETTINGS_MODULE": "atlas.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "HTTP_X_FORWARDED_PROTO,https" in out.stderr


def test_debug_keeps_plain_http_for_the_demo(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "ATLAS_VAR_DIR": str(tmp_path / "v"), "DEBUG": "true"}
    found = _settings_in(env, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "CACHES")
    assert found["SECURE_SSL_REDIRECT"] is False and found["SESSION_COOKIE_SECURE"] is False
    assert found["SECURE_HSTS_SECONDS"] == 0
    assert found["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_responses_carry_the_hardening_headers(client, db):
    response = client.get("/admin/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


# --- passwords ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("weak", ["short-pw", "password1234", "123456789012", "alice-example"])
def test_weak_passwords_are_refused(weak, db):
    user = get_user_model()(username="alice-example", email="alice@example.com")
    with pytest.raises(ValidationError):
        validate_password(weak, user)


def test_a_long_uncommon_password_passes(db):
    validate_password(GOOD, get_user_model()(username="alice"))


def test_the_admin_password_change_applies_the_validators(client, db):
    user = user_with_role(None, "pwuser", is_staff=True)
    client.force_login(user)
    response = client.post(reverse("admin:password_change"), {
        "old_password": "pw", "new_password1": "abc12345", "new_password2": "abc12345"})
    assert response.status_code == 200 and "at least 12 characters" in response.content.decode()


# --- the client address counted ---------------------------------------------------------------------------
def test_the_counted_address_ignores_a_forwarded_header_unless_proxies_are_trusted(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    settings.ATLAS_TRUSTED_PROXY_COUNT = 0
    assert auth.client_ip(request) == "10.0.0.2"
    settings.ATLAS_TRUSTED_PROXY_COUNT = 1
    assert auth.client_ip(request) == "203.0.113.9"  # what our one proxy saw, not what the client claims
    settings.ATLAS_TRUSTED_PROXY_COUNT = 3
    assert auth.client_ip(request) == "10.0.0.2"  # a shorter chain than promised: the socket's address
