"""Every edit of a definition, versioned: who, when, what changed, and the whole object as it was.

A definition model (a source, a dataset, a pipeline, a step, a check, a column or retention
policy, a record of processing, an alert rule) declares
``history = DefinitionHistory()``; django-simple-history then keeps a row per save and
delete in a historical table (the admin's "History", with "Revert to this version"). The
user is the one Atlas's audit log records (the request's, or an ``acting_as`` block's:
``manage.py atlas apply`` and other commands). The audit log already records each change
with its fields before and after (``atlas.audit_tracking``), in the tamper-evident chain; a
version adds the whole object to restore. A run records the version of every definition it
executed (``PipelineRun.definitions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from simple_history.models import HistoricalRecords

from .audit_tracking import contextual_actor


class DefinitionHistory(HistoricalRecords):
    """``HistoricalRecords`` with the audit log's user; saves of bookkeeping fields only are no version.

    ``bookkeeping``: fields Atlas itself updates (a dataset's row count after a load), kept out
    of the versions; a save that names only those (``update_fields``) makes none.
    """

    def __init__(self, *args: Any, bookkeeping: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.bookkeeping = frozenset({*bookkeeping, "updated_at"})
        super().__init__(*args, excluded_fields=[*bookkeeping, "updated_at"], **kwargs)

    def post_save(self, instance: Any, created: bool, using: str | None = None, **kwargs: Any) -> None:
        fields = kwargs.get("update_fields")
        if not created and fields and set(fields) <= self.bookkeeping:
            return
        super().post_save(instance, created, using=using, **kwargs)

    def get_history_user(self, instance: Any) -> Any:
        user = getattr(instance, "_history_user", None) or contextual_actor()
        return user if getattr(user, "is_authenticated", False) else None


@cache
def historical_model(model: type) -> type | None:
    """The model's historical model (django-simple-history's), or None; looked up once per model.

    ``model.history`` builds a new manager class on every access (``from_queryset``, an
    ``inspect.getmembers`` of the queryset): a few hundred microseconds a run spent on nothing.
    """
    history = getattr(model, "history", None)
    return getattr(history, "model", None)


def latest_versions(objects: list[Any], *, also: Iterable[tuple[type, Any]] = ()) -> dict[str, int]:
    """``"<model>:<pk>" -> history id`` of each object's current version (the ids a run records).

    ``also``: ``(model, its objects' pks)`` (a queryset of pks: a subquery), versions wanted
    without loading the objects. One query for every model (a UNION ALL; issue 14: a run's fixed cost),
    written out here: the ORM's compiler took longer to build that union than the database to answer it.
    """
    wanted: dict[type, list[Any]] = {}
    for obj in objects:
        wanted.setdefault(type(obj), []).append(obj.pk)
    parts, params, names = [], [], []
    for model, pks in [*wanted.items(), *also]:
        historical = historical_model(model)
        if historical is None:
            continue
        try:
            inner, inner_params = (pks.query.sql_with_params() if isinstance(pks, QuerySet)
                                   else (", ".join(["%s"] * len(pks)), list(pks)))
        except EmptyResultSet:  # a subquery that can match nothing
            continue
        if not inner:
            continue
        quote = connections[historical._default_manager.db].ops.quote_name
        pk, hid = (quote(historical._meta.get_field(f).column) for f in ("id", "history_id"))
        parts.append(f"SELECT {len(names)}, {pk}, MAX({hid}) FROM {quote(historical._meta.db_table)}"
                     f" WHERE {pk} IN ({inner}) GROUP BY {pk}")
        params += inner_params
        names.append(model._meta.model_name)
    if not parts:
        return {}
    with connections[historical._default_manager.db].cursor() as cur:
        cur.execute(" UNION ALL ".join(parts), params)
        rows = cur.fetchall()
    return {f"{names[i]}:{pk}": hid for i, pk, hid in sorted(rows)}
