"""Filter pieces shared by every app's API."""

from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, converted to UTC before it reaches the database.

    PostgreSQL refuses offsets beyond ±15:59 (a 500 if passed through);
    in UTC every valid ISO time is one the database accepts.
    """

    def to_python(self, value: object) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("The time is out of range once converted to UTC.") from exc


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField
