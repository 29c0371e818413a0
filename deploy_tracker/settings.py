"""Deploy Tracker settings: one file, read from the environment (see .env.example).

Embedded default (nothing set): development mode on SQLite in the project folder, the
in-memory channel layer and console email. Production: DEBUG=false with SECRET_KEY and
ALLOWED_HOSTS, `DATABASE_URL` for PostgreSQL, `REDIS_URL` for the Redis channel layer.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from deploy_tracker.env import (
    env_bool,
    env_choice,
    env_database,
    env_email,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent


def _leaflet_package() -> str:
    spec = importlib.util.find_spec("leaflet")
    if spec is None or not spec.submodule_search_locations:
        raise ImproperlyConfigured("django-leaflet is not installed (requirements.txt).")
    return str(spec.submodule_search_locations[0])


DEBUG = env_bool("DEBUG", default=True)
_DEV_SECRET = "insecure-development-key-never-use-in-production-0123456789abcdef"
if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", default=_DEV_SECRET)
else:
    SECRET_KEY = env_str("SECRET_KEY", default="")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (production mode).")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",  # ASGI runserver; must come before django.contrib.staticfiles
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "django_filters",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here, never from a CDN
    "django_tasks_db",  # the production queue of background work (TASK_BACKEND=database)
    "axes",  # sign-in throttling (below, "Sign-in throttling")
    "resources",
    "incidents",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",  # SECURE_CSP, below
    "deploy_tracker.middleware.DatabaseUnavailableMiddleware",  # a lost database → 503, not 500
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a sign-in refused for too many failures into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deploy_tracker.urls"
ASGI_APPLICATION = "deploy_tracker.asgi.application"
WSGI_APPLICATION = None

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

# --- Database -------------------------------------------------------------------------------
# SQLite: WAL so readers never block the writer, IMMEDIATE so a transaction takes the write
# lock at BEGIN (two workflow transitions serialise instead of failing half-way on upgrade),
# and a busy timeout so the second writer waits rather than erroring at once.
_SQLITE_FILE = env_str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
_SQLITE_DEFAULT = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": _SQLITE_FILE,
    "OPTIONS": {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"),
    },
    # Tests use a file too, so threads get real separate connections (tests/test_concurrency.py);
    # one per process, so two test runs on one machine never share it.
    "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"deploy-tracker-test-{os.getpid()}.sqlite3")},
}
DATABASES = {"default": env_database("DATABASE_URL", default=_SQLITE_DEFAULT)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(_SQLITE_DEFAULT["OPTIONS"])
    DATABASES["default"].setdefault("TEST", _SQLITE_DEFAULT["TEST"])
else:  # one test database per test process: two test runs on one server never share one
    DATABASES["default"].setdefault("TEST", {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"})
# No connection outlives its request: under ASGI each request runs in a thread of its own, so a
# kept one would be stranded there (Django: "When using ASGI, persistent connections should be
# disabled"). It also means a connection a PostgreSQL restart killed is never reused: the first
# request after the outage connects afresh (deploy_tracker/middleware.py answers 503 meanwhile).
# Health checks only matter if CONN_MAX_AGE is ever raised: a kept connection is then tested
# before its first query in a request instead of failing that request.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Instead, each process keeps a pool (psycopg's): a request borrows a connection rather than
    # starting a PostgreSQL backend (bench/load.py: 3,377 connections in 90 s without, "too many
    # clients" under load; PostgreSQL's CPU halved with it). Each borrowed connection is checked
    # first, so after a restart no request meets a dead one; while the server is away a request
    # waits at most `timeout` seconds for one, then answers 503 (a WebSocket handshake closes with
    # 4503 — within Daphne's 5 s handshake limit).
    from psycopg_pool import ConnectionPool

    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_int("DATABASE_POOL_SIZE", default=10, minimum=1),
        "timeout": 3,
        "check": ConnectionPool.check_connection,
        # psycopg retries a failed connection with a doubling delay for up to this long, then
        # leaves it to the next request to try afresh: after an outage of any length work
        # resumes within seconds, not after the delay has grown to minutes.
        "reconnect_timeout": 4,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ------------------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
# In memory: a client may fall this many messages behind before one is dropped (Channels'
# default: 100), and group membership lasts as long as the connection (Channels' default drops
# it after a day, and a dashboard stays open through a whole operational period).
_LAYER_CAPACITY = 1_000
_GROUP_EXPIRY = 30 * 86_400
if REDIS_URL:
    # Publish/subscribe: one PUBLISH per group, pushed to each server process that has a
    # member; 5× faster than channels-redis's list layer on the 500-offer burst, and it closes
    # live connections when Redis is lost so clients replay (deploy_tracker/layers.py).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "deploy_tracker.layers.RedisPubSubChannelLayer",
            # Pub/sub channels ignore Redis's database numbers: two deployments (or two test
            # runs) sharing one Redis keep apart by prefix.
            "CONFIG": {
                # A Redis that stops answering (a partition, not a refusal) costs a publish 5 s,
                # then it fails and is logged; the listener polls with its own short timeout.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 5, "socket_connect_timeout": 2}],
                "prefix": env_str("CHANNEL_PREFIX", default="asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "deploy_tracker.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": _LAYER_CAPACITY, "group_expiry": _GROUP_EXPIRY},
        }
    }

# --- Map ----------------------------------------------------------------------------------
# Tile server of the incident map ({z}/{x}/{y} template); empty: no tiles, the facility markers
# alone (an agency network that reaches no tile server still gets a working map).
MAP_TILES_URL = env_str("MAP_TILES_URL", default="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
if MAP_TILES_URL.lower() in ("none", "off"):
    MAP_TILES_URL = ""
MAP_ATTRIBUTION = env_str("MAP_ATTRIBUTION", default="© OpenStreetMap contributors")


# --- Content Security Policy -----------------------------------------------------------------
# Only this origin's own files run, style or connect ('self' covers ws:/wss: to the same host in
# CSP 3 browsers); no inline script, style or handler anywhere (templates carry data in data-*
# attributes and json_script blocks, and scripts set sizes through element.style, which CSP
# allows). Images: ours, data: URLs (the pages' empty icon, Swagger UI's icons) and the tile server.
def _tile_source(url: str) -> list[str]:
    """The CSP source of MAP_TILES_URL's host ({s} subdomains become *); none for our own tiles."""
    if not url or url.startswith("/"):
        return []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        raise ImproperlyConfigured(
            f"MAP_TILES_URL={url!r} must be an http(s)://host/{{z}}/{{x}}/{{y}} URL template, "
            "a path, or none."
        )
    return [f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"]


SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:", *_tile_source(MAP_TILES_URL)],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# --- Uploads --------------------------------------------------------------------------------
# The roster and incident imports (resources/importing): the largest file taken, and the most
# data rows per sheet. A workbook may unpack to at most 20 times its limit (importing/sniffing.py).
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", default=50 * 1024 * 1024, minimum=1024)
IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", default=200_000, minimum=1)
# An uploaded file larger than this waits in a temporary file, not in memory, while it is parsed.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The rest of a request body (form fields, API JSON): the largest real one, a 500-offer
# confirmation, is a few kilobytes.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Files of background jobs ------------------------------------------------------------------
# Django's default storage holds the files a worker writes (exports/) and the uploads waiting for
# an import job (imports/). Web processes and workers must share this folder (one machine, or a
# volume both mount): the web saves what the worker reads, the worker writes what the web serves.
# It is never served as is: downloads go through GET /api/jobs/{id}/file/, which checks the right.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", default="media"))
if not MEDIA_ROOT.is_absolute():
    MEDIA_ROOT = BASE_DIR / MEDIA_ROOT
# Hours a file stays there; `python manage.py prune_exports` removes older ones (run it hourly).
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", default=24, minimum=1)
# An import file of at least this many bytes runs as a background job with a progress bar; a
# smaller one is imported during the request, as before (default 1 MB: about a second's work).
IMPORT_BACKGROUND_BYTES = env_int("IMPORT_BACKGROUND_BYTES", default=1024 * 1024, minimum=0)

# --- Background work (django.tasks) ----------------------------------------------------------
# immediate: a task runs in the process that enqueued it (embedded default, tests);
# database: queued in the database and run by `python manage.py db_worker` (production).
TASKS = {
    "default": env_choice(
        "TASK_BACKEND",
        choices={
            "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
            "database": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]},
        },
        default="immediate",
    )
}

