"""Who may send and read lineage: Django model permissions, as the admin checks them."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class LineagePermission(BasePermission):
    """Sending an event needs ``lineage.add_receivedevent``; reading the graph ``lineage.view_lineagenode``."""

    message = "You need the lineage permission for this (ask an administrator for a role that has it)."

    def has_permission(self, request: Request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        perm = "lineage.view_lineagenode" if request.method in ("GET", "HEAD", "OPTIONS") else "lineage.add_receivedevent"
        return user.has_perm(perm)
