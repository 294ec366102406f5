"""``manage.py atlas export | plan | apply | schema``: definitions as code (``atlas.definitions``)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from atlas.definitions import plan as plans
from atlas.definitions import project, schema, state


class Command(BaseCommand):
    help = "Definitions as code: export them to a project directory, plan and apply one, write its JSON Schema."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("export", help="Write the database's definitions to DIR.").add_argument("dir", type=Path)
        sub.add_parser("plan", help="Show what apply DIR would create, change and delete.").add_argument("dir", type=Path)
        apply = sub.add_parser("apply", help="Make the database hold DIR's definitions, in one transaction.")
        apply.add_argument("dir", type=Path)
        apply.add_argument("--allow-delete", action="store_true", help="Delete what the project no longer defines.")
        out = sub.add_parser("schema", help="Write the project files' JSON Schema (default: the one Atlas ships).")
        out.add_argument("--output", type=Path, default=schema.SHIPPED)

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except (project.ProjectError, plans.ApplyError) as exc:
            raise CommandError(str(exc)) from None

    def do_export(self, dir: Path, **_) -> None:
        files = project.write(state.from_database(), dir)
        self.stdout.write(f"Wrote {len(files)} file(s) to {dir}.")

    def do_plan(self, dir: Path, **_) -> None:
        self.stdout.write(plans.make_plan(project.read(dir)).text())

    def do_apply(self, dir: Path, allow_delete: bool, **_) -> None:
        self.stdout.write(plans.apply(project.read(dir), allow_delete=allow_delete, origin=str(dir)).text())

    def do_schema(self, output: Path, **_) -> None:
        output.write_text(json.dumps(schema.build(), indent=2, sort_keys=True) + "\n")
        self.stdout.write(f"Wrote {output}.")
