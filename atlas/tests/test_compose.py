"""docker-compose.yml, read offline (no Docker on CI; `docker compose config` is not available).

Compose that an operator can run for months (issue 17): every long-running service has a
health check and starts after what it needs is healthy, no secret is written in the file (each
comes from .env, listed in .env.example), the data lives on named volumes, the databases of
metadata and warehouse are separate, stops are graceful, resources are bounded, logs rotate.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ONE_SHOTS = {name for name, s in SERVICES.items() if s.get("restart") == "no"}
LONG_RUNNING = set(SERVICES) - ONE_SHOTS
ATLAS = {name for name, s in SERVICES.items() if s.get("build")}
SECRETISH = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN", re.I)
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?")
REFERENCED = re.compile(r"\$\{([A-Z0-9_]+)")


def _seconds(value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", value))


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


# --- the faults issue 17 found, first ----------------------------------------------------------
def test_no_secret_is_written_in_the_file():
    """The database password was hard-coded; every secret now comes from .env."""
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        for key, value in env.items():
            value = str(value)
            if SECRETISH.search(key) and value:
                assert value.startswith("${"), f"{name}.{key} is written in the file"
            for password in re.findall(r"://[^:/@]+:([^@]+)@", value):
                assert password.startswith("${"), f"{name}.{key} has a password in its URL"


def test_every_secret_reaches_atlas():
    env = SERVICES["web"]["environment"]
    for key in ("SECRET_KEY", "PII_HASH_KEY", "ATLAS_AUDIT_KEY", "ATLAS_WAREHOUSE_SQL_PASSWORD"):
        assert REQUIRED.match(str(env[key])), f"{key} must refuse to start when unset"
    assert "${ATLAS_DB_PASSWORD" in env["DATABASE_URL"]


def test_every_long_running_service_has_a_health_check():
    for name in LONG_RUNNING:
        check = SERVICES[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}.healthcheck has no {key}"
        assert _seconds(check["timeout"]) < _seconds(check["interval"])


def test_one_shot_services_are_waited_for_and_carry_no_health_check():
    assert {"roles", "migrate"} == ONE_SHOTS
    for name in ONE_SHOTS:
        assert SERVICES[name]["healthcheck"] == {"disable": True}


def test_every_dependency_waits_on_a_condition():
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on as a list waits for nothing"
        for target, rule in depends.items():
            expected = "service_completed_successfully" if target in ONE_SHOTS else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {target}: {rule}"


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_atlas_starts_after_migrations_on_healthy_databases(name):
    assert set(SERVICES[name]["depends_on"]) == {"postgres", "redis", "migrate"}
    assert set(SERVICES["migrate"]["depends_on"]) == {"postgres", "redis", "roles"}


def test_data_lives_on_named_volumes_and_static_files_in_the_image():
    named = set(COMPOSE["volumes"])
    assert "redis-data:/data" in SERVICES["redis"]["volumes"] and "redis-data" in named
    assert "--appendonly" in SERVICES["redis"]["command"]
    web_volumes = SERVICES["web"]["volumes"]
    assert "atlas-data:/var/lib/atlas" in web_volumes and "atlas-data" in named
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ATLAS_VAR_DIR=/var/lib/atlas" in dockerfile and "STATIC_ROOT=/app/staticfiles" in dockerfile
    for volume in web_volumes:
        source, target = volume.split(":")[:2]
        assert not target.startswith("/app"), f"{volume} would hide the image's files (static files)"
        if not source.startswith("."):
            assert source in named, f"{volume}: an anonymous or undeclared volume"


def test_metadata_and_warehouse_are_separate_databases():
    env = SERVICES["web"]["environment"]
    meta = env["DATABASE_URL"].rsplit("/", 1)[1]
    warehouse = env["WAREHOUSE_URL"].rsplit("/", 1)[1]
    assert meta != warehouse
    assert SERVICES["roles"]["environment"]["ATLAS_WAREHOUSE_ADMIN_URL"].endswith(f"/{warehouse}")
    init = (ROOT / "deploy" / "postgres" / "initdb" / "10-atlas.sh").read_text()
    assert f"CREATE DATABASE {warehouse} OWNER atlas" in init
    assert f"ALTER DATABASE {meta} OWNER TO atlas" in init
    assert SERVICES["postgres"]["environment"]["POSTGRES_DB"] == meta


def test_stops_let_work_finish():
    gunicorn = (ROOT / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r'"GUNICORN_GRACEFUL_TIMEOUT", (\d+)', gunicorn)[1])
    assert _seconds(SERVICES["web"]["stop_grace_period"]) >= graceful + 10
    assert _seconds(SERVICES["worker"]["stop_grace_period"]) >= 300  # a step finishes, or is handed back
    for name in LONG_RUNNING:
        assert "stop_grace_period" in SERVICES[name] or name == "grafana", f"{name} has docker's 10 s"


def test_resources_are_bounded_and_logs_rotate():
    for name in LONG_RUNNING - {"prometheus", "grafana"}:
        limits = SERVICES[name]["deploy"]["resources"]["limits"]
        assert limits.get("memory") and limits.get("cpus"), name
    for name in LONG_RUNNING:
        logging = SERVICES[name].get("logging") or {}
        assert logging.get("options", {}).get("max-size"), f"{name}'s logs grow without bound"


def test_env_example_lists_every_required_variable_without_values():
    lines = (ROOT / "docker-compose.yml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    required = set(REQUIRED.findall(text))
    example = _env_example()
    assert required <= set(example), f"missing from .env.example: {sorted(required - set(example))}"
    assert set(example) <= set(REFERENCED.findall(text)) | {"COMPOSE_PROJECT_NAME"}, "a variable compose never reads"
    for key, value in example.items():
        if SECRETISH.search(key):
            assert value == "", f".env.example gives {key} a value: secrets are generated per deployment"


def test_gunicorn_knobs_in_compose_are_the_ones_its_config_reads():
    gunicorn = (ROOT / "gunicorn.conf.py").read_text()
    for key in SERVICES["web"]["environment"]:
        if key.startswith(("GUNICORN_", "WEB_")):
            assert f'"{key}"' in gunicorn or f"'{key}'" in gunicorn, key


def test_the_worker_is_pinged_by_its_own_name():
    test = SERVICES["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "--destination celery@$$HOSTNAME" in test[1]
    assert SERVICES["beat"]["healthcheck"]["test"][1:4] == ["python", "manage.py", "beat_health"]


def test_ports_are_published_on_the_loopback_unless_the_operator_says_otherwise():
    """Plain http and Grafana's first login must not face the network by default."""
    for name, service in SERVICES.items():
        for port in service.get("ports") or []:
            host = str(port).rsplit(":", 2)[0]
            assert host in ("127.0.0.1", "${ATLAS_HTTP_BIND:-127.0.0.1}"), f"{name} publishes {port}"


