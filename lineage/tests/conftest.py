"""Lineage test helpers: the hook enabled, the official spec located, a flaky HTTP endpoint."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from atlas.tests.plugin import IN_CI, run_now  # noqa: F401  (run_now: ``from .conftest import run_now``)

HOOK = "lineage.hooks.LineageHook"
REPO = Path(__file__).resolve().parents[2]
OFFICIAL_SPEC = REPO.parent / "shared" / "openlineage-spec"


@pytest.fixture
def lineage_hook(settings):
    settings.ATLAS_STEP_HOOKS = [HOOK]
    settings.OPENLINEAGE_URL = ""
    return HOOK


@pytest.fixture
def official_spec() -> Path:
    """The official OpenLineage schema next to the repository (../shared); skipped locally when absent, fails in CI."""
    if not (OFFICIAL_SPEC / "OpenLineage.json").is_file():
        message = f"the official OpenLineage spec is not at {OFFICIAL_SPEC}"
        if IN_CI:
            pytest.fail(f"{message}; CI must provide it.")
        pytest.skip(f"{message}; put it there to validate events against it.")
    return OFFICIAL_SPEC


class Endpoint:
    """A real HTTP server on a fixed port that can refuse requests and be stopped and started again."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.requests = 0
        self.refuse_every = 0  # refuse each n-th request with 503
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with endpoint.lock:
                    endpoint.requests += 1
                    refuse = endpoint.refuse_every and endpoint.requests % endpoint.refuse_every == 0
                    if not refuse and self.path == "/api/v1/lineage":
                        endpoint.received.append(json.loads(body))
                self.send_response(503 if refuse else 200 if self.path == "/api/v1/lineage" else 404)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                return

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def endpoint():
    server = Endpoint()
    server.start()
    yield server
    server.stop()
