import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _start(env_overrides: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DATABASE_URL")}
    env.update({"ATLAS_VAR_DIR": str(tmp_path), **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_start_without_a_secret_key_stops_with_a_clear_message(tmp_path):
    result = _start({"DEBUG": "false"}, tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_start_with_a_secret_key_passes_the_checks(tmp_path):
    result = _start({"DEBUG": "false", "SECRET_KEY": "x" * 50}, tmp_path)
    assert result.returncode == 0, result.stderr


def test_healthz_answers(client):
    assert client.get("/healthz").json() == {"status": "ok"}
