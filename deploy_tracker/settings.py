"""Deploy Tracker settings: one file, read from the environment (see .env.example).

Embedded default (nothing set): development mode on SQLite in the project folder, the
in-memory channel layer and console email. Production: DEBUG=false with SECRET_KEY and
ALLOWED_HOSTS, `DATABASE_URL` for PostgreSQL, `REDIS_URL` for the Redis channel layer.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

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
    "resources",
    "incidents",
    "reports",
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ------------------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
# A client may fall this many messages behind before one is dropped (Channels' default: 100).
_LAYER_CAPACITY = 1_000
# Group membership lasts as long as the connection (Channels' default drops it after a day,
# and a dashboard stays open through a whole operational period).
_GROUP_EXPIRY = 30 * 86_400
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times a read out after 5 s, as long as channels-redis blocks
                # waiting on an idle channel: a longer socket timeout keeps idle clients alive.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "capacity": _LAYER_CAPACITY,
                "group_expiry": _GROUP_EXPIRY,
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
}
