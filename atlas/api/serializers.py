"""Serializer pieces shared by every app's API."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from .exceptions import RULE


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
