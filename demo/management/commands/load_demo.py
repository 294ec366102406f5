"""``manage.py load_demo [--rows N]``: write the demo files and apply the demo project (``demo/project/``)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from atlas.definitions.plan import ApplyError
from atlas.definitions.project import ProjectError
from demo import install
from demo.generator import generate


class Command(BaseCommand):
    help = "Generate the synthetic e-commerce files and apply the demo project (demo/project/)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, default=2000, help="Number of orders to generate (default 2000).")
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, rows: int, seed: int, **options) -> None:
        if rows < 1:
            raise CommandError("--rows must be at least 1.")
        started = time.monotonic()
        files = generate(settings.ATLAS_DEMO_DIR, rows=rows, seed=seed)
        try:
            pipeline = install.install(settings.ATLAS_DEMO_DIR)
        except (ProjectError, ApplyError) as exc:
            raise CommandError(f"The demo project ({install.PROJECT_DIR}) cannot be applied: {exc}") from None
        manifest = files.manifest
        self.stdout.write(f"Demo files in {settings.ATLAS_DEMO_DIR} ({time.monotonic() - started:.1f} s):")
        for key in ("customers", "orders", "order_items", "payments"):
            info = manifest.get("files", manifest).get(key, {}) if isinstance(manifest, dict) else {}
            self.stdout.write(f"  {key:<12} {info.get('lines_total', '?'):>9} lines")
        self.stdout.write(
            self.style.SUCCESS(
                f"Project {install.PROJECT_DIR} applied: pipeline {pipeline.name!r} with {pipeline.steps.count()} steps;"
                f" run it with: python manage.py run_pipeline {pipeline.name}"
            )
        )
