"""Real servers for the connector tests: moto's S3-compatible server and a JSON API, both on 127.0.0.1, port 0.

Nothing is mocked in process: Atlas talks HTTP to them exactly as to a real endpoint. Each is
admitted only by an explicit setting (``ATLAS_S3_ENDPOINTS``; ``ATLAS_URL_ALLOWED_NETWORKS``).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

S3_KEY_ID = "AKIAATLASTEST0000001"
S3_SECRET = "atlas-test-secret-value-0123456789"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto server (S3-compatible) in a thread; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint, settings, monkeypatch):
    """A client of the test server, the endpoint allowed, and secrets in the environment as references."""
    import boto3

    settings.ATLAS_S3_ENDPOINTS = [s3_endpoint]
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_S3_KEY_ID", S3_KEY_ID)
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_S3_SECRET", S3_SECRET)
    return boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET,
    )


def s3_options(endpoint: str, **more) -> dict:
    return {
        "endpoint_url": endpoint,
        "access_key_id": "env:ATLAS_SOURCE_SECRET_S3_KEY_ID",
        "secret_access_key": "env:ATLAS_SOURCE_SECRET_S3_SECRET",
        **more,
    }


class API:
    """What the JSON API server serves: ``routes[path](handler, query) -> (status, headers, body)``."""

    def __init__(self) -> None:
        self.routes: dict = {}
        self.seen: list[dict] = []
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def json_answer(doc, status: int = 200, **headers) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(doc).encode()


@pytest.fixture
def api(settings):
    """A JSON API server in a thread; loopback admitted explicitly (ATLAS_URL_ALLOWED_NETWORKS)."""
    state = API()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state.seen.append({"path": parts.path, "query": query, "headers": dict(self.headers), "at": time.monotonic()})
            route = state.routes.get(parts.path)
            status, headers, body = route(self, query) if route else (404, {}, b"")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.port = httpd.server_address[1]
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.ATLAS_API_BACKOFF_SECONDS = 0.05
    settings.ATLAS_API_MAX_BACKOFF_SECONDS = 0.2
    yield state
    httpd.shutdown()
    httpd.server_close()
