"""``make test``'s runner (atlas/tests/passes.py): every pass runs, each one's status, time and output kept whole."""

from __future__ import annotations

import shutil

import pytest

from atlas.tests.passes import Pass, run_pass, run_passes

MAKEFILE = """\
ok:
\t@echo ok-first; sleep 0.3; echo ok-last
bad:
\t@echo bad-out; exit 3
busy:
\t@python3 -c "sum(range(3_000_000))"
"""


@pytest.fixture
def makefile(tmp_path, monkeypatch):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (tmp_path / "Makefile").write_text(MAKEFILE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_pass_records_its_status_wall_time_and_the_cpu_of_what_it_started(makefile):
    ok, bad, busy = run_pass("make", Pass("ok")), run_pass("make", Pass("bad")), run_pass("make", Pass("busy"))
    assert ok.ok and ok.wall >= 0.3
    assert not bad.ok and bad.status != 0
    assert busy.ok and busy.cpu > 0  # the grandchild's CPU, accounted when the pass ends


def test_passes_side_by_side_all_run_and_each_output_is_printed_whole(makefile, capsys):
    passes = [Pass("ok"), Pass("bad")]
    run_passes("make", passes, after={})
    out = capsys.readouterr().out
    assert [one.ok for one in passes] == [True, False]
    assert "==== bad (FAILED" in out and "==== ok (passed" in out
    ok_block = out[out.index("==== ok"):]
    assert ok_block.index("ok-first") < ok_block.index("ok-last") < (ok_block + "==== ").index("==== ", 1)


PHASES = """\
test-embedded test-postgres test-spark:
\t@python3 -c "import time,sys; open('log','a').write(f'start $@ {time.time()}\\\\n'); time.sleep(0.4); open('log','a').write(f'end $@ {time.time()}\\\\n')"
"""


def _spans(path) -> dict[str, tuple[float, float]]:
    spans: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        _, target, at = line.split()
        spans.setdefault(target, []).append(float(at))
    return {target: (min(at), max(at)) for target, at in spans.items()}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("flags", [[], ["--one-by-one"]])
def test_make_test_runs_spark_from_the_start_beside_the_embedded_then_the_postgresql_pass(makefile, monkeypatch, capsys, flags):
    from atlas.tests.passes import main

    (makefile / "Makefile").write_text(PHASES)
    monkeypatch.setenv("ATLAS_TEST_SPARK_URL", "sc://127.0.0.1:1")  # given: no server started here
    assert main(["--make", "make", *flags]) == 0
    spans = _spans(makefile / "log")
    assert set(spans) == {"test-embedded", "test-postgres", "test-spark"}
    assert spans["test-embedded"][1] <= spans["test-postgres"][0]  # two xdist passes never at once
    assert _overlap(spans["test-spark"], spans["test-embedded"]) == (not flags)
    if flags:
        assert spans["test-postgres"][1] <= spans["test-spark"][0]
    out = capsys.readouterr().out
    assert out.count(" passed ") >= 3 and "FAILED" not in out


def test_the_background_spark_server_shares_our_scheduler_group_and_is_niced(tmp_path, monkeypatch):
    """In a session of its own (a scheduler autogroup of its own) a niced server would still take half the machine."""
    import os
    import subprocess
    import sys

    from atlas.tests.passes import SPARK_NICENESS
    from atlas.warehouse import sparklocal

    if not shutil.which("nice"):
        pytest.skip("no nice(1) on this machine")
    launched = []

    class Stop(Exception):
        pass

    class Running:
        pid = 0

        def poll(self):
            return None

    def popen(args, **kw):  # the metastore service first, then the Spark server: stopped there
        launched.append({"args": args, **kw})
        if len(launched) == 2:
            raise Stop
        return Running()

    monkeypatch.setattr(sparklocal, "missing", lambda: None)
    monkeypatch.setattr(sparklocal, "pyspark_home", lambda: tmp_path)
    monkeypatch.setattr(sparklocal.subprocess, "Popen", popen)
    with pytest.raises(Stop):
        sparklocal.start_for_tests(tmp_path, niceness=SPARK_NICENESS)
    assert str(sparklocal.METASTORE_SOURCE) in launched[0]["args"] and "spark-submit" in launched[1]["args"][3]
    for seen in launched:
        assert seen["args"][:3] == ["nice", "-n", str(SPARK_NICENESS)]
        assert seen["process_group"] == 0 and not seen.get("start_new_session")
    monkeypatch.undo()  # (subprocess.Popen is the module's own) and what those arguments do: a child in its own process group, same session, niced
    probe = subprocess.run(["nice", "-n", "10", sys.executable, "-c",
                            "import os; print(os.getsid(0), os.getpgid(0), os.getpid(), os.nice(0))"],
                           process_group=0, capture_output=True, text=True, check=True)
    sid, pgid, pid, niceness = map(int, probe.stdout.split())
    assert sid == os.getsid(0) and pgid == pid and niceness >= min(19, os.nice(0) + 10)


def test_a_once_on_postgres_test_is_left_to_the_postgresql_pass_only_when_one_follows():
    """``make test`` runs the schemathesis suites once, on PostgreSQL; ``make test-embedded`` alone still runs them."""
    import os
    import subprocess
    import sys

    from atlas.tests.passes import POSTGRES_PASS_FOLLOWS
    from atlas.tests.plugin import ENGINE

    if ENGINE != "embedded":
        pytest.skip("about the embedded pass: the PostgreSQL pass is where such tests run")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ATLAS_TEST_", "PYTEST_")) and k not in ("DATABASE_URL", POSTGRES_PASS_FOLLOWS)}
    test = "lineage/tests/test_api_schema.py::test_generated_requests_never_break_the_endpoint_or_its_schema"
    plan = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-rs", "--setup-plan", test]
    alone = subprocess.run(plan, env=env, capture_output=True, text=True)
    assert "SETUP" in alone.stdout and "skipped" not in alone.stdout  # its fixtures would be set up: it runs
    followed = subprocess.run(plan, env={**env, POSTGRES_PASS_FOLLOWS: "1"}, capture_output=True, text=True)
    assert "1 skipped" in followed.stdout and "runs once, in this make test's PostgreSQL pass" in followed.stdout
