"""The suite's shared fixtures, as one pytest plugin (the root ``conftest.py`` registers it).

What every app's tests use lives here once: the engine switch and the service guards, a fresh
warehouse per test, the step hooks (off unless a test asks for them), the pipeline factories,
one headless Chromium for the browser tests and a data root per test. An app's own
``tests/conftest.py`` keeps only what is that app's.

**Step hooks are off in tests.** ``settings.ATLAS_STEP_HOOKS`` is ``[]`` for every test, so a
pipeline run does only the runner's own work. A test about hooks says which it needs::

    @pytest.mark.step_hooks                      # the project's default hooks, as ``make demo`` runs
    @pytest.mark.step_hooks("quality.hooks.QualityGate")   # exactly these, in this order

(or sets ``settings.ATLAS_STEP_HOOKS`` itself).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from atlas.tests.passes import IN_CI, POSTGRES_PASS_FOLLOWS  # once_on_postgres: see there
from atlas.tests.passes import reachable as _reachable

ENGINE = os.environ.get("ATLAS_TEST_ENGINE", "embedded")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Tests that use the browser run one after another on one xdist worker (``--dist loadgroup``),
# so that worker launches Chromium once for all of them.
BROWSER_GROUP = "chromium"
_UNSET = object()


# ---------------------------------------------------------------------------------------------
# services


def service_or_skip(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI) when a service the test needs is down."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run these tests (.ci/run starts it).")
    pytest.skip(f"{message}; start it to run this test.")


def pytest_configure(config) -> None:
    _fast_password_hashing()


# ---------------------------------------------------------------------------------------------
# passwords


def _fast_password_hashing() -> None:
    """Passwords hashed with PBKDF2-SHA256 as in production, with few iterations.

    Production's 1,000,000 iterations cost most of a second per hash on a loaded machine, paid by
    every user a test creates and every password login (HTTP basic: every request). The algorithm
    and the stored format stay the production ones (``pbkdf2_sha256$<iterations>$salt$hash``).
    Processes a test starts (workers, ``manage.py``) keep the production hasher.
    """
    from django.conf import settings
    from django.contrib.auth.hashers import get_hashers, get_hashers_by_algorithm

    settings.PASSWORD_HASHERS = ["atlas.tests.plugin.FewIterationsPBKDF2PasswordHasher"]
    get_hashers.cache_clear()
    get_hashers_by_algorithm.cache_clear()


class FewIterationsPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 hasher (same algorithm name and format) with 1,000 iterations: tests only."""

    iterations = 1_000


def _uses_browser(item) -> bool:
    return "chromium" in getattr(item, "fixturenames", ())


