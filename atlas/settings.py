"""Atlas settings: everything comes from the environment (django-environ).

Two ways to run, one code path:

* embedded default (nothing set): SQLite for Django's tables, a DuckDB file for
  the warehouse, Celery tasks executed in-process;
* production: ``DATABASE_URL`` (PostgreSQL), ``WAREHOUSE_URL`` (defaults to the
  same PostgreSQL), ``CELERY_BROKER_URL`` (Redis).

A missing secret in production is a loud error at start, never a silent default.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

TESTING = "pytest" in sys.modules or sys.argv[1:2] == ["test"]
DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("ATLAS_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable "
            "(a long random string), or DEBUG=true for local development only."
        )
    SECRET_KEY = "insecure-development-key-never-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Atlas's own apps: the one list. pyproject.toml's packages, its import layers and the Dockerfile's
# COPY lines name exactly these (atlas/tests/test_image.py fails when they disagree).
ATLAS_APPS = [
    "atlas",
    "pipelines",
    "quality",
    "compliance",
    "lineage",
    "privacy",
    "retention",
    "alerts",  # rules, the outbox of deliveries; the others contribute what to alert on (atlas.extensions)
    "demo",  # the demo data set and pipeline (manage.py load_demo): the top floor, nothing imports it
]

INSTALLED_APPS = [
    "atlas.admin_site.AtlasAdminConfig",  # django.contrib.admin with Atlas's site (its home: the overview)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",  # API tokens: SHA-512 digests with an expiry, never the key in clear (security block)
    "axes",  # failed logins counted and locked out (security block)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django_celery_beat",
    "simple_history",  # versions of every definition (atlas.history)
    *ATLAS_APPS,
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A stored API page for a token read, before sessions, CSRF, auth and DRF (atlas.api.pagecache).
    "atlas.api.pagecache.EarlyPageMiddleware",
    "atlas.metrics.EarlyMetricsMiddleware",  # a Prometheus scrape (bearer token): none of what follows is needed
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "atlas.api.pagecache.PageCacheMiddleware",  # stores API pages once the audit scopes below have closed
    "atlas.middleware.AuditActorMiddleware",  # audit: who acts in this request
    "atlas.middleware.ContributedScopesMiddleware",  # the apps' request scopes (compliance: PII read once)
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "atlas.urls"
WSGI_APPLICATION = "atlas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'atlas.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the admin read while a run writes its progress from another thread.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # A file (not memory) so threads and the lock tests see one database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_atlas.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0 if TESTING else 60))
    # A kept connection the server dropped (a restart, a failover) is checked and reopened at its
    # first use in a request, instead of failing that request with a 500.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The warehouse: ``duckdb:///path/file.duckdb`` or ``postgresql://...``.  Unset, it
# follows the default database when that is PostgreSQL (same server, schemas
# explore/chart/navigate) and is an embedded DuckDB file otherwise.
WAREHOUSE_URL = env.str("WAREHOUSE_URL", default="")
if not WAREHOUSE_URL and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    WAREHOUSE_URL = f"duckdb:///{VAR_DIR / 'warehouse.duckdb'}"
# More warehouse engines, by URL scheme: scheme=dotted.path.Backend (atlas.warehouse.registry).
ATLAS_WAREHOUSE_BACKENDS = env.dict("ATLAS_WAREHOUSE_BACKENDS", default={})

# Memory DuckDB may use (the embedded warehouse, and file parsing on PostgreSQL);
# beyond it DuckDB spills to ATLAS_VAR_DIR/tmp, so loads run in bounded memory.
ATLAS_DUCKDB_MEMORY_LIMIT = env.str("ATLAS_DUCKDB_MEMORY_LIMIT", default="1GB")
# The Spark warehouse (WAREHOUSE_URL=sc://...): the parts a publish replaced are dropped this long
# after, so a query planned before the swap still reads them (atlas/warehouse/spark.py).
ATLAS_SPARK_RETIRE_SECONDS = env.float("ATLAS_SPARK_RETIRE_SECONDS", default=300)
# A file Spark cannot read itself (a server elsewhere never sees the worker's files: object storage,
# uploads) is parsed in the worker and sent to Spark in Arrow chunks of this many rows (memory: one chunk).
ATLAS_SPARK_ARROW_ROWS = env.int("ATLAS_SPARK_ARROW_ROWS", default=200_000)
# The DuckDB that parses files for the PostgreSQL warehouse: its threads and memory
# (bounded so a bigger file takes no more memory, and PostgreSQL keeps a CPU).
ATLAS_INGEST_PARSER_THREADS = env.int("ATLAS_INGEST_PARSER_THREADS", default=1)
ATLAS_INGEST_PARSER_MEMORY_LIMIT = env.str("ATLAS_INGEST_PARSER_MEMORY_LIMIT", default="128MB")
# PostgreSQL warehouse, CSV without a quote character: PostgreSQL's COPY parses the file
# itself, cut at line starts into parts of at least ATLAS_INGEST_COPY_PART_BYTES loaded by
# up to ATLAS_INGEST_COPY_STREAMS connections side by side (atlas/warehouse/pgcopy.py).
# ATLAS_INGEST_DIRECT_COPY=false always parses with DuckDB.
ATLAS_INGEST_DIRECT_COPY = env.bool("ATLAS_INGEST_DIRECT_COPY", default=True)
ATLAS_INGEST_COPY_STREAMS = env.int("ATLAS_INGEST_COPY_STREAMS", default=min(4, os.cpu_count() or 1))
ATLAS_INGEST_COPY_PART_BYTES = env.int("ATLAS_INGEST_COPY_PART_BYTES", default=8 << 20)
# Which CSV files are fed to their direct COPY while the content scan reads them (one pass; the
# load kept once the scan allows it: pgcopy.Pipe): "auto" and "all" every file (a compressed one
# decompressed once, never written to disk), cut into segments of about
# ATLAS_INGEST_COPY_SEGMENT_BYTES of lines dealt in turn to up to ATLAS_INGEST_COPY_STREAMS
# connections side by side; "off": a file is scanned first, then loaded in parts (above).
ATLAS_INGEST_COPY_PIPE = env.str("ATLAS_INGEST_COPY_PIPE", default="auto").lower()
if ATLAS_INGEST_COPY_PIPE not in ("auto", "all", "off"):
    raise ImproperlyConfigured("ATLAS_INGEST_COPY_PIPE must be auto, all or off.")
ATLAS_INGEST_COPY_SEGMENT_BYTES = env.int("ATLAS_INGEST_COPY_SEGMENT_BYTES", default=2 << 20)

# Named databases that SQL sources may query: ATLAS_SOURCE_DATABASES=name=url,name2=url2
ATLAS_SOURCE_DATABASES = env.dict("ATLAS_SOURCE_DATABASES", default={})

# --- Runner ----------------------------------------------------------------
# Step hooks: the apps contribute them (atlas.extensions; by default every contributed
# hook runs, in their order: compliance, privacy, quality, alerts, lineage). Set, this list of
# dotted paths overrides which run and in which order, the way MIDDLEWARE does ("": none).
ATLAS_STEP_HOOKS: list[str] | None = env.list("ATLAS_STEP_HOOKS") if "ATLAS_STEP_HOOKS" in os.environ else None
# Time limits and cancel (README, "Time limits and cancel"): a step's soft limit cancels its
# warehouse statement, the hard one ends its connections (0: no limit; a step may set its own);
# the watchdog looks every ATLAS_WATCHDOG_POLL_SECONDS, and ends the connections of a step that
# did not stop ATLAS_STEP_STOP_GRACE_SECONDS after a cancel. Every statement Atlas sends to the
# warehouse stops after ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS (0: none; operator SQL has
# ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS).
ATLAS_STEP_TIMEOUT_SECONDS = env.float("ATLAS_STEP_TIMEOUT_SECONDS", default=6 * 3600)
ATLAS_STEP_HARD_TIMEOUT_SECONDS = env.float("ATLAS_STEP_HARD_TIMEOUT_SECONDS", default=6 * 3600 + 300)
ATLAS_STEP_STOP_GRACE_SECONDS = env.float("ATLAS_STEP_STOP_GRACE_SECONDS", default=30.0)
ATLAS_WATCHDOG_POLL_SECONDS = env.float("ATLAS_WATCHDOG_POLL_SECONDS", default=1.0)
ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS = env.float("ATLAS_WAREHOUSE_STATEMENT_TIMEOUT_SECONDS", default=3 * 3600)
# A Celery worker loads at its start what its first task would otherwise load inside a run (the PII
# analyzer: about 2 CPU s, in a background thread; atlas/worker_start.py).
ATLAS_WORKER_WARM_UP = env.bool("ATLAS_WORKER_WARM_UP", default=True)
# --- Run recovery (issue 14; README "When things fail") ---
# The executing worker marks its run alive this often; a run not marked for two intervals is
# lost (its worker was killed or cut off): the reaper, run by beat every interval, queues it
# again as its next attempt, which resumes at the first step that did not finish.
ATLAS_RUN_HEARTBEAT_SECONDS = env.float("ATLAS_RUN_HEARTBEAT_SECONDS", default=10.0)
ATLAS_RUN_LOST_SECONDS = env.float("ATLAS_RUN_LOST_SECONDS", default=2 * ATLAS_RUN_HEARTBEAT_SECONDS)
# Attempts per run (the first included); a run lost this many times is failed with the reason.
ATLAS_RUN_MAX_ATTEMPTS = env.int("ATLAS_RUN_MAX_ATTEMPTS", default=3)
# A queued run whose task no worker took within this time is sent again (a lost message, a
# broker restarted without persistence); one whose sending failed, at the next reaper pass.
ATLAS_RUN_REDISPATCH_SECONDS = env.float("ATLAS_RUN_REDISPATCH_SECONDS", default=45.0)
# A queued run sent this many times and never taken is failed with the reason.
ATLAS_RUN_MAX_DISPATCHES = env.int("ATLAS_RUN_MAX_DISPATCHES", default=5)
# Background tasks (atlas.background): the process running one marks it alive this often; a
# running task not marked for ATLAS_TASK_LOST_SECONDS is failed with the reason by the reaper
# (beat, every heartbeat interval): its worker was killed or cut off. It is not run again.
ATLAS_TASK_HEARTBEAT_SECONDS = env.float("ATLAS_TASK_HEARTBEAT_SECONDS", default=ATLAS_RUN_HEARTBEAT_SECONDS)
ATLAS_TASK_LOST_SECONDS = env.float("ATLAS_TASK_LOST_SECONDS", default=3 * ATLAS_TASK_HEARTBEAT_SECONDS)
# The janitor (beat, every this many seconds) drops the staging and part tables and the load
# directories of attempts that are over; directories older than ATLAS_JANITOR_TEMP_AGE_SECONDS
# whose process is gone go too.
ATLAS_JANITOR_SECONDS = env.float("ATLAS_JANITOR_SECONDS", default=120.0)
ATLAS_JANITOR_TEMP_AGE_SECONDS = env.float("ATLAS_JANITOR_TEMP_AGE_SECONDS", default=600.0)
# Step retries: a step failing on a transient error (lost connection, serialization failure,
# deadlock, lock timeout, broker error: never a failing check or an SQL error) is tried again
# up to this many more times, after base * 2**n seconds (capped), with jitter.
ATLAS_STEP_RETRIES = env.int("ATLAS_STEP_RETRIES", default=2)
ATLAS_STEP_RETRY_BASE_SECONDS = env.float("ATLAS_STEP_RETRY_BASE_SECONDS", default=2.0)
ATLAS_STEP_RETRY_MAX_SECONDS = env.float("ATLAS_STEP_RETRY_MAX_SECONDS", default=60.0)
# Up to date (issue 20, pipelines.freshness): a step whose inputs and definition are unchanged since
# its last good execution is skipped, its output kept. False: every step of every run executes.
ATLAS_SKIP_UP_TO_DATE = env.bool("ATLAS_SKIP_UP_TO_DATE", default=True)
# Backfills (pipelines.backfills): at most this many backfill runs queued or running at once over
# all pipelines (each pipeline runs one at a time anyway), so workers keep room for scheduled runs.
ATLAS_BACKFILL_MAX_ACTIVE_RUNS = env.int("ATLAS_BACKFILL_MAX_ACTIVE_RUNS", default=2)
# Longest line an ingest accepts; longer ones are quarantined with their reason.
ATLAS_INGEST_MAX_LINE_BYTES = env.int("ATLAS_INGEST_MAX_LINE_BYTES", default=2_000_000)
# How much of a rejected raw record is kept in quarantine.
ATLAS_QUARANTINE_RAW_CHARS = env.int("ATLAS_QUARANTINE_RAW_CHARS", default=65_536)
# Failing rows kept as a sample per failed quality check.
ATLAS_QUALITY_SAMPLE_ROWS = env.int("ATLAS_QUALITY_SAMPLE_ROWS", default=10)
# PostgreSQL: a checked table at least this big has its scan's self-contained subqueries (uniqueness,
# foreign keys) run beside it on other connections, from one snapshot (0: always; -1: never).
ATLAS_QUALITY_CONCURRENT_SCAN_BYTES = env.int("ATLAS_QUALITY_CONCURRENT_SCAN_BYTES", default=16 * 1024 * 1024)
# PostgreSQL: the work_mem of those connections' transactions ("" : the server's). A uniqueness count
# sorts its keys; at the default 4MB a million keys spill to temporary files (20 % more CPU than
# sorting in memory). Set for these statements only; a bigger table still spills, as before.
ATLAS_QUALITY_SCAN_WORK_MEM = env.str("ATLAS_QUALITY_SCAN_WORK_MEM", default="64MB")
ATLAS_HTTP_TIMEOUT_SECONDS = env.float("ATLAS_HTTP_TIMEOUT_SECONDS", default=30.0)
ATLAS_DEMO_DIR = Path(env.str("ATLAS_DEMO_DIR", default=str(VAR_DIR / "demo")))

# --- Audit log (atlas.audit) -------------------------------------------------
# Key of the HMAC-SHA256 chain of the audit log. It lives outside the database, so
# someone who can write the database cannot recompute the chain after an edit.
# Unset in production, the first audit write fails with a clear message (never a
# silent default); DEBUG and tests use a development key derived from SECRET_KEY and
# log a loud warning (ATLAS_AUDIT_KEY_IS_DEVELOPMENT).
ATLAS_AUDIT_KEY = env.str("ATLAS_AUDIT_KEY", default="")
ATLAS_AUDIT_KEY_IS_DEVELOPMENT = not ATLAS_AUDIT_KEY and (DEBUG or TESTING)
if ATLAS_AUDIT_KEY_IS_DEVELOPMENT:
    import hashlib as _audit_hashlib

    ATLAS_AUDIT_KEY = "dev-" + _audit_hashlib.sha256(
        f"atlas-audit-development-key:{SECRET_KEY}".encode()
    ).hexdigest()
# Rotation: move the current key to the end of ATLAS_AUDIT_PREVIOUS_KEYS (comma-separated,
# oldest first) and set a new ATLAS_AUDIT_KEY; old events keep verifying, new ones are
# chained with the new key, and a retired key cannot sign events after the rotation.
ATLAS_AUDIT_PREVIOUS_KEYS = env.list("ATLAS_AUDIT_PREVIOUS_KEYS", default=[])
# The anchor: every committed event appends "seq hash" to an append-only file outside
# the database (blank: ATLAS_VAR_DIR/audit/anchor.log), fsync'd after each line unless
# ATLAS_AUDIT_ANCHOR_FSYNC=false. ATLAS_AUDIT_ANCHOR_SINK swaps in another sink class.
ATLAS_AUDIT_ANCHOR_PATH = env.str("ATLAS_AUDIT_ANCHOR_PATH", default="")
ATLAS_AUDIT_ANCHOR_FSYNC = env.bool("ATLAS_AUDIT_ANCHOR_FSYNC", default=True)
ATLAS_AUDIT_ANCHOR_SINK = env.str(
    "ATLAS_AUDIT_ANCHOR_SINK", default="atlas.audit_anchor.FileAnchor"
)

# --- PII (compliance) -------------------------------------------------------
# Key of the HMAC-SHA256 pseudonyms written to Chart: the same key gives the same
# token in every table (joins still work); without it a token cannot be reversed.
# Unset in production, a step with a hash policy fails with a clear message (never a
# silent default key); DEBUG and tests use a development key derived from SECRET_KEY,
# and every step that hashes with it logs a loud warning (PII_HASH_KEY_IS_DEVELOPMENT).
PII_HASH_KEY = env.str("PII_HASH_KEY", default="")
PII_HASH_KEY_IS_DEVELOPMENT = not PII_HASH_KEY and (DEBUG or TESTING)
if PII_HASH_KEY_IS_DEVELOPMENT:
    import hashlib as _hashlib

    PII_HASH_KEY = "dev-" + _hashlib.sha256(f"atlas-pii-development-key:{SECRET_KEY}".encode()).hexdigest()
# Keys the pseudonyms were made with before the last rotation (comma-separated, oldest first):
# data-subject searches and the erasure proof also look for the tokens they made.
PII_HASH_PREVIOUS_KEYS = env.list("PII_HASH_PREVIOUS_KEYS", default=[])
# An installed spaCy model to add NER to PII detection (e.g. en_core_web_sm); blank: none.
PII_SPACY_MODEL = env.str("PII_SPACY_MODEL", default="")
PII_SAMPLE_SIZE = env.int("PII_SAMPLE_SIZE", default=200)  # distinct values per column
PII_SCAN_ROWS = env.int("PII_SCAN_ROWS", default=100_000)  # larger tables are row-sampled first
PII_MIN_SHARE = env.float("PII_MIN_SHARE", default=0.6)  # share of values that must match
PII_MIN_SCORE = env.float("PII_MIN_SCORE", default=0.35)  # mean recognizer score of the matches
PII_SCAN_AFTER_INGEST = env.bool("PII_SCAN_AFTER_INGEST", default=True)
# Free-text anonymisation (an anonymise_text policy): this many distinct values or more are analysed in
# ATLAS_PII_TEXT_PROCESSES spawned processes (0: the CPUs; at most 4), fewer in the worker (compliance/free_text.py).
ATLAS_PII_TEXT_PARALLEL_MIN = env.int("ATLAS_PII_TEXT_PARALLEL_MIN", default=50_000)
ATLAS_PII_TEXT_PROCESSES = env.int("ATLAS_PII_TEXT_PROCESSES", default=0)
# Privacy by default (GDPR Art. 25): a finding not yet reviewed whose confidence is at least this gets
# its entity's default policy on Chart until a steward decides (1.1 turns it off). The column name
# alone gives 0.4, so the default asks for evidence in the values.
PII_DEFAULT_PROTECT_CONFIDENCE = env.float("PII_DEFAULT_PROTECT_CONFIDENCE", default=0.5)
# Who may not see PII gets masked values from every page that shows warehouse rows: by the
# row masker the compliance app contributes (atlas.extensions, "row_masker").
# The policy a confirmed finding proposes, per entity type (action, options, reason).
PII_DEFAULT_POLICIES: dict[str, dict] = {
    "EMAIL_ADDRESS": {"action": "hash"},
    "PHONE_NUMBER": {"action": "mask", "options": {"keep_last": 4}},
    "PERSON": {"action": "redact"},
    "DATE_OF_BIRTH": {"action": "generalise", "options": {"to": "year"}},
    "STREET_ADDRESS": {"action": "redact"},
    "POSTCODE": {"action": "generalise", "options": {"to": "prefix", "chars": 3}},
    "LOCATION": {"action": "keep", "reason": "City-level location is coarse; kept for regional reporting."},
    "CREDIT_CARD": {"action": "mask", "options": {"keep_last": 4}},
    "IBAN_CODE": {"action": "mask", "options": {"keep_last": 4}},
    "IP_ADDRESS": {"action": "hash"},
    "*": {"action": "hash"},
}

# --- Data-subject requests (privacy) ------------------------------------------
# Days from receipt to the legal deadline of a request (GDPR: one month).
ATLAS_DSR_DUE_DAYS = env.int("ATLAS_DSR_DUE_DAYS", default=30)
# Hours an access export (zip) stays downloadable before the beat task deletes it.
ATLAS_DSR_EXPORT_TTL_HOURS = env.int("ATLAS_DSR_EXPORT_TTL_HOURS", default=72)
# Identifier expansion (found keys -> more keys) stops after this many rounds / identifiers.
ATLAS_DSR_MAX_ROUNDS = env.int("ATLAS_DSR_MAX_ROUNDS", default=5)
ATLAS_DSR_MAX_IDENTIFIERS = env.int("ATLAS_DSR_MAX_IDENTIFIERS", default=10_000)
# A value found by expansion that goes with more than this many different subjects in one table
# (an info@ mailbox, a switchboard number) is shared: never followed as an identifier.
ATLAS_DSR_SHARED_VALUE_SUBJECTS = env.int("ATLAS_DSR_SHARED_VALUE_SUBJECTS", default=5)

# --- Retention (retention) ----------------------------------------------------
# When the daily retention job runs (TIME_ZONE): expired rows deleted, partitions dropped.
ATLAS_RETENTION_HOUR = env.int("ATLAS_RETENTION_HOUR", default=3)
ATLAS_RETENTION_MINUTE = env.int("ATLAS_RETENTION_MINUTE", default=30)

# --- Bounded metadata (atlas.housekeeping; daily, and `manage.py prune_metadata`) ------------
# Days each kind of record is kept (0: for ever). The ATLAS_KEEP_LATEST most recent of each pipeline
# or dataset are kept whatever their age; the audit log, data-subject requests, erasure records and
# retention runs are evidence and are never pruned.
ATLAS_KEEP_LATEST = env.int("ATLAS_KEEP_LATEST", default=20)
ATLAS_KEEP_RUN_DAYS = env.int("ATLAS_KEEP_RUN_DAYS", default=90)  # pipeline runs, their step runs
ATLAS_KEEP_CHECK_RUN_DAYS = env.int("ATLAS_KEEP_CHECK_RUN_DAYS", default=180)  # check runs, their results
ATLAS_KEEP_PII_SCAN_DAYS = env.int("ATLAS_KEEP_PII_SCAN_DAYS", default=180)  # PII scans (findings stay)
ATLAS_KEEP_LINEAGE_EVENT_DAYS = env.int("ATLAS_KEEP_LINEAGE_EVENT_DAYS", default=30)  # emitted: delivered or given up
ATLAS_KEEP_RECEIVED_LINEAGE_DAYS = env.int("ATLAS_KEEP_RECEIVED_LINEAGE_DAYS", default=90)  # received from others

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Redis: kombu's transport, mended so a worker reconnects after Redis restarts instead of exiting (atlas.broker).
if CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "atlas.broker:Transport"
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
# Eager mode: "thread" runs a triggered pipeline in a background thread of the
# web process (the admin returns at once and shows progress); "inline" runs it
# before the trigger returns (tests, scripts).
ATLAS_EAGER_MODE = env.str("ATLAS_EAGER_MODE", default="inline" if TESTING else "thread")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
# What recovery needs from Celery (issue 14). The run's own state is the truth: a task only says
# "execute run N", and executing is idempotent (a conditional claim; a run is resumed only when
# its heartbeat is older than ATLAS_RUN_LOST_SECONDS), so a message delivered twice does no harm.
# acks_late: the message is acknowledged after the task, so a worker killed mid-run leaves it
# unacknowledged and the broker delivers it again.
CELERY_TASK_ACKS_LATE = True
# reject_on_worker_lost: a pool child killed (SIGKILL, OOM) requeues its message at once instead
# of acknowledging it; the redelivered task waits for the lost heartbeat and resumes the run.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# prefetch 1: a worker reserves only the message it executes; long runs are not held hostage by
# a busy worker while another is idle (and a killed worker takes one message down, not many).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis: an unacknowledged message (its whole worker killed) comes back after visibility_timeout.
# Recovery does not wait for it (the reaper resumes a lost run within about two heartbeats), so it
# only needs to be longer than the longest run, or Redis hands a live run's message to a second
# worker (harmless, as said, but wasteful). Connecting gives up quickly, so a trigger while the
# broker is down answers at once with a clear error.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("ATLAS_BROKER_VISIBILITY_TIMEOUT", default=6 * 3600),
    "socket_connect_timeout": 3,
    # A worker's free slot takes from its queues in the order they are listed (CELERY_TASK_QUEUES, or
    # -Q), not in turn: beat's triggers (listed first) never wait behind queued runs (README "200
    # pipelines due at once").
    "queue_order_strategy": "priority",
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's DatabaseScheduler; pipelines' own entries are triggered in beat itself (pipelines.beat).
CELERY_BEAT_SCHEDULER = "pipelines.beat:Scheduler"
CELERY_BEAT_SCHEDULE = {
    # Runs whose worker died are resumed (or failed with the reason); queued runs no worker took are sent again.
    "atlas: reap stale runs": {"task": "pipelines.reap_stale_runs", "schedule": ATLAS_RUN_HEARTBEAT_SECONDS},
    # Background tasks whose process died are failed with the reason (not left "running" for ever).
    "atlas: reap lost background tasks": {"task": "atlas.reap_lost_tasks", "schedule": ATLAS_TASK_HEARTBEAT_SECONDS},
    # What dead attempts left (staging and part tables, load directories) is removed.
    "atlas: clean up after dead attempts": {"task": "pipelines.clean_up_attempts", "schedule": ATLAS_JANITOR_SECONDS},
    # Backfills whose next interval could not start when a run ended (busy pipeline, lost callback).
    "atlas: advance backfills": {"task": "pipelines.advance_backfills", "schedule": 60.0},
    # Freshness checks also run on their own, between pipeline runs.
    "quality: check freshness": {
        "task": "quality.check_freshness",
        "schedule": env.float("ATLAS_FRESHNESS_INTERVAL_SECONDS", default=900.0),
    },
    # Emitted OpenLineage events waiting in the outbox go to OPENLINEAGE_URL.
    "lineage: deliver OpenLineage events": {"task": "lineage.deliver_events", "schedule": 30.0},
    # Alerts: the contributed conditions (freshness, overdue requests, findings to review), then the outbox.
    "alerts: evaluate conditions": {
        "task": "alerts.evaluate_conditions",
        "schedule": env.float("ATLAS_ALERTS_EVALUATE_INTERVAL_SECONDS", default=60.0),
    },
    "alerts: deliver": {
        "task": "alerts.deliver", "schedule": env.float("ATLAS_ALERTS_DELIVER_INTERVAL_SECONDS", default=15.0),
    },
    # Data-subject access exports past their expiry are deleted (files and records kept as expired).
    "privacy: delete expired DSR exports": {"task": "privacy.purge_expired_exports", "schedule": 3600.0},
    # Run history, check results, scans and delivered lineage events past their keep period (atlas.housekeeping).
    "atlas: prune metadata": {
        "task": "atlas.prune_metadata",
        "schedule": crontab(minute=ATLAS_RETENTION_MINUTE, hour=(ATLAS_RETENTION_HOUR + 1) % 24),
    },
    # Rows past their dataset's retention are deleted (partitions dropped), daily.
    "retention: apply retention policies": {
        "task": "retention.apply_all",
        "schedule": crontab(minute=ATLAS_RETENTION_MINUTE, hour=ATLAS_RETENTION_HOUR),
    },
}
# Queues (README "When things fail", "200 pipelines due at once"): runs on ATLAS_PIPELINE_QUEUE.
# Atlas's beat scheduler triggers pipelines itself (pipelines.beat); a trigger sent as a task (another
# scheduler, a script) goes to a queue of its own, listed first: a worker's free slot takes it
# (milliseconds: create the run, send its task) before any queued run (the transport's "priority"
# order, above). A worker started without -Q consumes every queue listed here, in this order.
ATLAS_PIPELINE_QUEUE = env.str("ATLAS_PIPELINE_QUEUE", default="celery")
ATLAS_TRIGGER_QUEUE = env.str("ATLAS_TRIGGER_QUEUE", default="atlas.triggers")
CELERY_TASK_DEFAULT_QUEUE = "celery"
# The PII scan an ingest queues (compliance.scan_tasks) is a task of its own on ATLAS_PII_SCAN_QUEUE
# (compliance.run_pii_scan), so another worker classifies while the run goes on; listed last (a free
# slot takes runs first: the gate that needs a scan still queued runs it itself). A refine gate waits
# at most ATLAS_PII_SCAN_WAIT_SECONDS for a scan another worker runs (then the step fails, with the
# reason); a scan worker marks its scan alive every ATLAS_PII_SCAN_HEARTBEAT_SECONDS, and one silent
# for ATLAS_PII_SCAN_LOST_SECONDS is lost: failed with the reason and queued again (README "PII scans").
ATLAS_PII_SCAN_QUEUE = env.str("ATLAS_PII_SCAN_QUEUE", default="atlas.pii_scans")
ATLAS_PII_SCAN_WAIT_SECONDS = env.float("ATLAS_PII_SCAN_WAIT_SECONDS", default=900.0)
ATLAS_PII_SCAN_HEARTBEAT_SECONDS = env.float("ATLAS_PII_SCAN_HEARTBEAT_SECONDS", default=ATLAS_RUN_HEARTBEAT_SECONDS)
ATLAS_PII_SCAN_POLL_SECONDS = env.float("ATLAS_PII_SCAN_POLL_SECONDS", default=0.25)
ATLAS_PII_SCAN_LOST_SECONDS = env.float("ATLAS_PII_SCAN_LOST_SECONDS", default=3 * ATLAS_PII_SCAN_HEARTBEAT_SECONDS)
CELERY_BEAT_SCHEDULE["compliance: recover lost PII scans"] = {
    "task": "compliance.reap_lost_scans", "schedule": ATLAS_PII_SCAN_HEARTBEAT_SECONDS,
}
CELERY_TASK_QUEUES = [Queue(name) for name in dict.fromkeys([ATLAS_TRIGGER_QUEUE, CELERY_TASK_DEFAULT_QUEUE,
                                                             ATLAS_PIPELINE_QUEUE, ATLAS_PII_SCAN_QUEUE])]
CELERY_TASK_ROUTES = {
    "pipelines.trigger_scheduled_run": {"queue": ATLAS_TRIGGER_QUEUE},
    "pipelines.execute_run": {"queue": ATLAS_PIPELINE_QUEUE},
    "compliance.run_pii_scan": {"queue": ATLAS_PII_SCAN_QUEUE},
}

# --- Lineage (OpenLineage) ---------------------------------------------------
# Where emitted events are delivered (Marquez: http://host:5000); unset, they wait in the outbox.
OPENLINEAGE_URL = env.str("OPENLINEAGE_URL", default="")
OPENLINEAGE_ENDPOINT = env.str("OPENLINEAGE_ENDPOINT", default="api/v1/lineage")
OPENLINEAGE_API_KEY = env.str("OPENLINEAGE_API_KEY", default="")
# Namespace of Atlas's jobs and warehouse datasets in the events.
OPENLINEAGE_NAMESPACE = env.str("OPENLINEAGE_NAMESPACE", default="atlas")
# Retries: exponential backoff from BASE up to MAX seconds; after MAX_ATTEMPTS the event is failed (kept, retryable).
# Without an endpoint, emitted events are not kept (nothing would ever deliver them; the lineage graph is
# kept apart, in LineageNode/LineageEdge). True keeps them anyway, e.g. to read them in the admin.
OPENLINEAGE_KEEP_WITHOUT_ENDPOINT = env.bool("OPENLINEAGE_KEEP_WITHOUT_ENDPOINT", default=False)
OPENLINEAGE_MAX_ATTEMPTS = env.int("OPENLINEAGE_MAX_ATTEMPTS", default=12)
OPENLINEAGE_RETRY_BASE_SECONDS = env.float("OPENLINEAGE_RETRY_BASE_SECONDS", default=10.0)
OPENLINEAGE_RETRY_MAX_SECONDS = env.float("OPENLINEAGE_RETRY_MAX_SECONDS", default=3600.0)

# --- Alerts (alerts/) ----------------------------------------------------------
# Links in alerts point into the admin at this base URL (e.g. https://atlas.example.com); unset, paths only.
ATLAS_EXTERNAL_URL = env.str("ATLAS_EXTERNAL_URL", default="")
# Deliveries: exponential backoff with jitter from BASE up to MAX seconds; after MAX_ATTEMPTS a delivery
# is failed (kept with its last error, retryable from the admin and the API).
ATLAS_ALERTS_MAX_ATTEMPTS = env.int("ATLAS_ALERTS_MAX_ATTEMPTS", default=8)
ATLAS_ALERTS_RETRY_BASE_SECONDS = env.float("ATLAS_ALERTS_RETRY_BASE_SECONDS", default=30.0)
ATLAS_ALERTS_RETRY_MAX_SECONDS = env.float("ATLAS_ALERTS_RETRY_MAX_SECONDS", default=3600.0)
ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS = env.float("ATLAS_ALERTS_HTTP_TIMEOUT_SECONDS", default=10.0)
ATLAS_ALERTS_EMAIL_TIMEOUT_SECONDS = env.float("ATLAS_ALERTS_EMAIL_TIMEOUT_SECONDS", default=10.0)
ATLAS_ALERTS_FROM_EMAIL = env.str("ATLAS_ALERTS_FROM_EMAIL", default="atlas@localhost")
# E-mail alerts use Django's mail backend: EMAIL_URL=smtp://user:password@host:587/?tls=True (or
# submission://...); unset, messages are printed to the worker's log (console backend).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))

# --- i18n, static ----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# The API's common pieces (auth, permissions, errors, paging, throttling) live in atlas/api/.
REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["atlas.api.permissions.ModelPermissions"],
    # Token first: an anonymous request is told how to authenticate (401 + WWW-Authenticate).
    # Tokens are knox's: only a digest is stored, and each has an expiry (security block).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        # django-filter and DRF's ordering, strict: a value the schema refuses is a 400 (atlas.api.filters).
        "atlas.api.filters.FilterBackend",
        "atlas.api.filters.OrderingFilter",
    ],
    # JSON bodies bounded in depth (atlas.api.parsers); forms for the browsable API.
    "DEFAULT_PARSER_CLASSES": [
        "atlas.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # The browsable API without the catch-all 404 among its breadcrumbs (atlas.api.renderers).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "atlas.api.renderers.BrowsableAPIRenderer"],
    "DEFAULT_PAGINATION_CLASS": "atlas.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "atlas.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "atlas.api.exceptions.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "atlas.api.throttling.AnonRateThrottle",
        "atlas.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("ATLAS_API_THROTTLE_ANON", default="100000/day" if TESTING else "60/min"),
        "user": env.str("ATLAS_API_THROTTLE_USER", default="100000/day" if TESTING else "1200/min"),
        "run": env.str("ATLAS_API_THROTTLE_RUN", default="100000/day" if TESTING else "30/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Atlas API",
    "DESCRIPTION": "Sources, datasets, pipelines and their runs. Every error has the body "
    '{"error": {"code", "message", "detail"}}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The API's bodies are JSON: forms stay for the browsable API but are not the documented
    # contract (a form cannot carry null, so a nullable number or reference in a form is refused).
    "PARSER_WHITELIST": ["atlas.api.parsers.BoundedJSONParser"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "atlas.api.schema.text_without_nul",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "pipelines.models.RunStatus",
        "PipelineRunStatusEnum": "pipelines.models.PIPELINE_RUN_STATUSES",
        "SourceKindEnum": "pipelines.models.Source.Kind",
        "StepKindEnum": "pipelines.models.Step.Kind",
        "CheckKindEnum": "quality.models.CheckKind",
        "CheckRunTriggerEnum": "quality.models.CheckRun.Trigger",
        "PolicyActionEnum": "compliance.models.ColumnPolicy.Action",
        "RunTriggerEnum": "pipelines.models.Trigger",
        "RetentionActionEnum": "retention.models.RetentionPolicy.Action",
        "SubjectRequestKindEnum": "privacy.models.DataSubjectRequest.Kind",
        "AlertSeverityEnum": "alerts.models.AlertSeverity",
        "CheckSeverityEnum": "quality.models.Severity",
        "BackfillStatusEnum": "pipelines.models.Backfill.Status",
        "BackfillIntervalStatusEnum": "pipelines.models.BackfillInterval.Status",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Security: web hardening, logins, API tokens, shared cache, roles at every door -------------
# Production (DEBUG off, outside tests) is secure by default; every setting below can be set
# from the environment, and `manage.py check --deploy` is clean with the production environment
# the README documents. DEBUG (make demo, http://127.0.0.1:8000) and tests keep plain http.
SECURE_BY_DEFAULT = not (DEBUG or TESTING)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=SECURE_BY_DEFAULT)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SECURE_BY_DEFAULT)
SESSION_COOKIE_HTTPONLY = env.bool("SESSION_COOKIE_HTTPONLY", default=True)
SESSION_COOKIE_SAMESITE = env.str("SESSION_COOKIE_SAMESITE", default="Lax")
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)  # a working day, not Django's two weeks
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SECURE_BY_DEFAULT)
# Orchestrators' probes may speak plain http (regexes of the path without its leading slash);
# /metrics is not exempt by default: its bearer token must not cross the network in clear.
SECURE_REDIRECT_EXEMPT = env.list("SECURE_REDIRECT_EXEMPT", default=[r"^healthz$", r"^readyz$"])
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if SECURE_BY_DEFAULT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=SECURE_BY_DEFAULT)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=SECURE_BY_DEFAULT)
# Opt-in: only behind a proxy that sets the header itself (and strips a client's), e.g.
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not _proxy_ssl_header[0].startswith("HTTP_"):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is 'HTTP_<HEADER>,<value>', e.g. HTTP_X_FORWARDED_PROTO,https."
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])
SECURE_CONTENT_TYPE_NOSNIFF = env.bool("SECURE_CONTENT_TYPE_NOSNIFF", default=True)
SECURE_REFERRER_POLICY = env.str("SECURE_REFERRER_POLICY", default="same-origin")
SECURE_CROSS_ORIGIN_OPENER_POLICY = env.str("SECURE_CROSS_ORIGIN_OPENER_POLICY", default="same-origin")
X_FRAME_OPTIONS = env.str("X_FRAME_OPTIONS", default="DENY")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("ATLAS_PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Failed logins (the admin's form, HTTP Basic on the API) are counted by django-axes in the
# database, so every web process shares the count; after ATLAS_LOGIN_FAILURE_LIMIT failures
# of one username from one address, that pair is locked out (429) for the cool-off, even with
# the right password. The same user from another address is not locked (no lock-out of a
# user by a stranger); ATLAS_LOGIN_LOCKOUT=ip adds a lock per address whatever the username.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
MIDDLEWARE.append("atlas.api.auth.DrfLockoutMiddleware")  # inside axes: DRF's lock-outs reach it
AXES_ENABLED = env.bool("ATLAS_LOGIN_THROTTLE", default=True)
AXES_FAILURE_LIMIT = env.int("ATLAS_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("ATLAS_LOGIN_COOLOFF_HOURS", default=0.25)  # hours
AXES_LOCKOUT_PARAMETERS: list = [["username", "ip_address"]]
if env.str("ATLAS_LOGIN_LOCKOUT", default="user_ip") == "ip":
    AXES_LOCKOUT_PARAMETERS.append("ip_address")
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "atlas.api.auth.lockout_response"
# Behind N trusted proxies, the client address is the N-th from the right of X-Forwarded-For.
ATLAS_TRUSTED_PROXY_COUNT = env.int("ATLAS_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "atlas.api.auth.client_ip"
# axes announces itself at every start (every manage.py command): keep its warnings only.
LOGGING.setdefault("loggers", {})["axes.apps"] = {"level": "WARNING"}

# API tokens (django-rest-knox): only a SHA-512 digest and a 15-character lookup prefix are
# stored; every token expires (`manage.py create_api_token USER --days N`, at most the max).
ATLAS_API_TOKEN_DAYS = env.int("ATLAS_API_TOKEN_DAYS", default=90)
ATLAS_API_TOKEN_MAX_DAYS = env.int("ATLAS_API_TOKEN_MAX_DAYS", default=365)
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=ATLAS_API_TOKEN_DAYS),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# One cache for every process: DRF's throttle counts live there, so a limit is a limit
# whatever the number of web workers. CACHE_URL=redis://127.0.0.1:6379/1 in production
# (Django's own RedisCache); unset, a per-process memory cache (the embedded mode).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    CACHES["default"]["BACKEND"] = "django.core.cache.backends.redis.RedisCache"
# Rendered API pages cached until the next write (atlas.api.pagecache): "auto" turns it on with a
# cache every process shares (Redis), "on"/"off" force it.
ATLAS_API_PAGE_CACHE = env.str("ATLAS_API_PAGE_CACHE", default="auto")
# /metrics answers a snapshot at most this many seconds old (plus one refresh's duration; the response's
# Age header says how old): the database is read once per period by one process, never per scrape
# (atlas.metrics.atlas_snapshot). 0: every scrape reads it (the tests' default: a write shows at once).
ATLAS_METRICS_CACHE_SECONDS = env.float("ATLAS_METRICS_CACHE_SECONDS", default=0.0 if TESTING else 5.0)

# /metrics: a Prometheus scrape sends "Authorization: Bearer <ATLAS_METRICS_TOKEN>" (compared
# in constant time); otherwise a logged-in staff user. Unset: staff users only.
ATLAS_METRICS_TOKEN = env.str("ATLAS_METRICS_TOKEN", default="")

# Who may schedule, enable or run a Celery task from the periodic-tasks admin: the permission
# that runs the task anywhere else. An allowlist: a task not named here is the superuser's.
ATLAS_TASK_PERMISSIONS: dict[str, str] = {
    "pipelines.trigger_scheduled_run": "pipelines.change_pipeline",
    "pipelines.execute_run": "pipelines.change_pipeline",
    "pipelines.reap_stale_runs": "pipelines.change_pipeline",
    "pipelines.clean_up_attempts": "pipelines.change_pipeline",
    "pipelines.advance_backfills": "pipelines.change_pipeline",
    "atlas.prune_metadata": "pipelines.delete_pipelinerun",
    # Runs a recorded background task by id (atlas.background): never a schedule's, no role grants it.
    "atlas.run_background_task": "atlas.change_backgroundtask",
    "atlas.reap_lost_tasks": "atlas.change_backgroundtask",
    "quality.check_freshness": "quality.change_check",
    "quality.reprocess_quarantine": "quality.change_check",
    "lineage.deliver_events": "pipelines.change_pipeline",
    "privacy.purge_expired_exports": "privacy.process_datasubjectrequest",
    "retention.apply_all": "retention.apply_retention",
    "alerts.evaluate_conditions": "alerts.change_alertrule",
    "alerts.deliver": "alerts.change_alertrule",
    # Post-ingest PII scans on workers of their own (compliance.tasks): they write findings.
    "compliance.run_pii_scan": "compliance.change_piiscan",
    "compliance.reap_lost_scans": "compliance.change_piiscan",
    **env.dict("ATLAS_TASK_PERMISSIONS", default={}),
}

# --- Sources confined (pipelines.confinement, pipelines.netguard, atlas.request_limits) -------
# Path and glob sources read only files inside these directories, after links and '..'
# are resolved; a relative location is taken relative to the first. Never VAR_DIR itself
# (it holds the databases). The DuckDB lock-down uses the same list.
ATLAS_DATA_ROOTS: list = env.list(
    "ATLAS_DATA_ROOTS", default=[str(VAR_DIR / "data"), str(ATLAS_DEMO_DIR), str(MEDIA_ROOT / "sources")]
)
# URL sources reach only public addresses over http(s), checked at connect time (after DNS,
# on every redirect). An internal host must be allowed explicitly: by network (CIDRs, e.g.
# 10.1.2.0/24) or by host name (every address it resolves to is then accepted).
ATLAS_URL_ALLOWED_NETWORKS: list = env.list("ATLAS_URL_ALLOWED_NETWORKS", default=[])
ATLAS_URL_ALLOWED_HOSTS: list = env.list("ATLAS_URL_ALLOWED_HOSTS", default=[])
ATLAS_URL_MAX_BYTES = env.int("ATLAS_URL_MAX_BYTES", default=1 << 30)
ATLAS_URL_MAX_REDIRECTS = env.int("ATLAS_URL_MAX_REDIRECTS", default=5)
ATLAS_URL_TOTAL_TIMEOUT_SECONDS = env.float("ATLAS_URL_TOTAL_TIMEOUT_SECONDS", default=3600.0)
# CA bundle that https URL sources are verified against (blank: certifi's public CAs).
ATLAS_URL_CA_BUNDLE = env.str("ATLAS_URL_CA_BUNDLE", default="")
# Secrets of URL sources are references env:NAME in their headers/params options, resolved
# at fetch time; only variables whose name starts with this prefix may be referenced.
ATLAS_SOURCE_SECRET_PREFIX = env.str("ATLAS_SOURCE_SECRET_PREFIX", default="ATLAS_SOURCE_SECRET_")
# Object storage sources (pipelines/objectstore.py): AWS's endpoints, or one listed here
# (MinIO, Ceph, ...: e.g. https://minio.internal:9000); at most this many objects per source.
ATLAS_S3_ENDPOINTS: list = env.list("ATLAS_S3_ENDPOINTS", default=[])
ATLAS_S3_MAX_OBJECTS = env.int("ATLAS_S3_MAX_OBJECTS", default=10_000)
# JSON API sources (pipelines/httpapi.py): retries on 429/5xx with jittered exponential
# backoff, Retry-After honoured up to a ceiling; pages bounded in number and size.
ATLAS_API_MAX_RETRIES = env.int("ATLAS_API_MAX_RETRIES", default=5)
ATLAS_API_BACKOFF_SECONDS = env.float("ATLAS_API_BACKOFF_SECONDS", default=1.0)
ATLAS_API_MAX_BACKOFF_SECONDS = env.float("ATLAS_API_MAX_BACKOFF_SECONDS", default=60.0)
ATLAS_API_MAX_RETRY_AFTER_SECONDS = env.float("ATLAS_API_MAX_RETRY_AFTER_SECONDS", default=300.0)
ATLAS_API_MAX_PAGES = env.int("ATLAS_API_MAX_PAGES", default=10_000)
ATLAS_API_MAX_PAGE_BYTES = env.int("ATLAS_API_MAX_PAGE_BYTES", default=64 * 1024 * 1024)
# Uploads: refused while they stream once a file passes ATLAS_UPLOAD_MAX_BYTES; a request
# whose declared size is beyond what any allowed form could be is refused (413) unread.
ATLAS_UPLOAD_MAX_BYTES = env.int("ATLAS_UPLOAD_MAX_BYTES", default=100 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)  # non-file body
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)  # then to disk
FILE_UPLOAD_HANDLERS = [
    "atlas.request_limits.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
MIDDLEWARE.insert(1, "atlas.request_limits.RequestSizeLimitMiddleware")

# --- Warehouse least privilege (atlas.warehouse.privileges; `manage.py warehouse_roles`) -------
# PostgreSQL: operator SQL (refine/aggregate SELECTs, checks, previews) runs on a connection of its
# own, logged in as the role of the layer it produces or checks: ATLAS_WAREHOUSE_SQL_ROLE + "_explore"
# (reads explore), "_chart" (explore, chart), "_navigate" (chart, navigate). It writes only the
# staging table granted for its statement and cannot reach the atlas schema (PII key), public
# (Django) or any other role. ATLAS_WAREHOUSE_KEY_ROLE owns the PII key table; the owner (blank: the
# role of the warehouse URL) is its member. The password (all three roles) is for pg_hba methods
# that ask for one.
ATLAS_WAREHOUSE_OWNER_ROLE = env.str("ATLAS_WAREHOUSE_OWNER_ROLE", default="")
ATLAS_WAREHOUSE_SQL_ROLE = env.str("ATLAS_WAREHOUSE_SQL_ROLE", default="atlas_sql")
ATLAS_WAREHOUSE_SQL_PASSWORD = env.str("ATLAS_WAREHOUSE_SQL_PASSWORD", default="")
ATLAS_WAREHOUSE_KEY_ROLE = env.str("ATLAS_WAREHOUSE_KEY_ROLE", default="atlas_key")
# Longest an operator's statement may run (both engines), then it is stopped and the step fails.
ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS = env.float("ATLAS_SQL_STATEMENT_TIMEOUT_SECONDS", default=600.0)
