"""``manage.py revoke_api_tokens USER``: every API token of USER stops working now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from atlas.api.tokens import TokenError, revoke_tokens


class Command(BaseCommand):
    help = "Revoke (delete) every API token of a user."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        try:
            n = revoke_tokens(username, actor="manage.py revoke_api_tokens")
        except TokenError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{n} token(s) of {username} revoked.")
