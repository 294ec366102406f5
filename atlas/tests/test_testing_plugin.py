"""The suite's own plugin (atlas/tests/plugin.py): hooks off unless asked for, cheap passwords, run order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password

from atlas.tests.plugin import hooks_for, run_order


def test_a_test_runs_without_step_hooks_unless_it_asks(settings):
    from pipelines.hooks import hooks

    assert settings.ATLAS_STEP_HOOKS == []
    assert hooks() == ()


@pytest.mark.step_hooks("quality.hooks.QualityGate")
def test_a_marked_test_runs_exactly_the_hooks_it_names(settings):
    assert settings.ATLAS_STEP_HOOKS == ["quality.hooks.QualityGate"]


@pytest.mark.step_hooks
def test_a_test_marked_without_names_runs_the_project_default_hooks():
    from pipelines.hooks import hook_paths

    paths = hook_paths()
    assert "quality.hooks.QualityGate" in paths and paths[-1] == "lineage.hooks.LineageHook"


def test_the_marker_refuses_what_is_not_a_dotted_path():
    assert hooks_for(None) == []
    assert hooks_for(pytest.mark.step_hooks.mark) is None
    assert hooks_for(pytest.mark.step_hooks("a.B", "c.D").mark) == ["a.B", "c.D"]
    with pytest.raises(pytest.UsageError, match="dotted paths"):
        hooks_for(pytest.mark.step_hooks("QualityGate").mark)
    with pytest.raises(pytest.UsageError, match="dotted paths"):
        hooks_for(pytest.mark.step_hooks(["a.B"]).mark)


def test_passwords_keep_the_production_algorithm_and_format_with_few_iterations():
    encoded = make_password("correct horse battery staple")
    algorithm, iterations, _salt, _hash = encoded.split("$")
    assert algorithm == "pbkdf2_sha256" == identify_hasher(encoded).algorithm
    assert int(iterations) < 10_000
    assert check_password("correct horse battery staple", encoded)
    assert not check_password("wrong", encoded)


def test_browser_tests_run_first_then_the_slow_ones_then_the_rest():
    def item(name: str, *, browser: bool = False, slow: bool = False):
        return SimpleNamespace(
            name=name, fixturenames=["chromium"] if browser else ["db"], keywords={"slow": True} if slow else {}
        )

    items = [item("fast"), item("slow", slow=True), item("browser", browser=True), item("fast2"), item("slow2", slow=True)]
    assert [i.name for i in sorted(items, key=run_order)] == ["browser", "slow", "slow2", "fast", "fast2"]
