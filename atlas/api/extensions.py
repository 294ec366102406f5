"""What each app's ``api/urls.py`` contributes to the one API, found the way the admin finds ``admin.py``.

An app's ``api/urls.py`` may expose:

* ``routes``: ``[(prefix, viewset, basename), ...]`` registered under ``/api/v1/``;
* ``dataset_fields``: ``{name: field factory}`` — read-only serializer fields
  (``source="*"``, given the dataset) added to every dataset the API shows,
  so ``quality`` adds the latest check status and ``compliance`` the PII
  summary without ``pipelines`` importing either (dependencies point one way).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any

from django.apps import apps
from django.conf import settings


@lru_cache(maxsize=1)
def app_api_modules() -> tuple[ModuleType, ...]:
    """``<app>.api.urls`` of Atlas's own apps, in INSTALLED_APPS order (third-party apps are not searched)."""
    found = []
    base = Path(settings.BASE_DIR).resolve()
    for config in apps.get_app_configs():
        if config.name == "atlas" or not Path(config.path).resolve().is_relative_to(base):
            continue
        package = find_spec(f"{config.name}.api")
        if package is None or package.submodule_search_locations is None:
            continue
        if find_spec(f"{config.name}.api.urls") is None:
            continue
        found.append(import_module(f"{config.name}.api.urls"))
    return tuple(found)


def app_routes() -> list[tuple[str, type, str]]:
    return [route for module in app_api_modules() for route in getattr(module, "routes", [])]


def dataset_fields() -> dict[str, Callable[[], Any]]:
    """Extra read-only fields of a dataset, by name, from every app that adds some."""
    fields: dict[str, Callable[[], Any]] = {}
    for module in app_api_modules():
        fields.update(getattr(module, "dataset_fields", {}))
    return fields