# --- Auth, i18n, time ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in throttling (django-axes) ---------------------------------------------------------
# Every door that takes a password (/login/, /admin/login/, /api/auth/token/) counts failures per
# username and client address; at the limit that pair is refused for the cool-off time, even with
# the right password: 429 Too Many Requests with Retry-After (deploy_tracker/security.py). Keyed
# on the pair, so one person mistyping cannot lock a whole office out behind one address, and
# nobody can lock a user out from everywhere. Behind a proxy, have the ASGI server take the
# client address from X-Forwarded-For (daphne --proxy-headers, uvicorn --proxy-headers).
AUTHENTICATION_BACKENDS = [
    "deploy_tracker.security.LoginThrottle",  # refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", default=15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# A good sign-in clears that pair's failures, so the odd typo never adds up over weeks.
AXES_RESET_ON_SUCCESS = True
# Tries during a lockout do not restart the clock: the wait the answer announces is the real one.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "deploy_tracker.security.locked_out"
AXES_VERBOSE = False  # no start-up banner on every process (lockouts are still logged)

LANGUAGE_CODE = "en-us"
# Stored in UTC; shown in each incident's own time zone (Incident.timezone).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [
    BASE_DIR / "deploy_tracker" / "static",  # the site-wide stylesheet
    # Leaflet, as django-leaflet ships it (static/leaflet/...). Only its files: its Django app
    # needs GeoDjango's GDAL, which the map does not.
    Path(_leaflet_package()) / "static",
]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "deploy_tracker.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "deploy_tracker.api.handle_exception",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Deploy Tracker API",
    "DESCRIPTION": "Emergency deployments: roster, incidents, matching, workflow and reports.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Email ---------------------------------------------------------------------------------
MAILERS = env_email("EMAIL_URL")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", default="deploy-tracker@localhost")
# Where people reach this server: the base of the links in emails and calendar feeds.
SITE_URL = env_str("SITE_URL", default="http://127.0.0.1:8000")

# --- Production hardening (all on when DEBUG is off) ----------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

# logging only knows upper-case names and its own error does not name the variable.
_LOG_LEVEL = env_str("LOG_LEVEL", default="INFO")
LOG_LEVEL = _LOG_LEVEL.upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={_LOG_LEVEL!r} must be DEBUG, INFO, WARNING, ERROR or CRITICAL.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Every task's start and end at INFO is noise (seed_demo emails hundreds of offers); failures
    # are still logged. The database worker reports its tasks on its own logger, django_tasks_db.
    "loggers": {
        "django.tasks": {"level": "WARNING"},
        # One line per failed reconnection attempt during an outage; the middleware logs the
        # outage once (deploy_tracker/middleware.py).
        "psycopg.pool": {"level": "ERROR"},
    },
}
