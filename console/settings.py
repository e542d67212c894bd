"""One settings module that boots with nothing set.

Every knob is read from the environment through the typed helpers below; the
defaults give a working console on SQLite with a Celery broker that needs no
server (kombu's SQLAlchemy transport on a SQLite file) and local file storage under var/.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


VAR_DIR = Path(env_str("CONSOLE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into var/."""
    if env_str("SECRET_KEY"):
        return env_str("SECRET_KEY")
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]", "testserver")  # testserver: Django's test client
DEFAULT_DEMO_PASSWORD = "demo-pass-2026"  # printed in the README, so only ever for a console on loopback


def _is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.endswith(".localhost")


def unsafe_configuration(env) -> list[str]:
    """Why this environment (a mapping of variable -> value) is unsafe to start; empty when it is safe.

    The rules (README, "Settings that refuse to start"):
    1. DEBUG (off unless set) may be on only when every ALLOWED_HOSTS entry is a loopback name: a debug page
       shows settings and code to whoever can reach the server.
    2. A console reachable by others (any ALLOWED_HOSTS entry that is not loopback, ``*`` included) needs its
       own SECRET_KEY from the environment, at least 50 characters and not Django's ``django-insecure-``
       placeholder: the key generated into var/ differs between machines and travels with backups.
    3. Demo users (CONSOLE_DEMO on) on a console reachable by others need a DEMO_PASSWORD of their own, not
       the one the README prints.
    """

    def flag(name: str) -> bool:
        return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")

    hosts = [h.strip() for h in env.get("ALLOWED_HOSTS", ",".join(LOOPBACK_HOSTS)).split(",") if h.strip()]
    public = [h for h in hosts if not _is_loopback(h)]
    problems = []
    if flag("DEBUG") and public:
        problems.append(
            f"DEBUG is on while ALLOWED_HOSTS names {', '.join(public)}: a debug page would show "
            "settings to anyone who reaches the server. Unset DEBUG, or list only loopback hosts."
        )
    key = env.get("SECRET_KEY", "")
    if public and (len(key) < 50 or key.startswith("django-insecure-")):
        problems.append(
            f"ALLOWED_HOSTS names {', '.join(public)} but SECRET_KEY is "
            f"{'not set' if not key else 'weak'}: set SECRET_KEY to a random value of 50 or more "
            "characters, the same on every machine (python -c 'import secrets; "
            "print(secrets.token_urlsafe(50))')."
        )
    if public and flag("CONSOLE_DEMO") and env.get("DEMO_PASSWORD", DEFAULT_DEMO_PASSWORD) == DEFAULT_DEMO_PASSWORD:
        problems.append(
            f"CONSOLE_DEMO is on while ALLOWED_HOSTS names {', '.join(public)}: the demo users' "
            "password is printed in the README. Set DEMO_PASSWORD, or unset CONSOLE_DEMO."
        )
    return problems


if _problems := unsafe_configuration(os.environ):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("unsafe settings, refusing to start:\n- " + "\n- ".join(_problems))

SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in env_str("ALLOWED_HOSTS", ",".join(LOOPBACK_HOSTS)).split(",") if h]
# Demo users (seed_demo) exist only where this was asked for; `make run` asks.
CONSOLE_DEMO = env_bool("CONSOLE_DEMO", False)
CSRF_TRUSTED_ORIGINS = [o for o in env_str("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "console.adminsite.ConsoleAdminConfig",  # django.contrib.admin with a plain "not allowed" for non-staff
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "auditlog",
    "console",
    "jobs",
    "jobs.workers",
    "devices",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "console.audit.recording.AuditMiddleware",  # who and from where, for the audit log
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lock-out flagged during sign-in into its 429 page
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

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
                "console.context_processors.worker_status",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'console.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The zero-setup default still serves a simulated fleet: WAL lets readers run beside a writer, IMMEDIATE
    # transactions queue writers (with a timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Lets the device token lookup (devices/auth.py) run as a prepared statement; Django's own cursors bind
    # on the client and never prepare. Set false behind a pooler that cannot keep prepared statements
    # (pgbouncer before 1.21 in transaction mode).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        5 if env_bool("DB_PREPARED_STATEMENTS", True) else None
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sign-in lock-out (django-axes): every password check (the form login, the admin, DRF's HTTP Basic) passes the
# Axes backend first. After AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# refused with 429, the right password included, until AXES_COOLOFF_MINUTES pass without another try.
# Attempts live in the database (shared by every web process; listed in the admin; `manage.py axes_reset`).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
# Username and address together: a guesser cannot lock a colleague out from elsewhere, and one user's typos
# do not block others behind the same NAT. Behind a reverse proxy the address is REMOTE_ADDR (the proxy's),
# so this becomes per username; see docs/operations.md.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "console.projects.lockout.LockoutHandler"  # the database handler, answering DRF with a 429
AXES_COOLOFF_MESSAGE = "Too many failed sign-ins for this account: wait a few minutes, then try again."

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# collectstatic (run by `make run` and by the test session) writes hashed, gzipped copies that whitenoise serves
# with a one-year cache lifetime (console/staticfiles.py). Until it has run, files are still served straight from
# the app folders, DEBUG or not, so a console with DEBUG off (the default) always has its CSS and scripts.
WHITENOISE_USE_FINDERS = True
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
# Files browsers ask for at the site's root (/favicon.ico).
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

# Model and dataset files: a local folder by default; S3 or any S3-compatible store (MinIO, Ceph, R2) when
# AWS_STORAGE_BUCKET_NAME is set. Credentials are boto3's own chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
# a profile or an instance role) and never pass through settings. See docs/operations.md.
MEDIA_ROOT = Path(env_str("STORAGE_ROOT", str(VAR_DIR / "media")))
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "console.staticfiles.ConsoleStaticStorage"},
}
if env_str("AWS_STORAGE_BUCKET_NAME"):
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "addressing_style": env_str("AWS_S3_ADDRESSING_STYLE") or None,  # "path" for most MinIO setups
            "location": env_str("AWS_LOCATION"),  # key prefix inside the bucket
            # Never overwrite: a failed or duplicate register_version deletes the name it saved, which must
            # not be another version's object (the local folder behaves the same way).
            "file_overwrite": False,
            "default_acl": None,  # the bucket stays private; devices get short-lived presigned URLs
            "querystring_expire": env_int("STORAGE_PRESIGNED_URL_TTL_S", 300),
            "signature_version": "s3v4",  # boto3 still presigns with SigV2 by default, which stores refuse
        },
    }
