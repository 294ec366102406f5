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
