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
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

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

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django_celery_beat",
    "atlas",
    "pipelines",
    "quality",
    "compliance",
    "lineage",
    "privacy",
    "retention",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The warehouse: ``duckdb:///path/file.duckdb`` or ``postgresql://...``.  Unset, it
# follows the default database when that is PostgreSQL (same server, schemas
# explore/chart/navigate) and is an embedded DuckDB file otherwise.
WAREHOUSE_URL = env.str("WAREHOUSE_URL", default="")
if not WAREHOUSE_URL and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    WAREHOUSE_URL = f"duckdb:///{VAR_DIR / 'warehouse.duckdb'}"

# Memory DuckDB may use (the embedded warehouse, and file parsing on PostgreSQL);
# beyond it DuckDB spills to ATLAS_VAR_DIR/tmp, so loads run in bounded memory.
ATLAS_DUCKDB_MEMORY_LIMIT = env.str("ATLAS_DUCKDB_MEMORY_LIMIT", default="1GB")
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

# Named databases that SQL sources may query: ATLAS_SOURCE_DATABASES=name=url,name2=url2
ATLAS_SOURCE_DATABASES = env.dict("ATLAS_SOURCE_DATABASES", default={})

# --- Runner ----------------------------------------------------------------
# Step hooks, called in order at prepare, staged, published and failed — the way
# MIDDLEWARE works — so quality, compliance and lineage plug into the runner
# without the runner importing them.
ATLAS_STEP_HOOKS: list[str] = env.list(
    "ATLAS_STEP_HOOKS",
    default=[
        "compliance.hooks.PiiHook",
        "privacy.hooks.TombstoneGuard",
        "quality.hooks.QualityGate",
        "lineage.hooks.LineageHook",
    ],
)
# A run whose heartbeat is older than this is considered lost (killed worker).
ATLAS_RUN_STALE_SECONDS = env.int("ATLAS_RUN_STALE_SECONDS", default=3600)
# Longest line an ingest accepts; longer ones are quarantined with their reason.
ATLAS_INGEST_MAX_LINE_BYTES = env.int("ATLAS_INGEST_MAX_LINE_BYTES", default=2_000_000)
# How much of a rejected raw record is kept in quarantine.
ATLAS_QUARANTINE_RAW_CHARS = env.int("ATLAS_QUARANTINE_RAW_CHARS", default=65_536)
# Failing rows kept as a sample per failed quality check.
ATLAS_QUALITY_SAMPLE_ROWS = env.int("ATLAS_QUALITY_SAMPLE_ROWS", default=10)
ATLAS_HTTP_TIMEOUT_SECONDS = env.float("ATLAS_HTTP_TIMEOUT_SECONDS", default=30.0)
ATLAS_DEMO_DIR = Path(env.str("ATLAS_DEMO_DIR", default=str(VAR_DIR / "demo")))

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
# An installed spaCy model to add NER to PII detection (e.g. en_core_web_sm); blank: none.
PII_SPACY_MODEL = env.str("PII_SPACY_MODEL", default="")
PII_SAMPLE_SIZE = env.int("PII_SAMPLE_SIZE", default=200)  # distinct values per column
PII_SCAN_ROWS = env.int("PII_SCAN_ROWS", default=100_000)  # larger tables are row-sampled first
PII_MIN_SHARE = env.float("PII_MIN_SHARE", default=0.6)  # share of values that must match
PII_MIN_SCORE = env.float("PII_MIN_SCORE", default=0.35)  # mean recognizer score of the matches
PII_SCAN_AFTER_INGEST = env.bool("PII_SCAN_AFTER_INGEST", default=True)
# Who may not see PII gets masked values from every page that shows warehouse rows.
ATLAS_ROW_MASKER = env.str("ATLAS_ROW_MASKER", default="compliance.masking.mask_rows")
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

# --- Retention (retention) ----------------------------------------------------
# When the daily retention job runs (TIME_ZONE): expired rows deleted, partitions dropped.
ATLAS_RETENTION_HOUR = env.int("ATLAS_RETENTION_HOUR", default=3)
ATLAS_RETENTION_MINUTE = env.int("ATLAS_RETENTION_MINUTE", default=30)

# --- Celery ----------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
# Eager mode: "thread" runs a triggered pipeline in a background thread of the
# web process (the admin returns at once and shows progress); "inline" runs it
# before the trigger returns (tests, scripts).
ATLAS_EAGER_MODE = env.str("ATLAS_EAGER_MODE", default="inline" if TESTING else "thread")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    # Runs whose worker died stop blocking their pipeline.
    "atlas: reap stale runs": {"task": "pipelines.reap_stale_runs", "schedule": 300.0},
    # Freshness checks also run on their own, between pipeline runs.
    "quality: check freshness": {
        "task": "quality.check_freshness",
        "schedule": env.float("ATLAS_FRESHNESS_INTERVAL_SECONDS", default=900.0),
    },
    # Emitted OpenLineage events waiting in the outbox go to OPENLINEAGE_URL.
    "lineage: deliver OpenLineage events": {"task": "lineage.deliver_events", "schedule": 30.0},
    # Data-subject access exports past their expiry are deleted (files and records kept as expired).
    "privacy: delete expired DSR exports": {"task": "privacy.purge_expired_exports", "schedule": 3600.0},
    # Rows past their dataset's retention are deleted (partitions dropped), daily.
    "retention: apply retention policies": {
        "task": "retention.apply_all",
        "schedule": crontab(minute=ATLAS_RETENTION_MINUTE, hour=ATLAS_RETENTION_HOUR),
    },
}
CELERY_TASK_ROUTES = {"pipelines.tasks.*": {"queue": env.str("ATLAS_PIPELINE_QUEUE", "celery")}}

# --- Lineage (OpenLineage) ---------------------------------------------------
# Where emitted events are delivered (Marquez: http://host:5000); unset, they wait in the outbox.
OPENLINEAGE_URL = env.str("OPENLINEAGE_URL", default="")
OPENLINEAGE_ENDPOINT = env.str("OPENLINEAGE_ENDPOINT", default="api/v1/lineage")
OPENLINEAGE_API_KEY = env.str("OPENLINEAGE_API_KEY", default="")
# Namespace of Atlas's jobs and warehouse datasets in the events.
OPENLINEAGE_NAMESPACE = env.str("OPENLINEAGE_NAMESPACE", default="atlas")
# Retries: exponential backoff from BASE up to MAX seconds; after MAX_ATTEMPTS the event is failed (kept, retryable).
OPENLINEAGE_MAX_ATTEMPTS = env.int("OPENLINEAGE_MAX_ATTEMPTS", default=12)
OPENLINEAGE_RETRY_BASE_SECONDS = env.float("OPENLINEAGE_RETRY_BASE_SECONDS", default=10.0)
OPENLINEAGE_RETRY_MAX_SECONDS = env.float("OPENLINEAGE_RETRY_MAX_SECONDS", default=3600.0)

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
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
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
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "pipelines.models.RunStatus",
        "SourceKindEnum": "pipelines.models.Source.Kind",
        "StepKindEnum": "pipelines.models.Step.Kind",
        "CheckKindEnum": "quality.models.CheckKind",
        "CheckRunTriggerEnum": "quality.models.CheckRun.Trigger",
        "PolicyActionEnum": "compliance.models.ColumnPolicy.Action",
        "RunTriggerEnum": "pipelines.models.Trigger",
        "RetentionActionEnum": "retention.models.RetentionPolicy.Action",
        "SubjectRequestKindEnum": "privacy.models.DataSubjectRequest.Kind",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

if not DEBUG and not TESTING:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
