"""``manage.py create_api_token USER [--days N]``: print a new API token of USER, once.

Only the token's digest is stored: lose the printed key and you make a new one.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from atlas.api.tokens import TokenError, create_token


class Command(BaseCommand):
    help = "Make an API token for a user (hashed in the database, with an expiry); prints the key once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=None,
                            help="Days until it expires (default ATLAS_API_TOKEN_DAYS, at most ATLAS_API_TOKEN_MAX_DAYS).")

    def handle(self, *args, username: str, days: int | None, **options) -> None:
        try:
            token, key = create_token(username, days=days, actor="manage.py create_api_token")
        except TokenError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Token of {username}, expires {token.expiry:%Y-%m-%d %H:%M %Z}; shown once, keep it secret:")
        self.stdout.write(key)
