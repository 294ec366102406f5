"""A local Spark Connect server started from the ``pyspark`` package (tests, benchmarks, a laptop).

The ``pyspark`` wheel (4.x, the ``spark`` extra) carries the whole server: Spark's jars, the
Spark Connect service (``jars/spark-connect_*.jar``), Hive's metastore client and Derby. Nothing
is downloaded when it starts; Java 17 must be on the ``PATH`` (or ``JAVA_HOME``).

:func:`start` runs ``spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer``
in the foreground of a child process (so the caller owns its process id and stops exactly it),
with ``local[N]`` cores, a bounded driver heap, a warehouse directory and a Derby metastore (a
persistent catalog: schemas and tables survive a restart) under ``root``, listening on
127.0.0.1 only, on a free port. :func:`missing` says why it cannot start here, or None.

The metastore is embedded in the server by default. :func:`start_metastore` runs it as a service
of its own (``java/AtlasLocalMetastore.java``, on 127.0.0.1) for ``start(metastore=...)``: the
test suite's server uses it (:func:`start_for_tests`), see :data:`METASTORE_SOURCE` for why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"

# JVM flags for a server that lives minutes and runs many small, different statements (the test
# suite): HotSpot's C1 compiler only, and a code cache large enough that it is never swept. By
# default the optimising C2 compiler's threads took about two thirds of the server's CPU on the
# contract tests, compiling Spark's planner code that a test pass never runs long enough to repay;
# C1 alone filled JDK 17's default cache, and its sweeper then flushed and recompiled. Measured on a
# 2-CPU machine (2026-12-05): atlas/tests/test_warehouse_spark.py (24 tests) 155-188 s of server CPU by
# default, 82 s with these; the whole Spark pass 629 s, 529 s. What is left is mostly Hive's embedded
# metastore: Spark Connect runs each operation in a new thread, and the metastore builds a HiveConf
# (every jar searched, the XML defaults parsed) for each new thread's first catalogue call.
# And the serial garbage collector: on a 1 GiB heap, G1's concurrent and parallel threads cost more CPU
# than they save in pauses. Measured with two servers side by side on the same tests, so that both saw the
# same machine (its speed moved by up to 30 % between runs minutes apart; 2026-12-06, 2 CPUs):
# atlas/tests/test_warehouse_spark.py took 108.7 and 110.0 server CPU s with G1, 104.4 and 104.6 serial.
# A long-lived server (docker-compose's spark profile, the 10M benchmark) keeps the defaults.
SHORT_LIVED_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=512m -XX:+UseSerialGC"

# Hive's metastore as a service of its own, started by Java's source launcher from pyspark's jars. With the
# metastore embedded, the Spark server opens a metastore session (a RawStore and a HiveConf parsed from
# XML) in every thread that touches the catalogue, and Spark Connect runs each request in a new thread;
# as a service, the server's one connection is served by one thread whose session is kept. Measured on
# a 2-CPU machine (2026-12-05), atlas/tests/test_warehouse_spark.py on a warm server: 62 CPU s embedded,
# 47 s with the service (its own 10 s included); 82 s and 69 s on a fresh one. Hive's own launcher
# (HiveMetaStore.main) listens on every interface: this one binds 127.0.0.1.
METASTORE_SOURCE = Path(__file__).with_name("java") / "AtlasLocalMetastore.java"


class SparkUnavailable(RuntimeError):
    """The local Spark Connect server cannot start (no pyspark, no Java) or did not come up."""


def pyspark_home() -> Path | None:
    """The installed ``pyspark`` package's directory (its ``bin/`` and ``jars/``), or None."""
    try:
        import pyspark
    except ImportError:
        return None
    return Path(pyspark.__file__).resolve().parent


