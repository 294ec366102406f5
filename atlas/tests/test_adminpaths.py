"""``atlas.adminpaths.change_path`` is ``reverse()`` of the admin's change page, without the URLconf."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse, set_script_prefix

from atlas.adminpaths import change_path
from compliance.models import PiiFinding
from pipelines.models import PipelineRun
from privacy.models import DataSubjectRequest
from quality.models import CheckRun


def _registered_with_integer_keys():
    models = [m for m in admin.site._registry if m._meta.pk.get_internal_type() in (
        "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "PositiveIntegerField")]
    assert len(models) > 20
    return models


def test_every_registered_models_change_page_is_reversed_alike():
    for model in _registered_with_integer_keys():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}_change"
        for pk in (1, 42, 987654321):
            assert change_path(model, pk) == reverse(name, args=[pk]), model


def test_the_alerts_models_and_an_instance():
    for model in (CheckRun, PipelineRun, PiiFinding, DataSubjectRequest):
        assert model in admin.site._registry
    run = PipelineRun(pk=7)
    assert change_path(run, 7) == reverse("admin:pipelines_pipelinerun_change", args=[7]) == "/admin/pipelines/pipelinerun/7/change/"


def test_under_a_script_prefix():
    set_script_prefix("/atlas/")
    try:
        assert change_path(CheckRun, 3) == reverse("admin:quality_checkrun_change", args=[3]) == "/atlas/admin/quality/checkrun/3/change/"
    finally:
        set_script_prefix("/")


def test_only_integer_keys():
    for pk in ("3", None, True, 1.5):
        with pytest.raises(TypeError):
            change_path(CheckRun, pk)
