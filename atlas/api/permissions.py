"""API permissions are Django model permissions — the same ones the admin and the roles use.

Reading needs ``view_<model>``, writing needs ``add``/``change``/``delete``;
operations (run, cancel) name the permission the admin checks for the same
button. So a role (``atlas.roles``) grants the same thing in the admin and
in the API, and there is one place to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import permissions

if TYPE_CHECKING:  # rest_framework.views imports this module through DEFAULT_PERMISSION_CLASSES
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ModelPermissions(permissions.DjangoModelPermissions):
    """DjangoModelPermissions, with ``view`` required for reading (DRF lets any user read)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        action_map = getattr(view, "action_map", None)
        if action_map is not None and request.method.lower() not in action_map:
            # The endpoint has no such method: say 405, not "you lack delete_steprun".
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)


class HasPermission(permissions.BasePermission):
    """An operation that needs named Django permissions (``HasPermission.of("app.codename")``)."""

    required: tuple[str, ...] = ()

    @classmethod
    def of(cls, *perms: str) -> type[HasPermission]:
        return type(f"Has_{'_'.join(p.replace('.', '_') for p in perms)}", (cls,), {"required": perms})

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(self.required))
