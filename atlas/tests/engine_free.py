"""Tests that cannot depend on the engine run once, in the embedded pass (issue 21: CI time).

``make test`` runs the suite on the embedded default and again on PostgreSQL. A test of a
parser, a template or a file format does the same thing in both passes, so the PostgreSQL pass
(``ATLAS_TEST_ENGINE_BOUND_ONLY=1``, set by ``make test-postgres``) leaves it out ("deselected").
Run alone, ``ATLAS_TEST_ENGINE=postgres pytest ...`` still runs every test.

A test is **engine-free** only when everything it could reach the engine through is known
not to, all three of (an allowlist each; anything else keeps the test in both passes):

1. its fixtures, the whole closure, are in :data:`ENGINE_FREE_FIXTURES` (pytest's own, pytest-django's
   that give no database, the suite's autouse ones). ``db``, ``transactional_db``,
   ``live_server``, ``wh``, ``client`` and every app fixture are not, so any test that can
   query the metadata or the warehouse is engine-bound;
2. its markers are in :data:`ENGINE_FREE_MARKERS` (no ``django_db``, ``postgres``, ``redis``,
   ``skipif`` or ``xfail``, whose condition may be the engine);
3. its module's source names none of :data:`ENGINE_WORDS`: the pass's engine (``ENGINE``),
   the settings and variables that differ between the passes (``DATABASE*``, ``WAREHOUSE*``),
   the connections and drivers, and the doors by which a test reaches them without a fixture:
   subprocesses (they inherit ``DATABASE_URL``), ``os.environ``, ``call_command``, ``manage.py``.
   Where the module names them for its other tests, ``@pytest.mark.engine_free`` on a test (or
   ``pytestmark`` on the module) says that someone read it and what it calls, and found that
   the words concern only the tests that use a database: it waives this condition only,
   never 1 or 2.

Outside a test, only ``pipelines`` (sources, credentials, models, heartbeat), ``atlas.health``,
``atlas.background``, ``atlas.audit_anchor`` and ``atlas/warehouse`` read the engine's settings;
a test that calls them without a database fixture names them (``warehouse``), or touches them
through a fixture (1). And in every pass an engine-free test runs with ``WAREHOUSE_URL`` set to
:data:`TRIPWIRE_URL`: a test that reaches the warehouse through code it does not name fails in
the embedded pass, where it runs. ``atlas/tests/test_engine_free.py`` pins the rule.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

BOUND_ONLY_VARIABLE = "ATLAS_TEST_ENGINE_BOUND_ONLY"
# What an engine-free test finds as WAREHOUSE_URL in every pass: reaching the warehouse fails loudly.
TRIPWIRE_URL = "engine-free-test://a-test-judged-engine-free-reached-the-warehouse/see-atlas/tests/engine_free.py"

ENGINE_FREE_FIXTURES = frozenset({
    # pytest's own
    "request", "tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory", "monkeypatch", "capsys",
    "capsysbinary", "capfd", "capfdbinary", "caplog", "recwarn", "pytestconfig", "record_property",
    # pytest-django's autouse ones (database access stays blocked without ``db``), its settings and RequestFactory
    "django_test_environment", "django_db_blocker", "_django_db_marker", "_django_setup_unittest",
    "_dj_autoclear_mailbox", "_django_set_urlconf", "_django_isolate_apps", "_fail_for_invalid_template_variable",
    "_template_string_if_invalid_marker", "_django_clear_site_cache", "_live_server_helper", "settings", "rf",
    "_session_faker",  # Faker's plugin (model-bakery)
    # the suite's autouse fixtures (atlas/tests/plugin.py): ``_warehouse`` yields None and sets nothing
    # for a test without a database fixture
    "_step_hooks", "_up_to_date", "_warehouse", "_data_generation_moves", "_lineage_events_kept",
    "_sources_confined_data_roots_include_tmp_path", "_engine_free_tripwire",
})
ENGINE_FREE_MARKERS = frozenset({
    "parametrize", "slow", "filterwarnings", "step_hooks", "up_to_date", "usefixtures", "engine_free",
})
ENGINE_WORDS = (
    "ENGINE", "DATABASE", "WAREHOUSE", "warehouse", "connection", "psycopg", "duckdb", "sqlite", "postgres",
    "Postgre", "spark", "subprocess", "Popen", "environ", "getenv", "sys.executable", "call_command", "manage.py",
    "execute_from_command_line",
)


def fixtures_of(item) -> list[str]:
    """The test's fixtures (its whole closure), without the arguments ``parametrize`` gives directly."""
    info = getattr(item, "_fixtureinfo", None)
    names = []
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info is not None else None
        if defs and getattr(defs[-1].func, "__name__", "") == "get_direct_param_fixture_func":
            continue  # a value from @pytest.mark.parametrize, not a fixture
        names.append(name)
    return names


@cache
def engine_words_in(path: str) -> tuple[str, ...]:
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError:
        return ("(source unreadable)",)
    return tuple(word for word in ENGINE_WORDS if word in source)


def engine_bound(item) -> str:
    """Why the test may depend on the engine (so it runs in every pass), or ``""`` when it cannot."""
    fixtures = [name for name in fixtures_of(item) if name not in ENGINE_FREE_FIXTURES]
    if fixtures:
        return f"fixture {fixtures[0]}"
    markers = sorted({mark.name for mark in item.iter_markers()} - ENGINE_FREE_MARKERS)
    if markers:
        return f"marker {markers[0]}"
    words = engine_words_in(str(item.path))
    if words and item.get_closest_marker("engine_free") is None:
        return f"its module names {words[0]!r}"
    return ""


@pytest.fixture(autouse=True)
def _engine_free_tripwire(request):
    """An engine-free test that reaches the warehouse all the same fails (Unsupported WAREHOUSE_URL) in every pass."""
    if engine_bound(request.node) == "":
        request.getfixturevalue("settings").WAREHOUSE_URL = TRIPWIRE_URL


def bound_only() -> bool:
    return os.environ.get(BOUND_ONLY_VARIABLE, "").lower() in ("1", "true", "yes")


def browser_once(item) -> bool:
    """A browser test runs once, in the embedded pass (the demo's engine), unless it is about PostgreSQL.

    It drives the pages' HTML and scripts in Chromium, which do not change with the engine; what the
    pages read from each engine is tested in both passes through Django's test client (the admin,
    console, data browser and editor tests). In the PostgreSQL pass the browser tests took about 60
    CPU s and 190 s of one xdist worker (they share one worker and one Chromium).
    """
    markers = {marker.name for marker in item.iter_markers()}
    return "chromium" in getattr(item, "fixturenames", ()) and not markers & {"postgres", "once_on_postgres"}


def pytest_collection_modifyitems(config, items) -> None:
    """In the PostgreSQL pass of ``make test``, leave out the engine-free tests and the browser tests (the embedded pass ran them)."""
    if not bound_only():
        return
    from atlas.tests.plugin import ENGINE

    if ENGINE == "embedded":
        raise pytest.UsageError(f"{BOUND_ONLY_VARIABLE} leaves tests out of a pass other than the embedded one it ran in")
    keep, free = [], []
    for item in items:
        (keep if engine_bound(item) and not browser_once(item) else free).append(item)
    if free:
        config.hook.pytest_deselected(items=free)
        items[:] = keep
