"""``manage.py ensure_admin``: create the first admin login and print its password once."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser with a random password if none exists, and print the login once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")

    def handle(self, *args, username: str, email: str, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "An admin login already exists (its password was printed when it was created;"
                f" reset it with: python manage.py changepassword {username})."
            )
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(self.style.SUCCESS(f"Admin login created — user: {username}  password: {password}"))
        self.stdout.write("This password is shown only now.")
