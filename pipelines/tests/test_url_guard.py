"""URL sources reach only allowed addresses; credentials are references, never stored in clear.

The first tests replay the attacks of issue 12: URL sources reached
127.0.0.1:6379, [::1], Atlas's own /metrics, and would connect to
169.254.169.254. Every server here is a local one on 127.0.0.1 (nothing leaves
the machine): refused by default, reached only when a test allows 127.0.0.1/32.
"""

from __future__ import annotations

import http.server
import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError

from atlas.warehouse.filereader import IngestError
from pipelines import credentials, netguard
from pipelines.models import Dataset, Pipeline, RunStatus, Source, Step
from pipelines.sources import source_files

from .conftest import explore_rows, run_now

CSV = b"id,name\n1,Ann\n2,Bob\n"


class Handler(http.server.BaseHTTPRequestHandler):
    """/d.csv: the file; /redirect?to=URL: 302; /big: no Content-Length; /secret: needs a token."""

    seen: list[dict] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        Handler.seen.append({"path": self.path, "headers": dict(self.headers)})
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.end_headers()
        elif parts.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif parts.path == "/big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the connection closes
            for _ in range(100):
                self.wfile.write(b"x" * 1000 + b"\n")
            self.close_connection = True
        elif parts.path == "/secret":
            ok = self.headers.get("Authorization") == "Bearer s3cr3t-token" or query.get(
                "api_key"
            ) == ["k3y-value"]
            self.send_response(200 if ok else 403)
            self.send_header("Content-Length", str(len(CSV) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(CSV)
        elif parts.path == "/d.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV)))
            self.end_headers()
            self.wfile.write(CSV)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def server():
    Handler.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def allow_local(settings):
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def fetch_error(location: str, **options) -> str:
    source = Source(name="web", kind="url", location=location, options=options)
    with pytest.raises(IngestError) as info, source_files(source):
        pass
    return str(info.value)


def fetched(location: str, **options) -> bytes:
    source = Source(name="web", kind="url", location=location, options=options)
    with source_files(source) as files, open(files[0].path, "rb") as fh:
        return fh.read()


# --- the attacks ---------------------------------------------------------------------------
def test_attack_a_local_server_is_refused_by_default_and_reached_only_when_allowed(
    db, server, settings
):
    error = fetch_error(f"http://127.0.0.1:{server}/d.csv")
    assert "Refused" in error and "ATLAS_URL_ALLOWED_NETWORKS" in error
    assert Handler.seen == []  # nothing was sent
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert fetched(f"http://127.0.0.1:{server}/d.csv") == CSV


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:6379",
        "[::1]",
        "0.0.0.0",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "localhost",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "169.254.169.254",
        "[fe80::1]",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "[fd00::1]",
        "224.0.0.1",
        "[ff02::1]",
        "240.0.0.1",
        "[::]",
        "[2002:7f00:1::1]",
        "[64:ff9b::a9fe:a9fe]",
        "[::ffff:169.254.169.254]",
        "198.18.0.1",
    ],
)
def test_attack_internal_addresses_in_every_notation_are_refused(host):
    with pytest.raises(netguard.URLRefused, match="non-public address"):
        netguard.check(f"http://{host}/metrics")


def test_attack_the_metrics_of_atlas_itself_are_not_reachable(db, server):
    assert "non-public address" in fetch_error(f"http://localhost:{server}/metrics")


def test_attack_a_redirect_from_an_allowed_server_to_a_refused_address_is_refused(
    db, server, allow_local
):
    for target in (
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{server}/d.csv",
        f"http://10.0.0.1:{server}/d.csv",
        "http://2130706434/",  # 127.0.0.2, outside the allowed 127.0.0.1/32
    ):
        error = fetch_error(f"http://127.0.0.1:{server}/redirect?to={target}")
        assert "non-public address" in error
    error = fetch_error(f"http://127.0.0.1:{server}/redirect?to=file:///etc/passwd")
    assert "Only http:// and https://" in error


def test_a_public_address_passes_the_address_check():
    for text in ("8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"):
        assert netguard.address_allowed(netguard.ipaddress.ip_address(text)), text


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    db, server, settings, monkeypatch
):
    """DNS rebinding: the name is resolved once; a second answer (internal) is never asked for."""
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    calls = []
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "data.example.test":
            calls.append(host)
            if len(calls) > 1:
                raise AssertionError("a second DNS lookup of the same hop")
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    assert fetched(f"http://data.example.test:{server}/d.csv") == CSV
    assert calls == ["data.example.test"]
    assert Handler.seen[-1]["headers"]["Host"] == f"data.example.test:{server}"


def test_an_allowed_host_name_may_resolve_to_an_internal_address(db, server, settings):
    assert "non-public" in fetch_error(f"http://localhost:{server}/d.csv")
    settings.ATLAS_URL_ALLOWED_HOSTS = ["localhost"]
    assert fetched(f"http://localhost:{server}/d.csv") == CSV


