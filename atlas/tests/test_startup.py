"""Commands start in under a second (issue 20, item 4): nothing heavy is imported at start.

Presidio and spaCy (about 2 s), the OpenLineage client (0.4 s), jsonschema with its format
checkers (2.5 s: rfc3987-syntax builds its grammars on import) and numpy were imported by
every ``manage.py`` command, through the admin, the URLconf the system checks load, and the
step hooks. They are now imported where they are used: the analyzer on the first scan, the
OpenLineage classes when an event is built, jsonschema when one is checked. This guards it
without timing: each command runs as a real process under ``python -X importtime`` up to
its first query, and the modules it imported are read from that report.
(Figures: ``benchmarks/results/startup.md``.)

Then (issue 20, part 4 again): the admin's modules load on the site's first use, not at
``django.setup()`` (``atlas.admin_site.AtlasAdminSite``); ``check_quality`` and
``run_pipeline`` run the models' system checks only (the URL checks imported every view of the
API and the admin), and import their engine once the dataset or pipeline is known; the warehouse
loads sqlglot with its first statement.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("presidio_analyzer", "presidio_anonymizer", "spacy", "openlineage", "jsonschema", "rfc3987_syntax", "lark",
         "numpy", "pandas", "phonenumbers", "pyarrow", "duckdb", "rich", "sqlglot", "urllib3")
# Atlas's own modules that a command up to its first query does not need: the admin, the API's views, the runner.
NOT_AT_START = ("pipelines.admin", "quality.admin", "compliance.admin", "lineage.api.views", "rest_framework.views", "drf_spectacular.openapi",
                "pipelines.runner", "quality.service", "compliance.detection")
COMMANDS = {
    "help": (["help"], "django.core.management"),
    "check_quality": (["check_quality", "no-such-dataset"], "quality.management.commands.check_quality"),
    "run_pipeline": (["run_pipeline", "no-such-pipeline"], "pipelines.management.commands.run_pipeline"),
}


def run_django_script(script: str, var_dir: Path) -> subprocess.CompletedProcess:
    """``script`` in a fresh Python process with Django set up on the embedded default (no pytest in its environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DEBUG="true", ATLAS_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="atlas.settings")
    return subprocess.run([sys.executable, "-c", "import sys, django; django.setup()\n" + script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def imported_modules(args: list[str], var_dir: Path) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules a real ``manage.py`` process holds when it ends (read at exit: an ``-X importtime``
    report misses what is imported while a library has swapped ``sys.stderr``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DEBUG="true", ATLAS_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="atlas.settings")
    listing = var_dir / "modules.txt"
    script = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules))))\n"
        f"sys.argv = ['manage.py', *{args!r}]\n"
        "runpy.run_path('manage.py', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    names = set(listing.read_text().split()) if listing.exists() else set()
    return names, proc


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_imports_nothing_heavy_up_to_its_first_query(command, tmp_path):
    args, loaded = COMMANDS[command]
    names, proc = imported_modules(args, tmp_path)
    assert loaded in names, proc.stderr[-2000:]  # the command itself was loaded and ran
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == [], f"{command} imports {heavy[:10]} at start"
    assert sorted(set(NOT_AT_START) & names) == [], f"{command} imports the admin, the API or the engine at start"


def test_the_admin_still_loads_for_its_urls_and_for_manage_py_check(tmp_path):
    """Lazy is not absent: ``manage.py check`` runs the admin's checks over every ModelAdmin, and a
    ModelAdmin's error is still found (the registry is read, so the admin modules load)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DEBUG="true", ATLAS_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="atlas.settings")
    script = (
        "import sys, django; django.setup()\n"
        "assert 'pipelines.admin' not in sys.modules, 'admin imported at setup'\n"
        "from django.core import checks\n"
        "from django.contrib import admin\n"
        "from pipelines.models import Dataset\n"
        "checks.run_checks(tags=[checks.Tags.admin])\n"
        "assert 'pipelines.admin' in sys.modules and Dataset in admin.site._registry\n"
        "admin.site._registry[Dataset].list_display = ['no_such_field']\n"
        "print(sorted(e.id for e in checks.run_checks(tags=[checks.Tags.admin])))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "admin.E108" in proc.stdout


def test_what_was_made_lazy_still_loads_where_it_is_used():
    from compliance.detection import classify
    from lineage import events

    assert events.validation_errors({"eventType": "START"})  # jsonschema, on demand
    assert [v.entity for v in classify({"email": ["a@example.org", "b@example.com"]}).verdicts] == ["EMAIL_ADDRESS"]
    assert "presidio_analyzer" in sys.modules and "jsonschema" in sys.modules


def test_an_admin_module_imported_before_the_site_is_used_registers_and_the_rest_still_load(tmp_path):
    """``atlas.schedule_admin`` imports django_celery_beat's admin, which registers at import: that
    registering must not discover every admin module halfway through the import (a circular import)."""
    script = (
        "import atlas.schedule_admin\n"
        "assert 'pipelines.admin' not in sys.modules\n"
        "from django.contrib import admin\n"
        "from django_celery_beat.models import PeriodicTask\n"
        "from pipelines.models import Dataset\n"
        "assert Dataset in admin.site._registry and 'pipelines.admin' in sys.modules\n"
        "print(type(admin.site._registry[PeriodicTask]).__module__)\n"
    )
    proc = run_django_script(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "atlas.schedule_admin"  # Atlas's schedule admin replaced beat's, as before


def test_the_postgresql_warehouse_loads_without_duckdb(tmp_path):
    """DuckDB parses files for the PostgreSQL warehouse (its ingest): a process that only checks or
    queries (``check_quality`` on PostgreSQL) does not load it (0.07 s); the file load imports it
    (the ingest tests on PostgreSQL)."""
    script = (
        "import atlas.warehouse.postgresql as pg\n"
        "assert 'duckdb' not in sys.modules, 'duckdb imported with the PostgreSQL warehouse'\n"
        "assert pg.PostgresWarehouse\n"
    )
    proc = run_django_script(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