def test_the_spark_profile_scales_its_workers_and_serves_spark_connect_on_the_loopback():
    """issue 21: ``--profile spark`` is a master, workers ``--scale`` multiplies, and a Spark Connect server."""
    spark = {name for name, s in SERVICES.items() if "spark" in (s.get("profiles") or [])}
    assert spark == {"spark-master", "spark-worker", "spark-connect"}
    worker = SERVICES["spark-worker"]
    assert "container_name" not in worker and not worker.get("ports"), "a fixed name or host port stops --scale"
    assert "spark://spark-master:7077" in worker["command"][-1]
    connect = SERVICES["spark-connect"]
    assert connect["ports"] == ["127.0.0.1:15002:15002"]
    assert "start-connect-server.sh --master spark://spark-master:7077" in connect["command"][-1]
    # workers write the Parquet files the server's catalog names: one warehouse volume
    assert "spark-warehouse:/data" in worker["volumes"] and "spark-warehouse:/data" in connect["volumes"]
    dockerfile = (ROOT / "deploy" / "spark" / "Dockerfile").read_text()
    lock = (ROOT / "requirements" / "dev.lock").read_text()
    version = re.search(r"ARG PYSPARK_VERSION=(\S+)", dockerfile)[1]
    assert f"pyspark=={version} " in lock, "the compose server runs the tests' Spark version"
