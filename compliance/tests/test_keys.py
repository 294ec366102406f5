"""PII_HASH_KEY: never needed to start; required, with a clear error, only when a hash policy runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.models import PiiFinding
from compliance.policies import decide_finding

from .conftest import run_now
from .demo import user_in_role

ROOT = Path(__file__).resolve().parents[2]
SHOW = (
    "from django.conf import settings as s; from compliance.policies import hash_key;"
    "print(repr(s.PII_HASH_KEY), s.PII_HASH_KEY_IS_DEVELOPMENT); hash_key()"
)


def _shell(tmp_path, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL", "PII_HASH_KEY")}
    env.update({"ATLAS_VAR_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )


def test_production_starts_without_the_key_and_hashing_then_says_what_to_set(tmp_path):
    result = _shell(tmp_path, DEBUG="false", SECRET_KEY="x" * 50)
    assert "'' False" in result.stdout, result.stderr
    assert "PII_HASH_KEY is not set: hash policies need it" in result.stderr


def test_debug_uses_a_development_key_derived_from_the_secret_key_and_warns(tmp_path):
    first = _shell(tmp_path, DEBUG="true", SECRET_KEY="a" * 50)
    second = _shell(tmp_path, DEBUG="true", SECRET_KEY="b" * 50)
    assert first.returncode == 0, first.stderr
    assert "True" in first.stdout and first.stdout != second.stdout  # derived, not one shared constant
    assert "DEVELOPMENT key" in first.stderr


def test_a_set_key_is_used_as_given(tmp_path):
    result = _shell(tmp_path, DEBUG="false", SECRET_KEY="x" * 50, PII_HASH_KEY="k" * 40)
    assert result.returncode == 0 and f"'{'k' * 40}' False" in result.stdout, result.stderr
    assert "DEVELOPMENT" not in result.stderr


@pytest.mark.slow
def test_a_hash_policy_without_a_key_fails_the_step_clearly(wh, pii_hook, customers_pipeline, settings):
    pipeline = customers_pipeline()
    run_now(pipeline)
    decide_finding(PiiFinding.objects.get(column="email"), status="confirmed", actor=user_in_role("s", "Steward"))
    settings.PII_HASH_KEY, settings.PII_HASH_KEY_IS_DEVELOPMENT = "", False
    run = run_now(pipeline)
    assert run.status == "failed"
    error = run.step_runs.get(step_name="refine").error
    assert "PII policies of customers: PII_HASH_KEY is not set" in error
