"""``manage.py warehouse_roles``: create the PostgreSQL warehouse roles and grants (idempotent).

Run once per warehouse database (and again after changing the role settings), as a
role that may create roles and owns the warehouse schemas — or, with ``--admin-url``,
as an administrator that sets everything up for the owner role (``--owner``), as
docker-compose.yml does at start. Never drops a role: roles are cluster-wide and
other databases on the server may share them.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from atlas.warehouse import WarehouseError, get_warehouse
from atlas.warehouse.privileges import configured_roles


class Command(BaseCommand):
    help = (
        "Create the warehouse roles (owner, operator SQL, PII key) and their grants on PostgreSQL;"
        " revoke PUBLIC access to the atlas schema. Safe to run again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--admin-url",
            default=os.environ.get("ATLAS_WAREHOUSE_ADMIN_URL", ""),
            help="Connect as this administrator instead of the warehouse URL (env ATLAS_WAREHOUSE_ADMIN_URL).",
        )
        parser.add_argument(
            "--owner",
            default="",
            help="With --admin-url: the owner role to set up (created if missing; default: the user of"
            " the warehouse URL). Its password comes from env ATLAS_WAREHOUSE_OWNER_PASSWORD.",
        )

    def handle(self, *args, admin_url: str = "", owner: str = "", **options) -> None:
        import psycopg

        from atlas.warehouse.postgresql import PostgresWarehouse

        try:
            wh = get_warehouse()
        except WarehouseError as exc:
            raise CommandError(str(exc)) from exc
        if wh.vendor != "postgresql":
            self.stdout.write(
                "The warehouse is DuckDB (embedded): it has no roles; it is locked down when it opens"
                " (external access off but for Atlas's directories, configuration locked)."
            )
            return
        roles = configured_roles()
        try:
            if admin_url:
                owner = owner or roles.owner or psycopg.conninfo.conninfo_to_dict(wh.conninfo).get("user", "")
                if not owner:
                    raise CommandError("Name the owner role (--owner or ATLAS_WAREHOUSE_OWNER_ROLE).")
                admin = PostgresWarehouse(admin_url)
                try:
                    admin.setup_roles(owner=owner, owner_password=os.environ.get("ATLAS_WAREHOUSE_OWNER_PASSWORD"))
                finally:
                    admin.close()
            else:
                wh.setup_roles()
        except (WarehouseError, psycopg.Error) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"Setting up the warehouse roles failed: {first}. Run this command as a role that may"
                " create roles and owns the warehouse schemas, or pass --admin-url."
            ) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Warehouse roles ready: operator SQL {roles.sql!r} (reads the layer schemas only),"
                f" PII key {roles.key!r}; PUBLIC has no access to the atlas schema."
            )
        )
