"""Test setup shared by every app.

The suite runs twice (``make test``): on the embedded default (SQLite +
DuckDB) and, with ``ATLAS_TEST_ENGINE=postgres``, on PostgreSQL for both the
metadata and the warehouse. Where PostgreSQL or Redis is missing, the tests
that need them skip with the reason; with ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import socket

import pytest

ENGINE = os.environ.get("ATLAS_TEST_ENGINE", "embedded")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def service_or_skip(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI) when a service the test needs is down."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run these tests (.ci/run starts it).")
    pytest.skip(f"{message}; start it to run this test.")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "postgres" in item.keywords and ENGINE != "postgres":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL-only test; runs in the ATLAS_TEST_ENGINE=postgres pass"))
    if ENGINE == "postgres" and not _reachable("127.0.0.1", 5432):
        if IN_CI:
            raise pytest.UsageError("ATLAS_TEST_ENGINE=postgres but PostgreSQL is not reachable on 127.0.0.1:5432.")
        skip = pytest.mark.skip(reason="PostgreSQL is not reachable on 127.0.0.1:5432: the PostgreSQL pass is skipped")
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _warehouse(request, settings, tmp_path):
    """A fresh, empty warehouse for every test that touches the database."""
    from atlas.warehouse import reset_warehouses

    uses_db = any(m in request.fixturenames for m in ("db", "transactional_db", "django_db_setup")) or (
        request.node.get_closest_marker("django_db") is not None
    )
    if not uses_db:
        yield None
        return
    settings.VAR_DIR = tmp_path / "var"
    settings.ATLAS_DEMO_DIR = tmp_path / "var" / "demo"
    reset_warehouses()
    if ENGINE == "postgres":
        request.getfixturevalue("django_db_setup")
        settings.WAREHOUSE_URL = ""
        from atlas.warehouse import get_warehouse

        wh = get_warehouse()
        with wh.cursor() as cur:
            for schema in ("explore", "chart", "navigate", "atlas"):
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        settings.WAREHOUSE_URL = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    from atlas.warehouse import get_warehouse

    yield get_warehouse()
    reset_warehouses()


@pytest.fixture
def wh(_warehouse, db):
    """The test's warehouse backend, schemas created."""
    from atlas.warehouse import get_warehouse

    warehouse = get_warehouse()
    warehouse.ensure_schemas()
    return warehouse


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Chromium:
    """Debian's Chromium, headless, driven by Playwright; ``login`` opens a logged-in admin page."""

    def __init__(self, browser, url: str):
        self.browser = browser
        self.url = url

    def login(self, username: str, password: str, **context_options):
        page = self.browser.new_context(**context_options).new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{self.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{self.url}/admin/")
        return page


@pytest.fixture
def chromium(live_server, monkeypatch):
    """A real headless browser on the live server (nothing downloads a browser: .ci/run installs Debian's)."""
    import shutil

    from django.db import connections

    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield Chromium(browser, live_server.url)
        browser.close()
        # ORM calls made inside Playwright's loop use connections of that context: close them here.
        connections.close_all()


@pytest.fixture
def browser_page(chromium):
    """``(page, base_url)``: a superuser's admin, downloads accepted."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    return chromium.login("operator", "s3cret-pass", accept_downloads=True), chromium.url


@pytest.fixture(autouse=True)
def _sources_confined_data_roots_include_tmp_path(settings, tmp_path):
    """Sources confined (issue 12): tests write their files under tmp_path, so it is a data root too.

    Additive: the configured ATLAS_DATA_ROOTS stay, tmp_path is appended. A test that checks the
    confinement itself sets ATLAS_DATA_ROOTS outright.
    """
    settings.ATLAS_DATA_ROOTS = [*settings.ATLAS_DATA_ROOTS, tmp_path]
