"""Paths of the admin's change pages, without loading the URLconf.

An alert event carries the admin path of what it is about (a run, a check run, a finding). Asking
``reverse("admin:<app>_<model>_change", args=[pk])`` for it loads the whole URLconf on a process's
first call: the API's views, DRF, drf-spectacular, and every app's admin module (discovered on first
use, ``atlas.admin_site``) — about 0.7 CPU s at the end of a command's first run (issue 20: the
demo's first run). The admin's change pages are ``<admin route><app label>/<model name>/<pk>/change/``
(``ModelAdmin.get_urls``; Atlas's admins add pages beside them, none replaces it), so the path is
written here; ``atlas/tests/test_adminpaths.py`` compares it with ``reverse()`` for every model the
admin registers.
"""

from __future__ import annotations

from django.db.models import Model
from django.urls import get_script_prefix

ADMIN_ROUTE = "admin/"  # atlas/urls.py mounts the admin site here


def change_path(model: type[Model] | Model, pk: int) -> str:
    """``reverse("admin:<app>_<model>_change", args=[pk])`` of a model the admin registers (an integer key)."""
    if not isinstance(pk, int) or isinstance(pk, bool):
        raise TypeError("change_path takes an integer primary key.")
    meta = model._meta
    return f"{get_script_prefix()}{ADMIN_ROUTE}{meta.app_label}/{meta.model_name}/{pk}/change/"
