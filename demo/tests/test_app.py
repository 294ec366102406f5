"""The demo is an app of its own: ``load_demo`` is its command, and the core app does not import it (or quality)."""

from __future__ import annotations

import ast
from pathlib import Path

from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
ABOVE_PIPELINES = {"quality", "compliance", "lineage", "privacy", "retention", "demo"}


def test_load_demo_is_the_demo_apps_command():
    assert get_commands()["load_demo"] == "demo"


def test_pipelines_imports_no_app_above_it():
    found = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        if "tests" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ABOVE_PIPELINES]
    assert found == []
