"""The demo is defined by a project directory (demo/project/): load_demo applies it like any user's project."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from atlas.definitions import plan as plans
from atlas.definitions import project
from demo.install import PIPELINE, PROJECT_DIR
from pipelines.models import Dataset, Pipeline, Source


def test_the_project_holds_definitions_only_never_data():
    files = sorted(p.relative_to(PROJECT_DIR).as_posix() for p in PROJECT_DIR.rglob("*") if p.is_file())
    assert files and all(name.endswith((".yml", ".sql")) for name in files)
    assert f"pipelines/{PIPELINE}.yml" in files


@pytest.fixture
def default_roots(settings, tmp_path):
    """The data roots as configured by default: a data directory, then the demo's."""
    settings.ATLAS_DATA_ROOTS = [str(tmp_path / "data"), str(settings.ATLAS_DEMO_DIR)]


def test_load_demo_applies_the_project_and_a_plan_then_has_nothing_to_do(db, default_roots, capsys):
    call_command("load_demo", "--rows", "50")
    assert "applied" in capsys.readouterr().out
    call_command("atlas", "plan", str(PROJECT_DIR))
    assert capsys.readouterr().out.strip() == "No changes: the database holds what the project defines."
    demo_dir = settings.ATLAS_DEMO_DIR.resolve()
    locations = [s.location for s in Source.objects.all()]
    assert locations and all(loc.startswith(str(demo_dir)) for loc in locations)  # where the files were written
    assert Pipeline.objects.get(name=PIPELINE).steps.count() == len(project.read(PROJECT_DIR)["steps"])


def test_load_demo_again_keeps_other_definitions_and_sets_the_demos_back(db, default_roots):
    call_command("load_demo", "--rows", "50")
    Dataset.objects.create(name="mine", layer="chart", table="mine")
    Pipeline.objects.filter(name=PIPELINE).update(description="edited in the admin")
    call_command("load_demo", "--rows", "50")
    assert Dataset.objects.filter(name="mine").exists()  # not the demo's: left alone
    assert Pipeline.objects.get(name=PIPELINE).description != "edited in the admin"
    assert plans.make_plan(project.read(PROJECT_DIR), prune=False).changes == []


def test_a_demo_dir_outside_the_data_roots_is_refused_with_nothing_applied(db, settings, tmp_path):
    settings.ATLAS_DEMO_DIR = tmp_path / "demo"
    settings.ATLAS_DATA_ROOTS = [str(tmp_path / "data")]
    with pytest.raises(CommandError, match="cannot be applied: .*outside the data roots"):
        call_command("load_demo", "--rows", "20")
    assert not Pipeline.objects.exists() and not Source.objects.exists()