def pytest_collection_finish(session) -> None:  # noqa: ARG001
    """Python's cyclic garbage collector spends less on what lives for the whole session.

    After collection a worker holds Django, the apps, sqlglot, Presidio and every test module: a
    large heap that each full collection walked again, about 4 % of a worker's CPU. ``gc.freeze``
    leaves those objects out of every later collection, and a larger first generation (7,000
    allocations instead of 700) collects less often; what a test leaves in a cycle is still
    collected, a little later. Measured on five files of the suite (2 CPUs, 2026-12-05): 2.35 CPU s
    of collection in 57.7, 1.52 in 56.4. Tests only: the processes they start keep Python's defaults.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(7_000, 10, 10)


@pytest.hookimpl(tryfirst=True)  # before pytest-django's (also tryfirst, registered earlier), whose stable
def pytest_collection_modifyitems(config, items) -> None:  # sort then puts db, transactional, no-db tests in turn
    once_there = ENGINE == "embedded" and os.environ.get(POSTGRES_PASS_FOLLOWS) == "1"
    for item in items:
        if "postgres" in item.keywords and ENGINE != "postgres":
            item.add_marker(pytest.mark.skip(reason="PostgreSQL-only test; runs in the ATLAS_TEST_ENGINE=postgres pass"))
        elif once_there and "once_on_postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="runs once, in this make test's PostgreSQL pass (once_on_postgres)"))
    if ENGINE == "postgres" and not _reachable("127.0.0.1", 5432):
        if IN_CI:
            raise pytest.UsageError("ATLAS_TEST_ENGINE=postgres but PostgreSQL is not reachable on 127.0.0.1:5432.")
        skip = pytest.mark.skip(reason="PostgreSQL is not reachable on 127.0.0.1:5432: the PostgreSQL pass is skipped")
        for item in items:
            item.add_marker(skip)
    # Within each of pytest-django's groups: the browser tests side by side (one Chromium launch for all
    # of them, see ``_Browser``), then the slow tests, then the rest in their order - under xdist the long
    # ones start early on different workers instead of one of them ending the pass alone. Stable, so every
    # worker collects the same order.
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.xdist_group(BROWSER_GROUP))
    items[:] = sorted(items, key=run_order)


def run_order(item) -> tuple[bool, bool]:
    """Browser tests first, then the slow ones, then the rest (a stable sort keeps each group's order)."""
    return (not _uses_browser(item), "slow" not in item.keywords)


# ---------------------------------------------------------------------------------------------
# step hooks


def hooks_for(marker) -> list[str] | None:
    """The step hooks a test runs with: none unmarked, the named ones, or ``None`` for the project's default."""
    if marker is None:
        return []
    if not marker.args:
        return None
    for path in marker.args:
        if not isinstance(path, str) or "." not in path:
            raise pytest.UsageError(f"step_hooks takes dotted paths to hook classes, not {path!r}")
    return list(marker.args)


@pytest.fixture(autouse=True)
def _step_hooks(request):
    """No step hooks unless the test is marked ``step_hooks`` (see the module's docstring)."""
    paths = hooks_for(request.node.get_closest_marker("step_hooks"))
    if paths is not None:
        request.getfixturevalue("settings").ATLAS_STEP_HOOKS = paths


@pytest.fixture(autouse=True)
def _up_to_date(request):
    """Every step of every run executes unless the test is marked ``up_to_date`` (pipelines.freshness):
    tests re-run pipelines to see what a second execution does; skipping is tested where it is marked."""
    if request.node.get_closest_marker("up_to_date") is None:
        request.getfixturevalue("settings").ATLAS_SKIP_UP_TO_DATE = False


# ---------------------------------------------------------------------------------------------
# warehouse


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


@pytest.fixture(autouse=True)
def _data_generation_moves():
    """A test's rolled-back transaction is a change the API page cache and /metrics cannot see
    (atlas.api.pagecache counts statements, not rollbacks): each test starts a new generation."""
    from atlas.api import pagecache

    pagecache.bump()


@pytest.fixture(autouse=True)
def _lineage_events_kept(settings):
    """Tests read the events Atlas emits without an endpoint; lineage/tests/test_housekeeping.py checks the default."""
    settings.OPENLINEAGE_KEEP_WITHOUT_ENDPOINT = True


@pytest.fixture(autouse=True)
def _sources_confined_data_roots_include_tmp_path(settings, tmp_path):
    """Sources confined (issue 12): tests write their files under tmp_path, so it is a data root too.

    Additive: the configured ATLAS_DATA_ROOTS stay, tmp_path is appended. A test that checks the
    confinement itself sets ATLAS_DATA_ROOTS outright.
    """
    settings.ATLAS_DATA_ROOTS = [*settings.ATLAS_DATA_ROOTS, tmp_path]


# ---------------------------------------------------------------------------------------------
# pipelines: files, factories, a run


@pytest.fixture
def make_csv(tmp_path):
    def make(text: str | bytes, name: str = "data.csv") -> Path:
        path = tmp_path / "files" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return make


@pytest.fixture
def simple_pipeline(db, make_csv):
    """A three-layer pipeline over one small CSV: ingest, refine, aggregate."""
    from pipelines.models import Dataset, Pipeline, Source, Step

    def build(csv_text: str = "id,name,amount\n1, Ann ,10\n2,Bob,20\n3,Cy,5\n", **ingest) -> Pipeline:
        path = make_csv(csv_text)
        source = Source.objects.create(name="people", location=str(path))
        raw = Dataset.objects.create(name="raw_people", layer="explore", table="people")
        clean = Dataset.objects.create(name="people", layer="chart", table="people")
        total = Dataset.objects.create(name="people_total", layer="navigate", table="people_total")
        pipeline = Pipeline.objects.create(name="people")
        Step.objects.create(
            pipeline=pipeline, name="ingest", kind="ingest", source=source, output=raw,
            write_mode=ingest.pop("write_mode", "append"), **ingest,
        )
        Step.objects.create(
            pipeline=pipeline, name="refine", kind="refine", output=clean, position=1,
            sql="SELECT CAST(id AS integer) AS id, trim(name) AS name, CAST(amount AS numeric(12,2)) AS amount"
            " FROM explore.people",
        )
        Step.objects.create(
            pipeline=pipeline, name="total", kind="aggregate", output=total, position=2,
            sql="SELECT count(*) AS people, sum(amount) AS amount FROM chart.people",
        )
        return pipeline

    return build


@pytest.fixture
def ingest_pipeline(db):
    """A pipeline with one ingest step; ``source`` kwargs describe where the data is."""
    from pipelines.models import Dataset, Pipeline, Source, Step

    def build(*, fmt: str = "csv", table: str = "landing", step: dict | None = None, **source) -> Pipeline:
        source.setdefault("kind", Source.Kind.PATH)
        src = Source.objects.create(name=f"src_{table}", format=fmt, **source)
        src.full_clean()
        raw = Dataset.objects.create(name=f"raw_{table}", layer="explore", table=table)
        pipeline = Pipeline.objects.create(name=f"load_{table}")
        Step.objects.create(
            pipeline=pipeline, name="ingest", kind="ingest", source=src, output=raw, **{"write_mode": "append", **(step or {})}
        )
        return pipeline

    return build


def run_now(pipeline, **start):
    """Start and execute a run in this process (``start``: ``runner.start_run``'s options); return it refreshed."""
    from pipelines import runner

    run = runner.start_run(pipeline, dispatch=False, **start)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    return run


def explore_rows(wh, table: str, columns: str = "*") -> list[tuple]:
    with wh.cursor() as cur:
        return cur.execute(f'SELECT {columns} FROM explore."{table}" ORDER BY _row_number').fetchall()


def quarantine_rows(wh, table: str) -> list[tuple]:
    if not wh.table_exists("explore", f"{table}__quarantine"):
        return []
    with wh.cursor() as cur:
        return cur.execute(
            f'SELECT _line_number, _reason, _raw_record FROM explore."{table}__quarantine" ORDER BY _line_number'
        ).fetchall()


# ---------------------------------------------------------------------------------------------
# browser


class Chromium:
    """Debian's Chromium, headless, driven by Playwright; ``login`` opens a logged-in admin page."""

    def __init__(self, browser, url: str):
        self.browser = browser
        self.url = url
        self.contexts: list = []

    def login(self, username: str, password: str, **context_options):
        context = self.browser.new_context(**context_options)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{self.url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_url(f"{self.url}/admin/")
        return page

    def close_contexts(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


class _Browser:
    """One Chromium per worker, launched by the first browser test and closed after the last one in a row.

    Playwright's sync API keeps an event loop running in this thread while it is started, which
    Django's ORM refuses to work under: the browser lives only while browser tests run (they are
    ordered side by side, see ``pytest_collection_modifyitems``), with ``DJANGO_ALLOW_ASYNC_UNSAFE``
    set for exactly that time, and every other test runs without a loop.
    """

    def __init__(self) -> None:
        self.playwright = None
        self.browser = None
        self._async_unsafe = _UNSET

    def get(self):
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            self._async_unsafe = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE", _UNSET)
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self.browser

    def stop(self) -> None:
        if self.playwright is None:
            return
        from django.db import connections

        try:
            if self.browser is not None:
                self.browser.close()
            self.playwright.stop()
        finally:
            self.browser = self.playwright = None
            # ORM calls made inside Playwright's loop use connections of that context: close them here.
            connections.close_all()
            if self._async_unsafe is _UNSET:
                os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
            else:
                os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = self._async_unsafe


_BROWSER = _Browser()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem) -> None:
    """After the test's own teardown: close the browser unless the next test uses it too."""
    if nextitem is None or not _uses_browser(nextitem):
        _BROWSER.stop()


def pytest_sessionfinish(session) -> None:
    _BROWSER.stop()
    # The worker tests' fork server (pipelines/tests/zygote.py), stopped and waited for here, so that the
    # workers it reaped count in this process's children's CPU (xdist's workers end without atexit).
    zygote = sys.modules.get("pipelines.tests.zygote")
    if zygote is not None:
        zygote.stop()


@pytest.fixture
def chromium(live_server):
    """A real headless browser on the live server (nothing downloads a browser: .ci/run installs Debian's).

    The browser is shared by the browser tests in a row; each test gets its own contexts (cookies,
    downloads), closed after it.
    """
    if not shutil.which(CHROMIUM):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("playwright.sync_api")
    browser = Chromium(_BROWSER.get(), live_server.url)
    yield browser
    browser.close_contexts()


@pytest.fixture
def browser_page(chromium):
    """``(page, base_url)``: a superuser's admin, downloads accepted."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("operator", "op@example.com", "s3cret-pass")
    return chromium.login("operator", "s3cret-pass", accept_downloads=True), chromium.url
