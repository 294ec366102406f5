"""The production image (issue 17): one list of apps, a lock file, and a Dockerfile CI can replay.

The image did not build for two days because the Dockerfile and pyproject.toml each kept a
list of apps of their own and settings gained two. settings.ATLAS_APPS is now the list; these
tests fail when pyproject.toml, the import layers or the Dockerfile disagree with it, and
check the reading of the Dockerfile that .ci/image-smoke replays.
"""

from __future__ import annotations

import http.server
import importlib.util
import re
import runpy
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from django.conf import settings
from packaging.requirements import Requirement

pytestmark = pytest.mark.engine_free  # atlas/tests/engine_free.py: these tests read the Dockerfile, the lock files and compose's file; manage.py is text there

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


plan = _load("dockerfile_plan", ROOT / ".ci" / "dockerfile_plan.py")
healthcheck = _load("atlas_healthcheck", ROOT / "deploy" / "healthcheck.py")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGE = plan.parse((ROOT / "Dockerfile").read_text())
GOOD_TAIL = 'USER app\nHEALTHCHECK CMD ["python", "healthcheck.py", "/healthz"]\nCMD ["gunicorn", "atlas.wsgi"]\n'


# --- one list of apps ----------------------------------------------------------------------------
def test_a_local_app_missing_from_the_list_is_found():
    """The failure of issue 17: an app in INSTALLED_APPS that one of the lists leaves out."""
    local = {app for app in settings.INSTALLED_APPS if (ROOT / app / "apps.py").exists() or (ROOT / app / "__init__.py").exists()}
    assert local == set(settings.ATLAS_APPS)
    assert [a for a in settings.INSTALLED_APPS if a in local] == settings.ATLAS_APPS  # in the list's order


def test_the_list_read_without_django_is_the_settings_list():
    assert plan.atlas_apps() == settings.ATLAS_APPS


def test_pyproject_packages_are_exactly_the_apps():
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == sorted(f"{app}*" for app in settings.ATLAS_APPS)


def test_the_import_layers_cover_exactly_the_apps():
    linter = PYPROJECT["tool"]["importlinter"]
    assert sorted(linter["root_packages"]) == sorted(settings.ATLAS_APPS)
    layered = {name.strip() for layer in linter["contracts"][0]["layers"] for name in layer.split("|")}
    assert layered == set(settings.ATLAS_APPS)


def test_the_dockerfile_copies_every_app_and_only_the_files_it_needs():
    copied = IMAGE.copied_sources()
    assert len(copied) == len(set(copied)), "a source copied twice"
    assert set(copied) - plan.SUPPORT_FILES == set(settings.ATLAS_APPS)
    assert set(copied) >= plan.SUPPORT_FILES, "a support file the image needs is not copied"
    for source in copied:
        assert (ROOT / source).exists(), source


# --- dependencies: a lock file, installed before the code --------------------------------------
def _locked(name: str = "prod") -> dict[str, str]:
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    return {m[1].lower().replace("_", "-"): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.M)}


