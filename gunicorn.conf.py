"""Gunicorn for Atlas's web process (the image's CMD: ``gunicorn atlas.wsgi --config gunicorn.conf.py``).

The work it does: mostly short API and admin requests that wait on PostgreSQL, plus some long
ones (a data-subject run, a retention apply, a PII scan, saving large step SQL) that can take
tens of seconds. Threads (gthread) keep short requests answered while a long one holds a
thread; the timeout is for a worker that stopped answering, not for a slow request. Every
setting can be changed from the environment (GUNICORN_CMD_ARGS overrides them all).
"""

import os
import sys


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        sys.exit(f"gunicorn.conf.py: {name} must be a positive whole number, not {raw!r}.")
    return int(raw)


bind = [f"0.0.0.0:{_int('PORT', 8000)}"]
worker_class = "gthread"
# Processes: each holds Django, and Presidio once a request scans for PII (hundreds of MB).
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 4)
# Seconds a worker may go without a heartbeat before the arbiter kills it (a stuck request).
timeout = _int("GUNICORN_TIMEOUT", 120)
# On stop or restart, requests in flight get this long to finish (docker-compose.yml's
# stop_grace_period for web is longer, so they are not cut by SIGKILL).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle a worker after this many requests (plus up to the jitter, so they do not all restart
# at once): memory a long-running process gathers (caches, fragmentation) is returned. Not fewer:
# a cached API page costs about a millisecond, so 1,000 requests were a few seconds of load and
# every restart (seconds of CPU to import Django and the apps again) showed in the p99.
max_requests = _int("GUNICORN_MAX_REQUESTS", 20000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 2000)
# The heartbeat file on memory, not on the container's overlay filesystem (slow fsyncs there
# get healthy workers killed).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = "-"
errorlog = "-"
# Addresses of the proxy whose X-Forwarded-* headers are trusted (blank: none).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server, worker) -> None:
    """A worker that exits leaves its metric files behind: mark it dead (multiprocess metrics)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Warm a new worker before it takes requests: every URLconf (the API's viewsets, the admin) is
    imported now, not by the first request. Workers are replaced every ``max_requests``; a cold one
    made its first request wait seconds on a loaded machine (the API benchmark's p99)."""
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.url_patterns  # noqa: B018 — imports the URLconfs
    resolver._populate()
