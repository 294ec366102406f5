"""Serializer pieces shared by every app's API.

**What a JSON body's values may be** (the schema states it; a request it allows is never refused as
malformed, and one it does not allow is never accepted):

* an integer: a JSON number with an integral value — ``3``, ``3.0`` and ``1e17`` (a float-looking
  integer) are the same integer; ``3.5``, ``true`` and the string ``"3"`` are refused (400);
* a number (``format: double``): any finite JSON number a double holds (an integer too), within the
  bounds the schema states (±1.7976931348623157e308: ``1e400`` is refused, 400); ``null`` where the
  schema says ``nullable``; a string (``"0.5"``) and ``true`` are refused;
* a reference to an object (its id): an integer as above; an id nothing has is a 409 (a rule);
* text: a JSON string (a number is refused, 400), trimmed of leading and trailing white space (``str.strip``); a required text must keep a
  character once trimmed (the schema's ``pattern`` says so: a name of spaces is refused, 400), and
  its ``maxLength`` counts what was sent, before trimming; NUL is refused everywhere.

Strings for numbers are accepted only from a form (the browsable API), which cannot send anything else.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers
from rest_framework.fields import empty

from .exceptions import RULE

DOUBLE_MAX = sys.float_info.max


def _json_body(field: serializers.Field) -> bool:
    """The value came from a JSON body (not a form, which carries only strings)."""
    request = field.context.get("request") if hasattr(field, "context") else None
    content_type = getattr(request, "content_type", "") or ""
    return request is None or content_type.split(";")[0].strip().lower().endswith("json")


def integral(field: serializers.Field, data: Any) -> Any:
    """``data`` as the integer it stands for, or the field's 'invalid' error (see the module docstring)."""
    if isinstance(data, bool):
        field.fail("invalid")
    if isinstance(data, float):
        if not (math.isfinite(data) and data.is_integer()):
            field.fail("invalid")
        return int(data)
    if isinstance(data, str) and _json_body(field):
        field.fail("invalid")
    return data


class IntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        return super().to_internal_value(integral(self, data))


class FloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or (isinstance(data, str) and _json_body(self)):
            self.fail("invalid")
        return super().to_internal_value(data)  # finite, or refused (1e400 parses as inf: out of the schema's bounds)


class PrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An object by its integer id (``3``, ``3.0``; not ``"3"`` nor ``3.5``, which Django would read as 3)."""

    def to_internal_value(self, data: Any) -> Any:
        pk_field = self.get_queryset().model._meta.pk
        if isinstance(pk_field, models.IntegerField | models.AutoField):
            if isinstance(data, bool) or (isinstance(data, float) and not (math.isfinite(data) and data.is_integer())) \
                    or (isinstance(data, str) and _json_body(self)):
                self.fail("incorrect_type", data_type=type(data).__name__)
            if isinstance(data, float):
                data = int(data)
        return super().to_internal_value(data)


class CharField(serializers.CharField):
    """Text is a JSON string (DRF would turn ``-756`` into ``"-756"``); ``max_length`` counts the characters sent
    (what the schema's ``maxLength`` says), not what is left once trimmed."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) and _json_body(self):
            self.fail("invalid")
        return super().to_internal_value(data)

    def run_validation(self, data: Any = empty) -> Any:
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().run_validation(data)


class ModelSerializer(serializers.ModelSerializer):
    """DRF's ModelSerializer with the fields above for every model field of those types."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.IntegerField: IntegerField,
        models.BigIntegerField: IntegerField,
        models.SmallIntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.PositiveSmallIntegerField: IntegerField,
        models.PositiveBigIntegerField: IntegerField,
        models.AutoField: IntegerField,
        models.BigAutoField: IntegerField,
        models.SmallAutoField: IntegerField,
        models.FloatField: FloatField,
        models.CharField: CharField,
        models.TextField: CharField,
    }
    serializer_related_field = PrimaryKeyRelatedField


class ModelCleanMixin:
    """Run the model's own ``clean()`` so the API refuses exactly what the admin refuses.

    The rules live on the model (one place); the serializer only builds the
    instance as it would be saved and turns Django's errors into field errors.
    """

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # type: ignore[misc]
        model = self.Meta.model  # type: ignore[attr-defined]
        instance = self.candidate(attrs, model)
        try:
            instance.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}, code=RULE
            ) from exc
        return attrs

    def candidate(self, attrs: dict[str, Any], model: type) -> Any:
        """The instance with the request's values applied (not saved)."""
        m2m = {f.name for f in model._meta.many_to_many}
        current = self.instance  # type: ignore[attr-defined]
        instance = model.objects.get(pk=current.pk) if current is not None else model()
        for key, value in attrs.items():
            if key not in m2m:
                setattr(instance, key, value)
        return instance