@pytest.mark.parametrize("lock", ["prod", "dev"])
def test_every_locked_package_has_hashes(lock):
    text = (ROOT / "requirements" / f"{lock}.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2] if text.startswith("#") else text)
    pins = [e for e in entries if "==" in e.split("\n")[0]]
    assert pins and all("--hash=sha256:" in e for e in pins)


@pytest.mark.parametrize("lock, extras", [("prod", ["prod"]), ("dev", ["prod", "dev"])])
def test_the_lock_pins_every_dependency_within_pyproject(lock, extras):
    """A dependency added to pyproject.toml without `uv pip compile` again fails here."""
    locked = _locked(lock)
    optional = PYPROJECT["project"]["optional-dependencies"]
    wanted = [*PYPROJECT["project"]["dependencies"], *(d for extra in extras for d in optional[extra])]
    for line in wanted:
        req = Requirement(line)
        name = req.name.lower().replace("_", "-")
        assert name in locked, f"{name} is not in requirements/{lock}.lock: run the command at its top"
        assert req.specifier.contains(locked[name], prereleases=True), f"{name}=={locked[name]} outside {req.specifier}"


def test_dependencies_are_installed_from_the_lock_before_any_code_is_copied():
    order = [(kind, payload) for kind, payload in IMAGE.steps if kind in ("copy", "run")]
    lock_install = next(i for i, (k, p) in enumerate(order) if k == "run" and "-r requirements/prod.lock" in p[0])
    assert "--require-hashes" in order[lock_install][1][0]
    first_app = next(i for i, (k, p) in enumerate(order) if k == "copy" and set(p[0]) & set(settings.ATLAS_APPS))
    assert lock_install < first_app
    assert [p[0] for k, p in order[:lock_install] if k == "copy"] == [["requirements/prod.lock"]]


def test_the_image_runs_as_a_user_with_a_healthcheck_and_static_files_of_its_own():
    assert IMAGE.user == "atlas"
    assert IMAGE.healthcheck[-1] == "/healthz"
    assert IMAGE.cmd[:2] == ["gunicorn", "atlas.wsgi"] and "gunicorn.conf.py" in IMAGE.cmd
    # static files live in the image, outside Atlas's data directory (the volume)
    assert not IMAGE.env["STATIC_ROOT"].startswith(IMAGE.env["ATLAS_VAR_DIR"])
    assert any("collectstatic" in command for command, _ in IMAGE.runs)
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE


# --- the Dockerfile reader: what it refuses, first ----------------------------------------------
@pytest.mark.parametrize(
    "text, message",
    [
        ('FROM x\nADD https://example.com/a /a\n' + GOOD_TAIL, "ADD is not replayed"),
        ("FROM x\nCOPY --chown=app a b\n" + GOOD_TAIL, "COPY flags are not replayed"),
        ("FROM x\nENV A\n" + GOOD_TAIL, "KEY=value"),
        ('FROM x\nHEALTHCHECK CMD ["python", "h.py"]\nCMD ["gunicorn"]\n', "runs as root"),
        ('FROM x\nUSER root\nHEALTHCHECK CMD ["python", "h.py"]\nCMD ["gunicorn"]\n', "runs as root"),
        ('FROM x\nUSER app\nCMD ["gunicorn"]\n', "no HEALTHCHECK"),
        ('FROM x\nUSER app\nHEALTHCHECK CMD ["python", "h.py"]\n', "no CMD"),
        ("FROM x\nUSER app\nHEALTHCHECK CMD python h.py\nCMD [\"g\"]\n", "exec form"),
        ("FROM x\nRUN echo \\\n", "continuation"),
    ],
)
def test_the_reader_refuses_what_it_cannot_replay(text, message):
    with pytest.raises(plan.PlanError, match=message):
        plan.parse(text)


@pytest.mark.parametrize(
    "command",
    ["curl -o /x https://example.com/x", "apt-get install -y gcc", "sh -c 'pip install x'", "A=1"],
)
def test_a_run_command_outside_the_allowlist_is_refused(command, tmp_path):
    with pytest.raises(plan.PlanError, match="RUN"):
        plan.translate(command, root=tmp_path, venv=tmp_path / "venv", uv="uv")


def test_run_commands_are_translated_for_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    py = str(venv / "bin" / "python")
    assert plan.translate("pip install --no-cache-dir -r r.lock", root=tmp_path, venv=venv, uv="uv") == [
        "env", "uv", "pip", "install", "--quiet", "--python", py, "-r", "r.lock",
    ]
    assert plan.translate("K=v python manage.py x", root=tmp_path, venv=venv, uv="uv") == ["env", "K=v", py, "manage.py", "x"]
    assert plan.translate("mkdir -p /var/lib/a", root=tmp_path, venv=venv, uv="uv") == ["mkdir", "-p", str(tmp_path / "var/lib/a")]
    assert plan.translate("useradd --system a", root=tmp_path, venv=venv, uv="uv") is None


def test_the_reader_joins_continuations_and_keeps_the_order():
    image = plan.parse(
        "# c\nFROM x\nENV A=1 B=\"two words\"\nWORKDIR /app\nCOPY a \\\n  b ./\n# inside\nRUN pip install \\\n"
        "    -r r.lock\nCOPY c c\n" + GOOD_TAIL
    )
    assert image.env == {"A": "1", "B": "two words"}
    assert [k for k, _ in image.steps] == ["env", "env", "copy", "run", "copy"]
    assert image.copies == [(["a", "b"], "./"), (["c"], "c")]
    assert image.runs == [("pip install -r r.lock", "/app")]


def test_copy_follows_docker_and_dockerignore(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app" / "__pycache__").mkdir(parents=True)
    (repo / "app" / "sub").mkdir()
    (repo / "app" / "m.py").write_text("x = 1\n")
    (repo / "app" / "sub" / "n.py").write_text("y = 2\n")
    (repo / "app" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (repo / "top.txt").write_text("t")
    root = tmp_path / "root"
    patterns = ["**/__pycache__", "**/*.pyc"]
    plan.copy_into(["app"], "/srv/app", root, repo, patterns)
    plan.copy_into(["top.txt"], "/srv/", root, repo, patterns)
    plan.copy_into(["top.txt"], "/srv/renamed.txt", root, repo, patterns)
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert found == ["srv/app/m.py", "srv/app/sub/n.py", "srv/renamed.txt", "srv/top.txt"]
    with pytest.raises(plan.PlanError, match="not in the repository"):
        plan.copy_into(["missing"], "/srv/", root, repo, patterns)


def test_the_smoke_script_reads_the_compose_services_it_starts(tmp_path):
    script = plan.shell_script(IMAGE, tmp_path, tmp_path / "venv")
    for name in ("IMAGE_CMD=(", "IMAGE_HEALTHCHECK=(", "COMPOSE_WORKER_COMMAND=(", "COMPOSE_BEAT_COMMAND=(",
                 "COMPOSE_MIGRATE_COMMAND=(", "COMPOSE_WORKER_HEALTHCHECK=(", "COMPOSE_BEAT_HEALTHCHECK=("):
        assert name in script
    assert f"export ATLAS_VAR_DIR={tmp_path}/var/lib/atlas" in script
    assert "$$" not in script
    assert "${" not in script  # compose's variables are interpolated as compose does (CI once ran '${X:-16}')


@pytest.mark.parametrize(("value", "env", "expected"), [
    ("--concurrency=${ATLAS_WORKER_THREADS:-16}", {}, "--concurrency=16"),
    ("--concurrency=${ATLAS_WORKER_THREADS:-16}", {"ATLAS_WORKER_THREADS": "4"}, "--concurrency=4"),
    ("${EMPTY:-d} ${EMPTY-d}", {"EMPTY": ""}, "d "),
    ("${UNSET-d} ${UNSET}", {}, "d "),
    ("celery inspect ping -d celery@$$HOSTNAME", {"HOSTNAME": "no"}, "celery inspect ping -d celery@$HOSTNAME"),
])
def test_compose_values_are_interpolated_as_compose_does(value, env, expected):
    assert plan.interpolate(value, env) == expected


def test_ci_runs_the_smoke_script():
    assert ".ci/image-smoke" in (ROOT / ".ci" / "run").read_text()


# --- the container's health probe --------------------------------------------------------------
@pytest.mark.parametrize(
    "allowed, expected",
    [("", "127.0.0.1:8000"), ("*", "127.0.0.1:8000"), ("atlas.example.com,localhost", "atlas.example.com"),
     (".example.com", "example.com"), (" , *, b.example ", "b.example")],
)
def test_the_probe_sends_a_host_django_accepts(allowed, expected):
    assert healthcheck.host_header("http://127.0.0.1:8000/healthz", allowed) == expected


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's name)
        code = 200 if self.headers["Host"] == "atlas.example.com" and self.path == "/healthz" else 503
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_the_probe_fails_on_anything_but_200(server):
    env = {"PORT": str(server), "ALLOWED_HOSTS": "atlas.example.com"}
    assert healthcheck.probe("/healthz", env)[0] is True
    ok, message = healthcheck.probe("/readyz", env)
    assert not ok and "HTTP 503" in message
    assert healthcheck.probe("/healthz", {"PORT": str(server), "ALLOWED_HOSTS": "other.example"})[0] is False
    ok, message = healthcheck.probe("file:///etc/passwd", env)
    assert not ok and "not an http(s) URL" in message


def test_the_probe_fails_when_nothing_listens(server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ok, message = healthcheck.probe(f"http://127.0.0.1:{port}/healthz", {})
    assert not ok and "Connection refused" in message
    assert healthcheck.main(["healthcheck.py"]) == 2


# --- gunicorn ---------------------------------------------------------------------------------
def _gunicorn_conf(monkeypatch, **env) -> dict:
    for key in ("PORT", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "GUNICORN_MAX_REQUESTS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_refuses_a_setting_that_is_not_a_count(monkeypatch):
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY must be a positive whole number, not '-2'"):
        _gunicorn_conf(monkeypatch, WEB_CONCURRENCY="-2")
    with pytest.raises(SystemExit, match="GUNICORN_TIMEOUT"):
        _gunicorn_conf(monkeypatch, GUNICORN_TIMEOUT="2m")


def test_gunicorn_is_configured_for_long_requests_and_recycles_workers(monkeypatch):
    conf = _gunicorn_conf(monkeypatch)
    assert conf["worker_class"] == "gthread" and conf["threads"] > 1
    assert conf["timeout"] >= 60 and conf["graceful_timeout"] >= 10
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["bind"] == ["0.0.0.0:8000"]
    conf = _gunicorn_conf(monkeypatch, PORT="9000", WEB_CONCURRENCY="5")
    assert conf["bind"] == ["0.0.0.0:9000"] and conf["workers"] == 5
