"""Real sinks for alerts: an HTTP server and an SMTP server (aiosmtpd), each in a thread, on loopback.

Nothing about delivery is mocked: the webhook channel goes through the URL guard
and a socket to :class:`HttpSink`, e-mail through Django's SMTP backend to
:class:`SmtpSink`. A sink's ``plan`` says how it answers the next requests
(a status, a Retry-After, a delay), then 200.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from alerts.models import AlertRule


@dataclass
class Answer:
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class HttpSink:
    url: str = ""
    plan: list[Answer] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)  # {"path", "headers", "body"}
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.received]


def _handler(sink: HttpSink):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with sink.lock:
                answer = sink.plan.pop(0) if sink.plan else Answer()
            if answer.delay:
                time.sleep(answer.delay)
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            with sink.lock:
                sink.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(answer.status)
            if answer.retry_after:
                self.send_header("Retry-After", answer.retry_after)
            self.send_header("Content-Length", "2")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (timeout)
                self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def http_sink():
    sink = HttpSink()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sink))
    server.daemon_threads = True
    server.block_on_close = False
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released): a sink that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpSink:
    port: int
    messages: list = field(default_factory=list)  # (envelope from, recipients, message text)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield sink
    controller.stop()


@pytest.fixture(autouse=True)
def _alert_settings(settings):
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]  # the sinks are on loopback
    settings.ATLAS_URL_ALLOWED_HOSTS = []
    settings.ATLAS_ALERTS_RETRY_BASE_SECONDS = 10.0
    settings.ATLAS_ALERTS_RETRY_MAX_SECONDS = 100.0
    settings.ATLAS_ALERTS_MAX_ATTEMPTS = 3
    settings.ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS = 5.0
    settings.ATLAS_EXTERNAL_URL = "https://atlas.example.test"


@pytest.fixture
def rule(db):
    def make(name: str = "ops", channel: str = "webhook", events=("run_failed",), **fields) -> AlertRule:
        if channel == "webhook":
            fields.setdefault("url", "https://hooks.example.test/atlas")  # never reached: nothing delivers
        found = AlertRule(name=name, channel=channel, events=list(events), **fields)
        found.full_clean()
        found.save()
        return found

    return make
