"""``ATLAS_TEST_CPU_REPORT`` (atlas/tests/cpu_report.py): a test's CPU, its subprocesses' included, summed by file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from atlas.tests.cpu_report import summary


def test_a_pytest_run_reports_each_test_with_its_subprocesses_cpu(tmp_path):
    (tmp_path / "test_busy.py").write_text(
        "import subprocess, sys\n"
        "def test_spins_a_child():\n"
        "    subprocess.run([sys.executable, '-c', 'sum(range(20_000_000))'], check=True)\n"
        "def test_idle():\n"
        "    pass\n"
    )
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["atlas.tests.cpu_report"]\n')
    report = tmp_path / "cpu.jsonl"
    env = {**os.environ, "ATLAS_TEST_CPU_REPORT": str(report), "PYTHONPATH": os.getcwd(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    rows = {r["test"].split("::")[-1]: r for r in map(json.loads, report.read_text().splitlines())}
    assert set(rows) == {"<session start>", "test_spins_a_child", "test_idle"}
    assert rows["test_spins_a_child"]["children"] > 0.1 > rows["test_idle"]["children"]
    text = summary(str(report))
    assert "test_busy.py" in text and "costliest tests:" in text and text.index("test_spins_a_child") < text.index("test_idle")
