"""Which tests run once (atlas/tests/engine_free.py): a test that can reach the engine runs in every pass.

The rule decides from a test's fixtures, markers and module; these tests pin each branch, on
synthetic tests and on this module's own collected ones.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from atlas.tests import engine_free
from atlas.tests.engine_free import ENGINE_FREE_FIXTURES, engine_bound

AUTOUSE = sorted(ENGINE_FREE_FIXTURES)


def fake_item(tmp_path, *, fixtures=(), markers=(), source="def test_x():\n    assert 1 + 1 == 2\n"):
    module = tmp_path / "test_fake.py"
    module.write_text(source)
    engine_free.engine_words_in.cache_clear()
    marks = [getattr(pytest.mark, name).mark for name in markers]
    return SimpleNamespace(
        fixturenames=[*AUTOUSE, *fixtures], path=module, _fixtureinfo=None,
        iter_markers=lambda: iter(marks),
        get_closest_marker=lambda name: next((m for m in marks if m.name == name), None),
    )


def test_a_test_of_pure_code_is_engine_free(tmp_path):
    assert engine_bound(fake_item(tmp_path, fixtures=["tmp_path", "settings", "monkeypatch"])) == ""


@pytest.mark.parametrize(
    "fixture", ["db", "transactional_db", "live_server", "django_db_setup", "wh", "spark_wh", "client",
                "admin_client", "django_user_model", "simple_pipeline", "make_csv", "a_fixture_added_tomorrow"],
)
def test_a_test_with_a_database_or_an_unknown_fixture_runs_in_every_pass(tmp_path, fixture):
    assert engine_bound(fake_item(tmp_path, fixtures=[fixture])) == f"fixture {fixture}"


@pytest.mark.parametrize(  # ids that are not marker names: a test's keywords hold its ids
    "marker", ["django_db", "postgres", "redis", "skipif", "skip", "xfail", "xdist_group"], ids=lambda m: f"marked-{m}"
)
def test_a_test_with_a_marker_that_may_name_the_engine_runs_in_every_pass(tmp_path, marker):
    assert engine_bound(fake_item(tmp_path, markers=[marker])) == f"marker {marker}"


@pytest.mark.parametrize(
    "line",
    [
        "if ENGINE == 'postgres': pass",
        "from atlas.tests.plugin import ENGINE",
        "url = settings.DATABASES['default']",
        "url = settings.WAREHOUSE_URL",
        "from atlas.warehouse import get_warehouse",
        "from django.db import connection",
        "import subprocess",
        "env = dict(os.environ)",
        "call_command('check')",
        "import psycopg",
    ],
)
def test_a_module_that_names_the_engine_or_a_way_to_it_keeps_its_tests_in_every_pass(tmp_path, line):
    item = fake_item(tmp_path, source=f"{line}\n\ndef test_x():\n    assert True\n")
    assert engine_bound(item).startswith("its module names")


def test_the_engine_free_marker_waives_only_the_module_words(tmp_path):
    source = "from atlas.warehouse import get_warehouse\n\ndef test_x():\n    assert True\n"
    assert engine_bound(fake_item(tmp_path, markers=["engine_free"], source=source)) == ""
    assert engine_bound(fake_item(tmp_path, markers=["engine_free"], fixtures=["db"], source=source)) == "fixture db"
    assert engine_bound(fake_item(tmp_path, markers=["engine_free", "django_db"], source=source)) == "marker django_db"


def test_this_modules_real_tests_are_judged_from_their_collected_fixtures(request):
    mine = {item.originalname: item for item in request.session.items if item.path == request.node.path}
    assert engine_bound(mine["test_a_test_that_uses_the_database_is_bound"]).startswith("fixture ")
    # the rule reads words, not meaning: this module's strings name the engine, so its tests run in every pass;
    # a parametrize argument (``line``) is not taken for a fixture
    assert engine_bound(mine["test_a_test_of_pure_code_is_engine_free"]) == "its module names 'ENGINE'"
    assert engine_bound(mine["test_a_module_that_names_the_engine_or_a_way_to_it_keeps_its_tests_in_every_pass"]) == (
        "its module names 'ENGINE'"
    )


def test_a_test_that_uses_the_database_is_bound(db):
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.count() == 0


def test_the_postgresql_pass_leaves_out_only_engine_free_tests(tmp_path, monkeypatch):
    free = fake_item(tmp_path)
    bound = SimpleNamespace(**{**vars(free), "fixturenames": [*AUTOUSE, "db"]})
    deselected = []
    config = SimpleNamespace(hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
    monkeypatch.setenv(engine_free.BOUND_ONLY_VARIABLE, "1")
    monkeypatch.setattr("atlas.tests.plugin.ENGINE", "postgres")
    items = [free, bound]
    engine_free.pytest_collection_modifyitems(config, items)
    assert items == [bound] and deselected == [free]


def test_the_postgresql_pass_leaves_out_the_browser_tests_except_those_about_postgresql(tmp_path, monkeypatch):
    ui = fake_item(tmp_path, fixtures=["chromium", "db"])
    about_postgres = fake_item(tmp_path, fixtures=["chromium", "db"], markers=["postgres"])
    once_there = fake_item(tmp_path, fixtures=["chromium", "db"], markers=["once_on_postgres"])
    bound = fake_item(tmp_path, fixtures=["db"])
    deselected = []
    config = SimpleNamespace(hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
    monkeypatch.setenv(engine_free.BOUND_ONLY_VARIABLE, "1")
    monkeypatch.setattr("atlas.tests.plugin.ENGINE", "postgres")
    items = [ui, about_postgres, once_there, bound]
    engine_free.pytest_collection_modifyitems(config, items)
    assert items == [about_postgres, once_there, bound] and deselected == [ui]


def test_the_embedded_pass_never_leaves_a_test_out(tmp_path, monkeypatch):
    config = SimpleNamespace(hook=SimpleNamespace(pytest_deselected=lambda items: pytest.fail("deselected")))
    items = [fake_item(tmp_path)]
    monkeypatch.delenv(engine_free.BOUND_ONLY_VARIABLE, raising=False)
    engine_free.pytest_collection_modifyitems(config, items)
    assert len(items) == 1
    monkeypatch.setenv(engine_free.BOUND_ONLY_VARIABLE, "1")
    monkeypatch.setattr("atlas.tests.plugin.ENGINE", "embedded")
    with pytest.raises(pytest.UsageError, match="embedded"):
        engine_free.pytest_collection_modifyitems(config, items)
