"""The one extension point: what apps declare in their AppConfig, and how it is read."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from atlas import extensions
from atlas.extensions import Registry


class First:
    order = 100


class Second:
    order = 100


class Early:
    order = 10


def masker(user, dataset, columns, rows):
    return [["*"] * len(r) for r in rows]


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ImproperlyConfigured, match=r"unknown kind\(s\) step_hookz; known: step_hooks"):
        Registry().add("app", {"step_hookz": []})


def test_an_app_declaring_twice_is_refused():
    reg = Registry()
    reg.add("app", {"metric_sources": [masker]})
    with pytest.raises(ImproperlyConfigured, match="declares its contributions twice"):
        reg.add("app", {"step_hooks": [First]})


def test_the_same_item_twice_is_refused():
    with pytest.raises(ImproperlyConfigured, match="the same step_hooks item twice"):
        Registry().add("app", {"step_hooks": [First, First]})


def test_a_kind_needs_a_list():
    with pytest.raises(ImproperlyConfigured, match="must be a list"):
        Registry().add("app", {"step_hooks": "atlas.tests.test_extensions.First"})


def test_only_one_app_may_contribute_the_row_masker():
    reg = Registry()
    reg.add("compliance", {"row_masker": [masker]})
    with pytest.raises(ImproperlyConfigured, match="both contribute the row_masker"):
        reg.add("other", {"row_masker": ["atlas.tests.test_extensions.masker"]})
    with pytest.raises(ImproperlyConfigured, match="takes one item"):
        Registry().add("x", {"row_masker": [masker, First]})


def test_items_come_in_app_order_then_listed_order_with_dotted_paths_resolved():
    reg = Registry()
    reg.add("a", {"metric_sources": ["atlas.tests.test_extensions.masker", First]})
    reg.add("b", {"metric_sources": [Second]})
    assert reg.items("metric_sources") == [("a", masker), ("a", First), ("b", Second)]
    assert reg.items("metric_sources") == reg.items("metric_sources")  # stable


def test_a_dotted_path_may_name_a_list_of_items():
    reg = Registry()
    reg.add("a", {"api_routes": ["atlas.tests.test_extensions.ROUTES"]})
    assert [item for _app, item in reg.items("api_routes")] == ROUTES


ROUTES = [("things", object, "thing"), ("others", object, "other")]


def test_two_apps_giving_an_api_field_the_same_name_is_refused():
    reg = Registry()
    reg.add("a", {"api_dataset_fields": [("quality", masker)]})
    reg.add("b", {"api_dataset_fields": [("quality", masker)]})
    with pytest.raises(ImproperlyConfigured, match="named quality"):
        reg.items("api_dataset_fields")


def test_reading_an_unknown_kind_is_an_error():
    with pytest.raises(KeyError, match="Unknown contribution kind"):
        Registry().items("alerts!")
    with pytest.raises(KeyError, match="not a single-item kind"):
        extensions.one("step_hooks")


def test_step_hooks_run_by_their_order_then_app_order():
    with extensions.added("zz_test", {"step_hooks": [Second, Early, First]}):
        ordered = [cls for cls in extensions.step_hooks() if cls in (First, Second, Early)]
        assert ordered == [Early, Second, First]
    assert not {First, Second, Early} & set(extensions.step_hooks())  # gone after the block


def test_the_installed_apps_contribute_their_hooks_in_the_documented_order():
    names = [extensions.dotted(cls) for cls in extensions.step_hooks()]
    assert names == [
        "compliance.hooks.PiiHook", "privacy.hooks.TombstoneGuard", "quality.hooks.QualityGate",
        "alerts.hooks.AlertHook", "lineage.hooks.LineageHook",
    ]
    assert extensions.dotted(extensions.one("row_masker")) == "compliance.masking.mask_rows"


def test_the_step_hooks_setting_overrides_the_registry(settings):
    from pipelines import hooks

    settings.ATLAS_STEP_HOOKS = None
    assert hooks.hook_paths()[0] == "compliance.hooks.PiiHook"
    settings.ATLAS_STEP_HOOKS = ["lineage.hooks.LineageHook", "quality.hooks.QualityGate"]
    assert hooks.hook_paths() == ["lineage.hooks.LineageHook", "quality.hooks.QualityGate"]
    settings.ATLAS_STEP_HOOKS = []
    assert hooks.hook_paths() == []


def test_without_a_masker_rows_are_shown_as_they_are(monkeypatch):
    monkeypatch.setattr(extensions, "one", lambda kind: None)
    assert extensions.mask_rows(None, None, ["a"], [("x",)]) == [["x"]]
