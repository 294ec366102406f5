"""Start-up benchmark: ``python -m benchmarks.startup [--reps 9] [--before REV]``.

How long ``manage.py help``, ``manage.py check_quality`` and ``manage.py run_pipeline`` take
as whole processes up to their first query (a dataset and a pipeline that do not exist:
the command loads, runs the system checks, asks the database once and stops), against the
floor of a Python interpreter that does nothing, and against the same commands of the
revision ``--before`` (default: the commit before the start-up work), extracted with
``git archive`` into a temporary directory and run with the same interpreter.

Every process gets the bytecode the image has (pip compiles it at install): a private
``PYTHONPYCACHEPREFIX``, filled by one untimed run of each contender. Reps are interleaved,
contender by contender. Wall time and the CPU time of the process (user + system) are
both reported, as medians: on a busy machine the CPU time moves less. Writes
``benchmarks/results/startup.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import write_results

ROOT = Path(__file__).resolve().parents[2]
BEFORE = "cfab09d"
COMMANDS = {
    "manage.py help": ["manage.py", "help"],
    "manage.py check_quality (to its first query)": ["manage.py", "check_quality", "no-such-dataset"],
    "manage.py run_pipeline (to its first query)": ["manage.py", "run_pipeline", "no-such-pipeline"],
}


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--before", default=BEFORE, help="the revision to compare with (git archive)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="atlas-bench-startup-"))
    old = work / "before"
    old.mkdir()
    archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(DEBUG="true", DJANGO_SETTINGS_MODULE="atlas.settings", ATLAS_VAR_DIR=str(work / "var"),
               PYTHONPYCACHEPREFIX=str(work / "pycache"))
    contenders: dict[str, tuple[list[str], Path]] = {"python -c pass (floor)": (["-c", "pass"], ROOT)}
    for name, argv in COMMANDS.items():
        contenders[f"{name}, before ({args.before})"] = (argv, old)
        contenders[f"{name}, now"] = (argv, ROOT)
    for argv, cwd in contenders.values():  # untimed: writes the bytecode and the var directory
        run_once(argv, cwd, env)
    samples: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": []} for n in contenders}
    for _ in range(args.reps):
        for name, (argv, cwd) in contenders.items():
            wall, cpu = run_once(argv, cwd, env)
            samples[name]["wall"].append(wall)
            samples[name]["cpu"].append(cpu)
    medians = {n: {k: statistics.median(v) for k, v in s.items()} for n, s in samples.items()}
    floor = medians["python -c pass (floor)"]["wall"]
    lines = [f"# Start-up of Atlas's commands (median of {args.reps}, bytecode compiled, {os.cpu_count()} CPUs)", "",
             "Whole processes up to their first query; `before` is the tree of "
             f"`{args.before}`, `now` this one, interleaved in the same run.", "",
             "| process | wall s | CPU s | × before (wall) |", "|---|---:|---:|---:|"]
    for name, m in medians.items():
        ratio = ""
        if name.endswith(", now"):
            base = medians[name.replace(", now", f", before ({args.before})")]["wall"]
            ratio = f"{m['wall'] / base:.2f}"
        lines.append(f"| {name} | {m['wall']:.2f} | {m['cpu']:.2f} | {ratio} |")
    load = os.getloadavg()
    lines += ["", f"Python floor {floor:.2f} s. Load average during the run: {load[0]:.1f} "
              "(figures from a busy machine are upper bounds)."]
    write_results("startup", {"reps": args.reps, "before": args.before, "samples": samples, "medians": medians,
                              "loadavg": load, "machine": {"python": platform.python_version(),
                                                           "cpus": os.cpu_count()}}, lines)


main()
