"""What the apps contribute to the one API, read from the extension point (:mod:`atlas.extensions`).

An app names, in its ``AppConfig.contributes``:

* ``api_routes``: ``(prefix, viewset, basename)`` items (or a dotted path to a list
  of them), registered under ``/api/v1/``;
* ``api_dataset_fields``: ``(name, field factory)`` items — read-only serializer
  fields (``source="*"``, given the dataset) added to every dataset the API shows,
  so ``quality`` adds the latest check status and ``compliance`` the PII summary
  without ``pipelines`` importing either (dependencies point one way). A field
  with a ``prepare_many(datasets)`` method is given each page of a list first, to
  read what it shows for all of them at once (a constant number of queries per page).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from atlas import extensions


def app_routes() -> list[tuple[str, type, str]]:
    return [tuple(route) for route in extensions.contributions("api_routes")]


def dataset_fields() -> dict[str, Callable[[], Any]]:
    """Extra read-only fields of a dataset, by name, from every app that adds some."""
    return dict(extensions.contributions("api_dataset_fields"))