def java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def missing() -> str | None:
    """Why a local Spark Connect server cannot start on this machine, or None when it can."""
    home = pyspark_home()
    if home is None:
        return "pyspark is not installed (pip install 'atlas[spark]')"
    if not list((home / "jars").glob("spark-connect_*.jar")):
        return f"the pyspark package at {home} has no Spark Connect server jar (pyspark 4.x ships it)"
    if java() is None:
        return "Java (17 or later) is not on the PATH and JAVA_HOME is not set"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen, timeout: float) -> None:
    """Stop a server started here (its own process group: the JVM and what started it), waiting for it to end."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _launch(args: list[str], *, cwd: Path, env: dict[str, str], log: Path, niceness: int) -> subprocess.Popen:
    if niceness and shutil.which("nice"):
        args = ["nice", "-n", str(int(niceness)), *args]
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # its own process group (stop() ends the JVM, not only a script), in our session: a new
            # session (setsid) is a new scheduler autogroup on Linux, which gets as much CPU as all
            # of ours together whatever its niceness (see start's docstring)
            process_group=0,
        )


def _wait_listening(what: str, process: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    """Return when ``process`` listens on ``port``; stop it and raise :class:`SparkUnavailable` when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SparkUnavailable(f"the {what} exited with {process.returncode}: {_tail(log)}")
        if _listening(port):
            return
        time.sleep(0.25)
    _stop(process, 30)
    raise SparkUnavailable(f"the {what} did not listen on port {port} within {timeout:g} s: {_tail(log)}")


@dataclass
class LocalMetastore:
    """A running metastore service: its URL (``thrift://127.0.0.1:PORT``), process and log."""

    url: str
    port: int
    process: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 30) -> None:
        _stop(self.process, timeout)


@dataclass
class LocalSpark:
    """A running server: its URL (``sc://127.0.0.1:PORT``), process and directories (and its metastore service, if any)."""

    url: str
    port: int
    root: Path
    process: subprocess.Popen
    log: Path
    metastore: LocalMetastore | None = None

    def stop(self, timeout: float = 30) -> None:
        """Stop the server, then its metastore service."""
        _stop(self.process, timeout)
        if self.metastore is not None:
            self.metastore.stop(timeout)


def _prepare(root: Path) -> tuple[Path, Path]:
    """pyspark's directory and ``root`` resolved, with its ``warehouse`` and ``tmp``; raises when a server cannot start here."""
    if reason := missing():
        raise SparkUnavailable(reason)
    home = pyspark_home()
    assert home is not None
    root = Path(root).resolve()
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    return home, root


def _derby_metastore(root: Path) -> dict[str, str]:
    """Hive's settings for a Derby metastore in ``root/metastore_db`` (a persistent catalog, no database server)."""
    return {
        "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root / 'metastore_db'};create=true",
        "datanucleus.schema.autoCreateAll": "true",
        "hive.metastore.schema.verification": "false",
    }


def launch_metastore(root: Path, *, port: int | None = None, niceness: int = 0, java_options: str = "") -> LocalMetastore:
    """Start Hive's metastore as a service on 127.0.0.1 (its Derby database under ``root``) without waiting for it.

    :func:`wait_metastore` waits until it listens (so a Spark server can start meanwhile). It needs
    a JDK (Java's source launcher compiles :data:`METASTORE_SOURCE` in memory when it starts).
    """
    home, root = _prepare(root)
    port = port or free_port()
    hive = {
        **_derby_metastore(root),
        # BoneCP, Hive's default pool, is not among pyspark's jars; HikariCP is
        "datanucleus.connectionPoolingType": "HikariCP",
        "hive.metastore.warehouse.dir": str(root / "warehouse"),
    }
    args = [str(java()), "-Xmx512m", *java_options.split(), f"-Dderby.system.home={root}", f"-Djava.io.tmpdir={root / 'tmp'}",
            "-cp", str(home / "jars" / "*"), str(METASTORE_SOURCE), "127.0.0.1", str(port),
            *(f"{k}={v}" for k, v in hive.items())]
    log = root / "metastore.log"
    process = _launch(args, cwd=root, env={**os.environ}, log=log, niceness=niceness)
    return LocalMetastore(url=f"thrift://127.0.0.1:{port}", port=port, process=process, log=log)


def wait_metastore(metastore: LocalMetastore, timeout: float = 120) -> LocalMetastore:
    _wait_listening("Hive metastore service", metastore.process, metastore.port, metastore.log, timeout)
    return metastore


