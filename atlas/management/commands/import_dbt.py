"""``manage.py import_dbt PATH``: a dbt project as Atlas definitions (``atlas.dbt_import``)."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError

from atlas.dbt_import import import_project
from atlas.dbt_import.dbtproject import DbtProjectError
from atlas.definitions import plan as plans
from atlas.definitions import project, state


class Command(BaseCommand):
    help = ("Translate a dbt project into Atlas definitions: write them as a project directory (--output),"
            " or apply them (--apply); report per model what is not translated.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="The dbt project's folder (with dbt_project.yml).")
        parser.add_argument("--output", type=Path, help="Write an Atlas project directory there (atlas plan/apply take it).")
        parser.add_argument("--apply", action="store_true", help="Apply the definitions now, in one transaction.")
        parser.add_argument("--pipeline", help="The pipeline's name (default: the dbt project's).")
        parser.add_argument("--vars", default="", help="dbt vars as YAML, e.g. '{start_date: 2024-01-01}'.")
        parser.add_argument("--target-name", default="atlas", help="target.name as the project's Jinja sees it.")
        parser.add_argument("--strict", action="store_true", help="Exit non-zero when anything is not translated.")

    def handle(self, *args, path: Path, output: Path | None, apply: bool, pipeline: str | None, vars: str,
               target_name: str, strict: bool, **options) -> None:
        if not output and not apply:
            raise CommandError("Give --output DIR (an Atlas project directory to review) or --apply.")
        try:
            given = yaml.safe_load(vars) if vars else {}
        except yaml.YAMLError:
            raise CommandError("--vars must be YAML, e.g. '{start_date: 2024-01-01}'.") from None
        if not isinstance(given, dict):
            raise CommandError("--vars must be a YAML mapping, e.g. '{start_date: 2024-01-01}'.")
        try:
            result = import_project(path, pipeline=pipeline, vars=given, target_name=target_name)
        except DbtProjectError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(result.report())
        try:
            if output:  # into the project already there, if any: it gains the dbt project's definitions
                base = project.read(output) if (output / "atlas.yml").is_file() else {}
                files = project.write(overlay(base, result.state), output)
                self.stdout.write(f"Wrote {len(files)} file(s) to {output}: review with `manage.py atlas plan {output}`.")
            if apply:
                desired = overlay(state.from_database(), result.state)  # what else the database holds stays
                self.stdout.write(plans.apply(desired, origin=f"import_dbt {path}").text())
        except (project.ProjectError, plans.ApplyError) as exc:
            raise CommandError(str(exc)) from None
        if strict and not result.complete:
            raise CommandError("Parts of the dbt project are not translated (above).")


def overlay(base: state.State, imported: state.State) -> state.State:
    """``base`` with the imported definitions added or replacing the same-named ones."""
    return {kind: {**base.get(kind, {}), **imported.get(kind, {})} for kind in {*base, *imported}}
