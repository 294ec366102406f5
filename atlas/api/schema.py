"""OpenAPI: every operation documents the error responses it can give, in the one error shape.

Views declare only what is particular to them (409 on run); 400, 401, 403,
404 and 429 are added here to every operation, 409 (in use) to every DELETE and
409 (refused by a rule: a reference to nothing, a name taken, fields that do not
go together, :data:`atlas.api.exceptions.RULE`) to every POST, PUT and PATCH, so
the schema never lies by omission (schemathesis checks that every status code we
answer is documented). 400 means the request breaks the schema; a request the
schema allows is never a 400.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found, invalid, conflict.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    detail = serializers.JSONField(help_text="Field errors (400) or context (409); {} otherwise.")


class ErrorSerializer(serializers.Serializer):
    """The body of every error the API answers."""

    error = ErrorDetailSerializer()


COMMON_ERRORS = {
    "400": "Invalid input (field errors in error.detail).",
    "401": "Not authenticated: send a session cookie or 'Authorization: Token <key>'.",
    "403": "Authenticated, but your roles do not grant this.",
    "404": "No such object (or page/cursor).",
    "429": "Too many requests; retry after error.detail.retry_after_seconds.",
}


class AutoSchema(openapi.AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        return request_field_schema(field, schema) if direction == "request" and isinstance(schema, dict) else schema

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        errors = dict(COMMON_ERRORS)
        if direction == "response" and self.method == "DELETE":
            # A protected object (run history is evidence, issue 12) answers 409 in_use.
            errors["409"] = "Still in use (what uses it in error.detail.used_by); delete or change that first."
        elif direction == "response" and self.method in ("POST", "PUT", "PATCH"):
            # Well-formed (400 is for what breaks the schema) but refused by a rule (atlas.api.exceptions.RULE).
            errors["409"] = ("Well-formed, but refused by a rule the schema cannot state: a reference to an object"
                             " that does not exist, a name already taken, fields that do not go together.")
        for code, description in errors.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses


class HashedTokenScheme(OpenApiAuthenticationExtension):
    """knox's hashed tokens under the scheme name integrators' generated clients already use.

    The header did not change (``Authorization: Token <key>``), so neither does the scheme name.
    """

    target_class = "knox.auth.TokenAuthentication"
    name = "tokenAuth"
    priority = 1  # over drf-spectacular's own knox extension ("knoxApiToken")

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "Token-based authentication with required prefix \"Token\" "
            "(manage.py create_api_token USER --days N).",
        }


NO_NUL = "^[^\\u0000]*$"  # the API refuses NUL in text (Django's ProhibitNullCharactersValidator; PostgreSQL cannot store it)


def text_without_nul(result: dict, generator, request, public) -> dict:
    """Schema post-processing: every free text (a string without format, enum or pattern) states that NUL
    is refused, in bodies and in parameters, so the schema describes what the API accepts."""

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and not {"format", "enum", "pattern"} & node.keys():
                node["pattern"] = NO_NUL
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result.get("components", {}).get("schemas", {}))
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict):
                walk(operation.get("parameters", []))
                walk(operation.get("requestBody", {}))
    return result


# What DRF's trimming removes (``str.strip()``: every character ``str.isspace()`` calls white space), written
# out: ECMA 262's ``\\s`` and Python's differ (U+001C-U+001F, U+0085), so the schema names each one
# (atlas/tests/test_api_random_draws.py checks the list against Python's).
WHITE_SPACE = ("\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
               "\\u205f\\u3000")
# A required text: at least one character that is neither white space nor NUL, and no NUL anywhere.
NOT_BLANK = f"^[^\\u0000]*[^\\u0000{WHITE_SPACE}][^\\u0000]*$"
DOUBLE_MAX = 1.7976931348623157e308  # sys.float_info.max: a JSON number beyond it is no double (1e400 reads as inf)


def request_field_schema(field, schema: dict) -> dict:
    """What a request field accepts, said in the schema (see :mod:`atlas.api.serializers`).

    * a text that may not be blank and is trimmed: a ``pattern`` asking for a character that is not white
      space (a name of spaces would be blank once trimmed: refused, 400, as the schema now says);
    * a number: the bounds of a double.
    """
    if (isinstance(field, serializers.CharField) and field.trim_whitespace and not field.allow_blank
            and not {"pattern", "format", "enum"} & schema.keys()
            and not any(isinstance(v, RegexValidator) for v in field.validators)):  # its own pattern comes later
        schema["pattern"] = NOT_BLANK
    if isinstance(field, serializers.FloatField) and schema.get("type") == "number":
        schema.setdefault("minimum", -DOUBLE_MAX)
        schema.setdefault("maximum", DOUBLE_MAX)
    return schema