def test_redirects_are_followed_a_bounded_number_of_times(db, server, allow_local, settings):
    assert fetched(f"http://127.0.0.1:{server}/redirect?to=/d.csv") == CSV
    settings.ATLAS_URL_MAX_REDIRECTS = 3
    Handler.seen = []
    assert "More than ATLAS_URL_MAX_REDIRECTS (3)" in fetch_error(f"http://127.0.0.1:{server}/loop")
    assert len(Handler.seen) == 1 + 3  # the first request and three redirects, then refused


def test_a_download_larger_than_the_limit_is_refused(db, server, allow_local, settings):
    settings.ATLAS_URL_MAX_BYTES = 50_000
    assert "ATLAS_URL_MAX_BYTES" in fetch_error(
        f"http://127.0.0.1:{server}/big"
    )  # counted while streaming
    settings.ATLAS_URL_MAX_BYTES = 10
    assert "ATLAS_URL_MAX_BYTES" in fetch_error(
        f"http://127.0.0.1:{server}/d.csv"
    )  # declared length


def test_a_url_source_loads_through_the_guard(wh, server, allow_local):
    source = Source.objects.create(
        name="web", kind="url", location=f"http://127.0.0.1:{server}/d.csv"
    )
    source.full_clean()
    pipeline = Pipeline.objects.create(name="web")
    out = Dataset.objects.create(name="raw_web", layer="explore", table="web")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out)
    run = run_now(pipeline)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert explore_rows(wh, "web", "id, name") == [("1", "Ann"), ("2", "Bob")]


def test_a_refused_url_fails_the_run_clearly(wh, server):
    source = Source.objects.create(
        name="web", kind="url", location=f"http://127.0.0.1:{server}/d.csv"
    )
    pipeline = Pipeline.objects.create(name="web")
    out = Dataset.objects.create(name="raw_web", layer="explore", table="web")
    Step.objects.create(pipeline=pipeline, name="ingest", kind="ingest", source=source, output=out)
    run = run_now(pipeline)
    assert run.status == RunStatus.FAILED
    assert "non-public address" in run.step_runs.get().error


# --- credentials ------------------------------------------------------------------------------
def refused(**fields) -> str:
    with pytest.raises(ValidationError) as info:
        Source(name="web", kind="url", **fields).full_clean()
    return " ".join(m for ms in info.value.message_dict.values() for m in ms)


@pytest.mark.parametrize(
    "location",
    [
        "https://alice:hunter2@data.example.com/x.csv",
        "https://data.example.com/x.csv?api_key=hunter2",
        "https://data.example.com/x.csv?access_token=hunter2",
        "https://bucket.example.com/x.csv?X-Amz-Signature=hunter2&X-Amz-Credential=hunter2",
        "https://data.example.com/x.csv?sig=hunter2",
        "https://data.example.com/x.csv?apiKey=hunter2",
    ],
)
def test_attack_credentials_in_a_url_are_refused_at_save(db, location):
    message = refused(location=location)
    assert "env:ATLAS_SOURCE_SECRET_" in message and "hunter2" not in message


def test_a_url_without_secrets_is_fine(db):
    Source(
        name="web", kind="url", location="https://data.example.com/x.csv?page=2&format=csv"
    ).full_clean()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"headers": {"Authorization": "Bearer hunter2"}}, "never the secret itself"),
        ({"headers": {"X-Api-Key": "hunter2"}}, "never the secret itself"),
        ({"headers": {"Authorization": "env:SECRET_KEY"}}, "named ATLAS_SOURCE_SECRET_"),
        ({"headers": {"Authorization": "env:PII_HASH_KEY"}}, "named ATLAS_SOURCE_SECRET_"),
        ({"params": {"api_key": "hunter2"}}, "never the secret itself"),
        ({"headers": {"Host": "env:ATLAS_SOURCE_SECRET_X"}}, "not a header"),
        ({"headers": "Authorization: x"}, "must be an object"),
    ],
)
def test_secrets_in_options_must_be_references(db, options, message):
    text = refused(location="https://data.example.com/x.csv", options=options)
    assert message in text and "hunter2" not in text


def test_fetch_options_belong_to_url_sources_only(db, tmp_path):
    with pytest.raises(ValidationError, match="Unknown option"):
        Source(
            name="p", kind="path", location=str(tmp_path / "x.csv"), options={"headers": {}}
        ).full_clean()


def test_a_secret_header_is_resolved_from_the_environment_only_at_fetch(
    db, server, allow_local, monkeypatch
):
    options = {"headers": {"Authorization": "env:ATLAS_SOURCE_SECRET_TOKEN", "Accept": "text/csv"}}
    source = Source(
        name="web", kind="url", location=f"http://127.0.0.1:{server}/secret", options=options
    )
    source.full_clean()
    source.save()
    error = fetch_error(source.location, **options)
    assert "ATLAS_SOURCE_SECRET_TOKEN is not set" in error
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_TOKEN", "Bearer s3cr3t-token")
    assert fetched(source.location, **options) == CSV
    assert Handler.seen[-1]["headers"]["Accept"] == "text/csv"
    source.refresh_from_db()
    assert "s3cr3t" not in str(source.options)
    assert Source.objects.get().reader_options() == {"columns": []}  # the reader never sees them


