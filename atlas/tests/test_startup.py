"""Commands start in under a second (issue 20, item 4): nothing heavy is imported at start.

Presidio and spaCy (about 2 s), the OpenLineage client (0.4 s), jsonschema with its format
checkers (2.5 s: rfc3987-syntax builds its grammars on import) and numpy were imported by
every ``manage.py`` command, through the admin, the URLconf the system checks load, and the
step hooks. They are now imported where they are used: the analyzer on the first scan, the
OpenLineage classes when an event is built, jsonschema when one is checked. This guards it
without timing: each command runs as a real process under ``python -X importtime`` up to
its first query, and the modules it imported are read from that report.
(Figures: ``benchmarks/results/startup.md``.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("presidio_analyzer", "presidio_anonymizer", "spacy", "openlineage", "jsonschema", "rfc3987_syntax", "lark",
         "numpy", "pandas", "phonenumbers")
COMMANDS = {
    "help": (["help"], "django.core.management"),
    "check_quality": (["check_quality", "no-such-dataset"], "quality.service"),
    "run_pipeline": (["run_pipeline", "no-such-pipeline"], "pipelines.runner"),
}


def imported_modules(args: list[str], var_dir: Path) -> tuple[set[str], subprocess.CompletedProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(DEBUG="true", ATLAS_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="atlas.settings")
    proc = subprocess.run([sys.executable, "-X", "importtime", "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.MULTILINE))
    return names, proc


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_imports_nothing_heavy_up_to_its_first_query(command, tmp_path):
    args, loaded = COMMANDS[command]
    names, proc = imported_modules(args, tmp_path)
    assert loaded in names, proc.stderr[-2000:]  # the command itself was loaded and ran
    assert "lineage.api.views" in names or command == "help"  # the system checks loaded every URL's view
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == [], f"{command} imports {heavy[:10]} at start"


def test_what_was_made_lazy_still_loads_where_it_is_used():
    from compliance.detection import classify
    from lineage import events

    assert events.validation_errors({"eventType": "START"})  # jsonschema, on demand
    assert [v.entity for v in classify({"email": ["a@example.org", "b@example.com"]}).verdicts] == ["EMAIL_ADDRESS"]
    assert "presidio_analyzer" in sys.modules and "jsonschema" in sys.modules
