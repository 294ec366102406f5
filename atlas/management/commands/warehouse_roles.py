"""``manage.py warehouse_roles``: create the PostgreSQL warehouse roles and grants (idempotent).

The roles (see ``atlas.warehouse.privileges``): the owner, one operator-SQL login role per
layer (``atlas_sql_explore``, ``atlas_sql_chart``, ``atlas_sql_navigate``: each reads only
the layers SQL producing or checking that layer may read) and the PII key role.

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
from atlas.warehouse.privileges import LAYER_READS, configured_roles, isolate_metadata_database


class Command(BaseCommand):
    help = (
        "Create the warehouse roles (owner, one operator-SQL role per layer, PII key) and their grants"
        " on PostgreSQL; revoke PUBLIC access to the atlas schema. Safe to run again."
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
        self.stdout.write(self._isolate_metadata(wh, roles))
        layers = "; ".join(
            f"{roles.for_layer(layer)!r} reads {' and '.join(reads)}" for layer, reads in LAYER_READS.items()
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Warehouse roles ready: operator SQL of each layer ({layers}), PII key {roles.key!r};"
                f" {roles.sql!r} (if it exists) reads no layer; PUBLIC has no access to the atlas schema."
            )
        )

    @staticmethod
    def _isolate_metadata(wh, roles) -> str:
        """Where Django's metadata is a PostgreSQL database of its own: operator SQL cannot connect to it."""
        import psycopg
        from django.db import connection

        if connection.vendor != "postgresql":
            return "Metadata is not on PostgreSQL: no operator-SQL role can reach it."
        meta = connection.settings_dict
        ware = psycopg.conninfo.conninfo_to_dict(wh.conninfo)
        same_server = (meta.get("HOST") or "localhost", str(meta.get("PORT") or 5432)) == (
            ware.get("host") or "localhost", str(ware.get("port") or 5432)
        )
        if same_server and meta.get("NAME") == ware.get("dbname"):
            return (
                f"Metadata and warehouse share the database {meta.get('NAME')!r}: the operator-SQL roles"
                " can connect to it but read none of Django's tables (schema public is closed to them)."
                " The production default is a warehouse database of its own (WAREHOUSE_URL); then"
                " this command makes the metadata database unreachable by them."
            )
        with connection.cursor() as cur:
            name = isolate_metadata_database(cur, roles)
        return f"Metadata database {name!r}: the operator-SQL roles and PUBLIC may not connect to it."