def test_a_secret_param_is_added_at_fetch_and_never_shown(wh, server, allow_local, monkeypatch):
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_KEY", "k3y-value")
    options = {"params": {"api_key": "env:ATLAS_SOURCE_SECRET_KEY"}}
    assert fetched(f"http://127.0.0.1:{server}/secret", **options) == CSV
    source = Source(
        name="web", kind="url", location=f"http://127.0.0.1:{server}/nothing", options=options
    )
    with pytest.raises(IngestError) as info, source_files(source):
        pass
    assert "404" in str(info.value) and "k3y-value" not in str(info.value)


def test_secret_headers_are_not_sent_to_another_origin(db, server, settings, monkeypatch):
    settings.ATLAS_URL_ALLOWED_HOSTS = ["localhost"]
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    monkeypatch.setenv("ATLAS_SOURCE_SECRET_TOKEN", "Bearer s3cr3t-token")
    options = {"headers": {"Authorization": "env:ATLAS_SOURCE_SECRET_TOKEN"}}
    error = fetch_error(
        f"http://127.0.0.1:{server}/redirect?to=http://localhost:{server}/secret", **options
    )
    assert "403" in error
    assert Handler.seen[0]["headers"].get("Authorization") == "Bearer s3cr3t-token"
    assert "Authorization" not in Handler.seen[1]["headers"]


def test_safe_url_hides_userinfo_and_secret_values():
    shown = credentials.safe_url("https://u:pw@h.example/x.csv?token=abc&page=2")
    assert shown == "https://h.example/x.csv?token=%2A%2A%2A&page=2"


def test_a_sql_source_error_never_shows_the_database_password(wh, db, settings):
    settings.ATLAS_SOURCE_DATABASES = {
        "down": "postgresql://reader:hunter2-db-pw@127.0.0.1:9/shop",
        "bad": "postgresql://reader:hunter2-db-pw@127.0.0.1:notaport/shop",
    }
    for name in ("down", "bad"):
        source = Source(name="s", kind="sql", database=name, query="SELECT 1 AS x")
        with pytest.raises(IngestError) as info, source_files(source):
            pass
        assert "hunter2-db-pw" not in str(info.value)


def test_the_api_refuses_a_url_with_credentials_and_a_path_outside_the_roots(
    db, settings, tmp_path
):
    from atlas.api.testing import assert_error, token_client, user_with_role

    settings.ATLAS_DATA_ROOTS = [tmp_path / "data"]
    api = token_client(user_with_role("Operator", "ops"))
    resp = api.post(
        "/api/v1/sources/",
        {"name": "web", "kind": "url", "location": "https://u:hunter2@h.example/x.csv"},
    )
    error = assert_error(resp, 409, "conflict")
    assert (
        "env:ATLAS_SOURCE_SECRET_" in str(error["detail"]["location"])
        and "hunter2" not in resp.content.decode()
    )
    resp = api.post("/api/v1/sources/", {"name": "f", "location": "/etc/passwd"})
    assert "ATLAS_DATA_ROOTS" in str(assert_error(resp, 409, "conflict")["detail"]["location"])
    options = {"headers": {"Authorization": "env:ATLAS_SOURCE_SECRET_TOKEN"}}
    resp = api.post(
        "/api/v1/sources/",
        {"name": "ok", "kind": "url", "location": "https://h.example/x.csv", "options": options},
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["options"] == options
    assert Source.objects.get().name == "ok"


@pytest.fixture
def https_server(tmp_path):
    """An https server on 127.0.0.1 whose certificate names data.example.test (self-signed)."""
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=data.example.test", "-addext", "subjectAltName=DNS:data.example.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], cert
    httpd.shutdown()
    httpd.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_url_host(
    db, https_server, settings, monkeypatch
):
    port, cert = https_server
    settings.ATLAS_URL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host in ("data.example.test", "other.example.test"):
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    # Public CAs (the default) do not know this certificate.
    assert "SSLError" in fetch_error(f"https://data.example.test:{port}/d.csv")
    settings.ATLAS_URL_CA_BUNDLE = str(cert)
    assert fetched(f"https://data.example.test:{port}/d.csv") == CSV
    # The certificate is checked against the URL's host, not the address connected to.
    assert "SSLError" in fetch_error(f"https://other.example.test:{port}/d.csv")
    # An https URL may not be redirected to plain http.
    target = f"http://data.example.test:{port}/d.csv"
    assert "plain http" in fetch_error(f"https://data.example.test:{port}/redirect?to={target}")
