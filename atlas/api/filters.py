"""Filter, ordering and paging pieces shared by every app's API: what the schema says is what is accepted.

A query parameter the schema documents is refused (400) when its value breaks the schema, and a
value the schema allows is never refused:

* an id filter (``?pipeline=3``) is an integer from 1 to 2**63-1; an id nothing has answers an
  empty page, not "Select a valid choice" (django-filter's ModelChoiceFilter);
* a boolean is ``true``/``false`` (or ``1``/``0``), anything else is refused, not ignored;
* ``ordering`` names fields the view orders by (``-`` for descending, commas between), listed in
  the schema; an unknown field is refused, not ignored (DRF's OrderingFilter drops it);
* ``page_size`` is an integer from 1 to the view's maximum, documented with its bounds; anything
  else is refused, not replaced by the default (DRF's paginations fall back silently).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import django_filters
from django import forms
from django.db import models
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters as drf_filters
from rest_framework.exceptions import ValidationError

MAX_ID = 2**63 - 1  # PostgreSQL's bigint: a larger id is a database error, not an empty page
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}


RFC3339 = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})[Tt]([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?([Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)


def rfc3339(value: str) -> str:
    """``value`` if it is an RFC 3339 date-time (the schema's ``format: date-time``), for Python to parse; else ValueError.

    ``2026-12-04`` (a date), ``2026-12-04T10:00`` (no offset) or ``20261204T100000Z`` (ISO 8601's basic form)
    are not; a leap second (``:60``) is, read as the last microsecond of its minute (Python has no second 60).
    """
    match = RFC3339.fullmatch(value)
    if match is None or int(match.group(1)) == 0:
        raise ValueError("not an RFC 3339 date-time")
    value = f"{value[:10]}T{value[11:-1]}{value[-1].upper()}"  # Python reads neither a lower-case t nor z
    if match.group(6) == "60":
        value = f"{value[:17]}59.999999{value[match.end(7) if match.group(7) else match.end(6):]}"
    return value


class UTCDateTimeField(IsoDateTimeField):
    """An RFC 3339 time (``2026-12-04T10:00:00Z``, ``...+01:00``), converted to UTC before it reaches the database.

    What the schema calls ``date-time`` and nothing else: django-filter reads any ISO 8601 form
    (a date alone, no offset), which the schema does not allow. PostgreSQL refuses offsets beyond
    ±15:59 (a 500 if passed through); in UTC every valid time is one the database accepts.
    """

    def to_python(self, value: object) -> datetime | None:
        if isinstance(value, str) and value:
            try:
                value = rfc3339(value)
            except ValueError:
                raise forms.ValidationError(
                    "An RFC 3339 date-time with its offset, e.g. 2026-12-04T10:00:00Z or 2026-12-04T11:00:00+01:00.",
                    code="invalid",
                ) from None
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            # Within a day of year 1 or 9999: a valid time the schema allows, past what Python holds in UTC.
            # As a bound it means "before everything" or "after everything", which the extreme does too.
            return datetime.max.replace(tzinfo=UTC) if parsed.year > 1 else datetime.min.replace(tzinfo=UTC)


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


class IdField(forms.IntegerField):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


@extend_schema_field(ID_SCHEMA)
class IdFilter(django_filters.NumberFilter):
    """An object by its id (a foreign key): an id nothing has matches nothing."""

    field_class = IdField


class StrictBooleanField(forms.Field):
    widget = forms.TextInput
    TRUE, FALSE = ("true", "1"), ("false", "0")

    def to_python(self, value: object) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


def _values(data, name: str) -> list:
    return data.getlist(name) if hasattr(data, "getlist") else [data.get(name)]


def _free_text(f: django_filters.Filter) -> bool:
    """A filter whose schema is a plain string (text, where the empty string is a value like any other)."""
    return type(f) is django_filters.CharFilter


def _integer_pk(field: models.Field) -> bool:
    target = field.related_model._meta.pk
    return isinstance(target, models.IntegerField | models.AutoField)


class FilterSet(django_filters.FilterSet):
    """django-filter's FilterSet with Atlas's id and boolean filters for the fields it generates.

    A filter sent empty (``?layer=``, ``?proposed=``, ``?created_before=``) is refused unless it is free
    text: the empty string is not one of the choices, a boolean, an id nor a date-time the schema
    lists (django-filter would read it as "no filter").
    """

    @property
    def form(self):
        form = super().form
        if not getattr(form, "_atlas_strict", False):
            form._atlas_strict = True
            blank = [name for name, f in self.filters.items()
                     if not _free_text(f) and name in (self.data or {}) and all(v == "" for v in _values(self.data, name))]
            clean = form.clean

            def strict_clean():
                cleaned = clean()
                for name in blank:
                    form.add_error(name, "An empty value is none of those this filter takes (see the schema).")
                return cleaned

            form.clean = strict_clean
        return form

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": BooleanFilter},
        models.NullBooleanField: {"filter_class": BooleanFilter},
    }

    @classmethod
    def filter_for_field(cls, field, field_name, lookup_expr=None):
        if (field.is_relation and (field.many_to_one or field.one_to_one) and lookup_expr in (None, "exact")
                and _integer_pk(field)):
            return IdFilter(field_name=field_name, lookup_expr="exact", label=str(field.verbose_name).capitalize())
        return super().filter_for_field(field, field_name, lookup_expr)


class FilterBackend(DjangoFilterBackend):
    """``filterset_fields`` become an Atlas :class:`FilterSet`."""

    filterset_base = FilterSet


class OrderingFilter(drf_filters.OrderingFilter):
    """DRF's ordering, with an unknown field refused (400) and the accepted terms in the schema."""

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params is None:
            return self.get_default_ordering(view)
        fields = [param.strip() for param in params.split(",")]
        valid = {item[0] for item in self.get_valid_fields(queryset, view, {"request": request})}
        unknown = [f for f in fields if f.lstrip("-") not in valid or not f.lstrip("-")]
        if unknown:
            raise ValidationError({self.ordering_param: [
                f"Unknown ordering {', '.join(repr(u) for u in unknown)[:200]}; one or more of"
                f" {', '.join(sorted(valid))} (comma-separated; '-' for descending)."
            ]})
        return fields

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        terms = self._terms(view)
        if terms:
            for parameter in parameters:
                if parameter["name"] == self.ordering_param:
                    parameter["schema"] = {"type": "string", "enum": terms}
        return parameters

    def _terms(self, view) -> list[str]:
        fields = getattr(view, "ordering_fields", None)
        if not fields or fields == "__all__":
            try:
                fields = [name for name, _label in self.get_default_valid_fields(view.get_queryset(), view, {})]
            except Exception:  # noqa: BLE001 — the schema then says "string"; the request is still checked
                return []
        return [term for name in fields for term in (name, f"-{name}")]


def page_size_parameter(name: str, maximum: int) -> dict:
    return {
        "name": name, "required": False, "in": "query",
        "description": f"Number of results to return per page (1 to {maximum}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def strict_page_size(request, name: str | None, maximum: int | None, default: int | None) -> int | None:
    """The page size asked for, within 1..maximum; refused (400) when it is not such an integer."""
    if not name or name not in request.query_params:
        return default
    raw = request.query_params[name]
    try:
        size = int(raw)
    except (TypeError, ValueError):
        size = None
    if size is None or size < 1 or (maximum is not None and size > maximum) or str(raw).strip() != str(raw):
        raise ValidationError({name: [f"A whole number from 1 to {maximum}."]})
    return size