# How devices get package bytes from object storage: "redirect" to a presigned URL (the default; devices must
# reach the store's endpoint) or "stream" through the web process. Local files ignore it.
STORAGE_DOWNLOADS = env_str("STORAGE_DOWNLOADS", "redirect")

# Uploads always go to a temporary file (never held whole in memory) through the
# hashing handler, which also enforces the size limit while the bytes arrive.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
# Datasets are checked in the web request, so their limits bound its memory and time: the file as uploaded and
# an NPZ's arrays unpacked (bytes), values across all arrays (16M: 64 MB of float32, 128 MB parsed from CSV),
# rows, and CSV columns. Each refusal names the figure.
MAX_DATASET_BYTES = env_int("MAX_DATASET_BYTES", 256 * 1024 * 1024)
MAX_DATASET_ELEMENTS = env_int("MAX_DATASET_ELEMENTS", 16 * 1024 * 1024)
MAX_DATASET_ROWS = env_int("MAX_DATASET_ROWS", 1_000_000)
MAX_DATASET_COLUMNS = env_int("MAX_DATASET_COLUMNS", 10_000)
FILE_UPLOAD_HANDLERS = ["console.catalog.uploads.HashingUploadHandler"]
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.projects.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": [
        "console.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "console.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "console.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {"device": env_str("DEVICE_THROTTLE_RATE", "600/min"), "enroll": "60/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model delivery console API",
    "DESCRIPTION": "Upload ONNX models, check them against device types, optimize and deliver them.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": "jobs.models.Job.State",
        "VersionStateEnum": "console.models.ModelVersion.State",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "console.openapi.add_error_responses",
    ],
}

# Celery: Redis when REDIS_URL is set, else a broker with no server: kombu's SQLAlchemy transport on a SQLite
# file, shared by every process on this machine. It replaced kombu's filesystem transport, whose consumer can
# read a message file while it is still being written: the JSONDecodeError that raises is unrecoverable, and
# the worker of `make run` died of it minutes after start. Here a message is one row written in one
# transaction, so a reader sees all of it or nothing. The broker has its own file so its polls (each one a
# short write transaction) never queue behind the console's own writes. It has no broadcast, so no remote
# control (`celery inspect`); liveness comes from jobs.workers heartbeats instead.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
else:
    import sqlite3
    from contextlib import closing

    from sqlalchemy.pool import NullPool

    _broker_db = VAR_DIR / "celery.sqlite3"
    with closing(sqlite3.connect(_broker_db, timeout=30)) as _db:
        _db.execute("PRAGMA journal_mode=WAL")  # kept in the file: readers never wait for a publisher
    CELERY_BROKER_URL = f"sqlite:///{_broker_db}"
    CELERY_BROKER_TRANSPORT = "jobs.workers.broker:Transport"  # kombu's "sqla", polling faster
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "connect_args": {"timeout": 30},  # wait for the write lock rather than fail a publish or a poll
        "poolclass": NullPool,  # no pooled SQLite connection is carried into a forked pool child or beat
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# The Job row is the truth; no result backend is needed.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Task modules outside an app's tasks.py (which autodiscovery finds by itself).
CELERY_IMPORTS = ("devices.rollouts.tasks",)
# How often running rollouts are judged and moved on (devices.rollouts.tasks); a halt takes effect within it.
ROLLOUT_BEAT_INTERVAL_S = env_int("ROLLOUT_BEAT_INTERVAL_S", 60)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-jobs": {"task": "jobs.tasks.reap_stale_jobs", "schedule": timedelta(seconds=60)},
    "step-rollouts": {
        "task": "devices.rollouts.tasks.step_rollouts",
        "schedule": timedelta(seconds=ROLLOUT_BEAT_INTERVAL_S),
    },
    "experiment-guardrails": {
        "task": "devices.experiments.tasks.enforce_all_guardrails",
        "schedule": timedelta(minutes=5),
    },
}
# A running job writes a heartbeat; one silent for this long lost its worker.
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 600)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)

# Throttles count in the cache, so it must be one store shared by every web process: a per-process memory
# cache gives each gunicorn worker its own budget and forgets it on restart. Redis when CACHE_URL or REDIS_URL
# is set, else a database table (`manage.py createcachetable`, which `make migrate` runs). Django's cache.clear()
# empties the whole Redis database: give CACHE_URL its own database number if the broker shares the server.
_CACHE_URL = env_str("CACHE_URL") or env_str("REDIS_URL")
if _CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "console_cache"}}
# Per-process counters on the check-in's hot path (devices.delivery.auth.DeviceRateThrottle): see its docstring.
CACHES["local"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "console-local"}

# Mail (rollout approvers are notified): printed to the console unless an SMTP server is configured.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "console@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every sign-in at INFO ("Deleted 0 failed login attempts ..."); lock-outs are warnings.
    "loggers": {"axes": {"level": env_str("AXES_LOG_LEVEL", "WARNING")}},
}
