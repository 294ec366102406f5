"""Atlas settings: everything comes from the environment (django-environ).

Two ways to run, one code path:

* embedded default (nothing set): SQLite for Django's tables, a DuckDB file for
  the warehouse, Celery tasks executed in-process;
* production: ``DATABASE_URL`` (PostgreSQL), ``WAREHOUSE_URL`` (defaults to the
  same PostgreSQL), ``CELERY_BROKER_URL`` (Redis).

A missing secret in production is a loud error at start, never a silent default.
"""

import sys
from pathlib import Path

import environ
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
    "django_celery_beat",
    "atlas",
    "pipelines",
    "quality",
    "compliance",
    "lineage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

# Named databases that SQL sources may query: ATLAS_SOURCE_DATABASES=name=url,name2=url2
ATLAS_SOURCE_DATABASES = env.dict("ATLAS_SOURCE_DATABASES", default={})

# --- Runner ----------------------------------------------------------------
# Step hooks, called in order at prepare, staged, published and failed — the way
# MIDDLEWARE works — so quality, compliance and lineage plug into the runner
# without the runner importing them.
ATLAS_STEP_HOOKS: list[str] = env.list("ATLAS_STEP_HOOKS", default=[])
# A run whose heartbeat is older than this is considered lost (killed worker).
ATLAS_RUN_STALE_SECONDS = env.int("ATLAS_RUN_STALE_SECONDS", default=3600)
# Longest line an ingest accepts; longer ones are quarantined with their reason.
ATLAS_INGEST_MAX_LINE_BYTES = env.int("ATLAS_INGEST_MAX_LINE_BYTES", default=2_000_000)
# How much of a rejected raw record is kept in quarantine.
ATLAS_QUARANTINE_RAW_CHARS = env.int("ATLAS_QUARANTINE_RAW_CHARS", default=65_536)
ATLAS_HTTP_TIMEOUT_SECONDS = env.float("ATLAS_HTTP_TIMEOUT_SECONDS", default=30.0)
ATLAS_DEMO_DIR = Path(env.str("ATLAS_DEMO_DIR", default=str(VAR_DIR / "demo")))

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
}
CELERY_TASK_ROUTES = {"pipelines.tasks.*": {"queue": env.str("ATLAS_PIPELINE_QUEUE", "celery")}}

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

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
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