def start_metastore(root: Path, **kwargs) -> LocalMetastore:
    """:func:`launch_metastore`, then wait until it listens."""
    return wait_metastore(launch_metastore(root, **kwargs))


def start(
    root: Path, *, cores: int = 2, memory: str = "1g", port: int | None = None, timeout: float = 180,
    conf: dict[str, str] | None = None, java_options: str = "", niceness: int = 0,
    metastore: LocalMetastore | None = None,
) -> LocalSpark:
    """Start a Spark Connect server with its warehouse and catalog under ``root``; wait until it listens.

    ``cores``: ``local[cores]``; ``memory``: the driver's heap (``-Xmx``; local mode runs the
    executors in the driver); ``java_options``: more JVM flags; ``niceness``: the server's (``nice
    -n``), so that beside other work it takes the CPU they leave (``make test``: atlas/tests/passes.py);
    ``metastore``: a metastore service (:func:`launch_metastore`) for the catalogue instead of an
    embedded Derby one, waited for here and stopped with the server.
    The server stays in the caller's session: with Linux's scheduler autogroups (on by default),
    a process in a session of its own competes as one group with all the caller's processes,
    niced or not. Raises :class:`SparkUnavailable`
    with the reason and the end of the server's log when it cannot start or does not listen within
    ``timeout`` seconds.
    """
    home, root = _prepare(root)
    port = port or free_port()
    settings = {
        "spark.master": f"local[{int(cores)}]",
        "spark.driver.memory": memory,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        **({"spark.hadoop.hive.metastore.uris": metastore.url} if metastore else {
            f"spark.hadoop.{key}": value for key, value in _derby_metastore(root).items()
        }),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root} -Djava.io.tmpdir={root / 'tmp'} {java_options}".strip(),
        "spark.local.dir": str(root / "tmp"),
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": str(max(int(cores) * 2, 2)),
        "spark.sql.session.timeZone": "UTC",
        # The steps' Spark facts (stages, tasks, bytes read: atlas/warehouse/sparkfacts.py) come from Spark
        # Connect's progress reports, sent every interval while an operation runs (default 2 s): a step whose
        # jobs each took less (a few rows, a quiet machine) reported none. 20 ms reports every job but the
        # smallest, for a few messages per operation.
        "spark.connect.progress.reportInterval": "20ms",
        **(conf or {}),
    }
    args = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    for key, value in settings.items():
        args += ["--conf", f"{key}={value}"]
    args.append("spark-internal")
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": "python3"}
    env.pop("SPARK_CONF_DIR", None)
    log = root / "server.log"
    process = _launch(args, cwd=root, env=env, log=log, niceness=niceness)
    server = LocalSpark(url=f"sc://127.0.0.1:{port}", port=port, root=root, process=process, log=log, metastore=metastore)
    try:
        if metastore is not None:
            wait_metastore(metastore, timeout)
        _wait_listening("Spark Connect server", process, port, log, timeout)
    except SparkUnavailable:
        server.stop()
        raise
    return server


def start_for_tests(root: Path, *, niceness: int = 0) -> LocalSpark:
    """The test suite's server (its session fixture, and ``make test``'s background one): ``local[2]``,
    a 1 GiB heap, :data:`SHORT_LIVED_JAVA_OPTIONS` and the metastore as a service (both niced alike).

    Where the service cannot start (a JRE without Java's compiler, for the source launcher), the
    server embeds its metastore, as :func:`start` does by default, and says so on stderr.
    """
    root = Path(root)
    options = {"cores": 2, "memory": "1g", "java_options": SHORT_LIVED_JAVA_OPTIONS, "niceness": niceness}
    # both JVMs start at once: the server asks the metastore nothing until its first request
    metastore = launch_metastore(root / "metastore", niceness=niceness, java_options=SHORT_LIVED_JAVA_OPTIONS)
    try:
        return start(root, metastore=metastore, **options)
    except SparkUnavailable as exc:
        if metastore.process.poll() is None:
            raise  # the Spark server's own failure
        print(f"The Hive metastore service did not start; the Spark server embeds its metastore: {exc}", file=sys.stderr)
    return start(root, **options)


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
