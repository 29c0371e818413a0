"""Settings come from the environment: strict helpers, and the real settings module in real processes.

The helper tests pass `environ={...}` instead of touching os.environ. The end-to-end tests start
`manage.py` / `python -c` with a controlled environment, because settings are read once at import
and a bad value must stop the process at start.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from deploy_tracker.env import (
    env_bool,
    env_database,
    env_email,
    env_int,
    env_list,
    env_redis_url,
    env_str,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMTP = "django.core.mail.backends.smtp.EmailBackend"


# --- env_bool -------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["1", "true", "True", "TRUE", "yes", "Yes", "on", "ON", " true "])
def test_env_bool_reads_true_spellings(spelling: str) -> None:
    assert env_bool("DEBUG", default=False, environ={"DEBUG": spelling}) is True


@pytest.mark.parametrize("spelling", ["0", "false", "False", "FALSE", "no", "No", "off", "OFF", " off "])
def test_env_bool_reads_false_spellings(spelling: str) -> None:
    assert env_bool("DEBUG", default=True, environ={"DEBUG": spelling}) is False


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_falls_back_to_the_default_when_unset(default: bool) -> None:
    assert env_bool("DEBUG", default=default, environ={}) is default


@pytest.mark.parametrize("spelling", ["maybe", "2", "y", "enabled"])
def test_env_bool_rejects_anything_else_naming_the_variable(spelling: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=rf"^DEBUG='{spelling}' is not a boolean; use one of 1/0"):
        env_bool("DEBUG", default=True, environ={"DEBUG": spelling})


# --- env_list, env_int, env_str -------------------------------------------------------------


def test_env_list_splits_on_commas_and_trims() -> None:
    environ = {"ALLOWED_HOSTS": "deploy.example.org, .example.net ,localhost"}
    assert env_list("ALLOWED_HOSTS", default=[], environ=environ) == [
        "deploy.example.org",
        ".example.net",
        "localhost",
    ]


def test_env_list_falls_back_to_the_default_when_unset() -> None:
    assert env_list("ALLOWED_HOSTS", default=["localhost"], environ={}) == ["localhost"]


@pytest.mark.parametrize("value", ["", "  ", "a.example.org,,b.example.org", "a.example.org,"])
def test_env_list_rejects_empty_items_naming_the_variable(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^ALLOWED_HOSTS=.* without empty items"):
        env_list("ALLOWED_HOSTS", default=[], environ={"ALLOWED_HOSTS": value})


def test_env_int_reads_a_whole_number() -> None:
    assert env_int("SECURE_HSTS_SECONDS", default=0, environ={"SECURE_HSTS_SECONDS": " 3600 "}) == 3600


@pytest.mark.parametrize("environ", [{}, {"SECURE_HSTS_SECONDS": ""}])
def test_env_int_falls_back_to_the_default_when_unset_or_blank(environ: dict[str, str]) -> None:
    assert env_int("SECURE_HSTS_SECONDS", default=31_536_000, environ=environ) == 31_536_000


@pytest.mark.parametrize("value", ["a year", "1.5", "1e6"])
def test_env_int_rejects_a_non_number_naming_the_variable(value: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^SECURE_HSTS_SECONDS=.* is not a whole number"):
        env_int("SECURE_HSTS_SECONDS", default=0, environ={"SECURE_HSTS_SECONDS": value})


def test_env_int_rejects_a_number_below_the_minimum() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^SECURE_HSTS_SECONDS=-1 must be at least 0\.$"):
        env_int("SECURE_HSTS_SECONDS", default=0, environ={"SECURE_HSTS_SECONDS": "-1"})


def test_env_str_trims_and_falls_back_to_the_default() -> None:
    assert env_str("LOG_LEVEL", default="INFO", environ={"LOG_LEVEL": " DEBUG "}) == "DEBUG"
    assert env_str("LOG_LEVEL", default="INFO", environ={}) == "INFO"
    assert env_str("LOG_LEVEL", default="INFO", environ={"LOG_LEVEL": "  "}) == "INFO"


@pytest.mark.parametrize("environ", [{}, {"SECRET_KEY": ""}, {"SECRET_KEY": "   "}])
def test_env_str_without_default_is_required(environ: dict[str, str]) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^SECRET_KEY must be set\.$"):
        env_str("SECRET_KEY", environ=environ)


# --- env_database ---------------------------------------------------------------------------

_DEFAULT_DB = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}


@pytest.mark.parametrize("environ", [{}, {"DATABASE_URL": ""}])
def test_env_database_unset_returns_the_default(environ: dict[str, str]) -> None:
    assert env_database("DATABASE_URL", default=_DEFAULT_DB, environ=environ) is _DEFAULT_DB


# ids that are not the bare word "postgresql", which conftest reads as the PostgreSQL-only marker
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"], ids=["scheme-postgres", "scheme-postgresql"])
def test_env_database_reads_a_postgres_url(scheme: str) -> None:
    url = f"{scheme}://deploy:s%40cret@db.example.org:5433/tracker"
    config = env_database("DATABASE_URL", default=_DEFAULT_DB, environ={"DATABASE_URL": url})
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert config["NAME"] == "tracker"
    assert config["HOST"] == "db.example.org"
    assert config["PORT"] == 5433
    assert config["USER"] == "deploy"
    assert config["PASSWORD"] == "s@cret"
    assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (0, True)


def test_env_database_reads_a_sqlite_url() -> None:
    environ = {"DATABASE_URL": "sqlite:////var/lib/deploy-tracker/db.sqlite3"}
    config = env_database("DATABASE_URL", default=_DEFAULT_DB, environ=environ)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == "/var/lib/deploy-tracker/db.sqlite3"


def test_env_database_rejects_an_unknown_scheme_naming_the_variable() -> None:
    environ = {"DATABASE_URL": "mysql://deploy@db.example.org/tracker"}
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL has scheme 'mysql'"):
        env_database("DATABASE_URL", default=_DEFAULT_DB, environ=environ)


@pytest.mark.parametrize("url", ["postgres://postgres@127.0.0.1:5432", "postgres://postgres@127.0.0.1:5432/"])
def test_env_database_rejects_a_postgres_url_without_a_database_name(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL must name a database"):
        env_database("DATABASE_URL", default=_DEFAULT_DB, environ={"DATABASE_URL": url})


def test_env_database_rejects_a_malformed_url_naming_the_variable() -> None:
    environ = {"DATABASE_URL": "postgres://deploy@db.example.org:notaport/tracker"}
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL is not a valid database URL"):
        env_database("DATABASE_URL", default=_DEFAULT_DB, environ=environ)


# --- env_redis_url --------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"REDIS_URL": ""}])
def test_env_redis_url_unset_is_none(environ: dict[str, str]) -> None:
    assert env_redis_url("REDIS_URL", environ=environ) is None


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:token@cache.example.org:6380/1"])
def test_env_redis_url_accepts_redis_urls(url: str) -> None:
    assert env_redis_url("REDIS_URL", environ={"REDIS_URL": f" {url} "}) == url


@pytest.mark.parametrize("url", ["http://x", "redis://", "127.0.0.1:6379"])
def test_env_redis_url_rejects_other_urls_naming_the_variable(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_URL=.* must look like redis://host:6379/0"):
        env_redis_url("REDIS_URL", environ={"REDIS_URL": url})


# --- env_email ------------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"EMAIL_URL": ""}])
def test_env_email_unset_is_the_console_backend(environ: dict[str, str]) -> None:
    assert env_email("EMAIL_URL", environ=environ) == {
        "default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    }


def test_env_email_reads_smtp_with_starttls_and_decodes_the_password() -> None:
    environ = {"EMAIL_URL": "smtp+tls://user:p%40ss@mail.example.org:2525"}
    assert env_email("EMAIL_URL", environ=environ) == {
        "default": {
            "BACKEND": SMTP,
            "OPTIONS": {
                "host": "mail.example.org",
                "port": 2525,
                "username": "user",
                "password": "p@ss",
                "use_tls": True,
                "use_ssl": False,
            },
        }
    }


@pytest.mark.parametrize(
    ("url", "port", "use_tls", "use_ssl"),
    [
        ("smtp://mail.example.org", 587, False, False),
        ("smtp+tls://mail.example.org", 587, True, False),
        ("smtp+ssl://mail.example.org", 465, False, True),
    ],
)
def test_env_email_picks_the_usual_port_per_scheme(url: str, port: int, use_tls: bool, use_ssl: bool) -> None:
    options = env_email("EMAIL_URL", environ={"EMAIL_URL": url})["default"]["OPTIONS"]
    assert (options["port"], options["use_tls"], options["use_ssl"]) == (port, use_tls, use_ssl)
    assert (options["username"], options["password"]) == ("", "")


def test_env_email_reads_locmem() -> None:
    mailers = env_email("EMAIL_URL", environ={"EMAIL_URL": "locmem://"})
    assert mailers == {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sendgrid://apikey@api.sendgrid.com", r"^EMAIL_URL has scheme 'sendgrid'; use one of "),
        ("mail.example.org:587", r"^EMAIL_URL has scheme 'mail\.example\.org'"),
        ("smtp://:587", r"^EMAIL_URL must name the SMTP host"),
        ("smtp://mail.example.org:smtp", r"^EMAIL_URL has an invalid port"),
    ],
)
def test_env_email_rejects_bad_urls_naming_the_variable(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        env_email("EMAIL_URL", environ={"EMAIL_URL": url})


# --- SQLite connection ----------------------------------------------------------------------


def test_sqlite_runs_in_wal_with_immediate_transactions_and_a_busy_timeout(db: None) -> None:
    if connection.vendor != "sqlite":
        pytest.skip(f"SQLite connection settings; this run uses {connection.vendor} (DATABASE_URL)")
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert connection.transaction_mode == "IMMEDIATE"  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cursor.execute("PRAGMA busy_timeout").fetchone()[0] == 20_000  # ms, from OPTIONS timeout
        assert cursor.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, safe under WAL
        assert cursor.execute("PRAGMA foreign_keys").fetchone()[0] == 1


# --- Real processes -------------------------------------------------------------------------

# Every variable the settings read, so the developer's or CI's own values never leak in.
_SETTINGS_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "SQLITE_PATH",
    "REDIS_URL",
    "EMAIL_URL",
    "DEFAULT_FROM_EMAIL",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "LOG_LEVEL",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOLOFF_MINUTES",
    "IMPORT_MAX_BYTES",
    "IMPORT_MAX_ROWS",
    "IMPORT_BACKGROUND_BYTES",
    "MAP_TILES_URL",
    "MEDIA_ROOT",
    "EXPORT_RETENTION_HOURS",
    "TASK_BACKEND",
    "CHANNEL_PREFIX",
)
_PRINT_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings; "
    "db = settings.DATABASES['default']; "
    "print(json.dumps({'engine': db['ENGINE'], "
    "'transaction_mode': db.get('OPTIONS', {}).get('transaction_mode'), "
    "'channel_layer': settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "'log_level': settings.LOGGING['root']['level']}))"
)


def run(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run the project's Python with only `variables` set among the settings variables."""
    environ = {key: value for key, value in os.environ.items() if key not in _SETTINGS_VARIABLES}
    environ |= {"DJANGO_SETTINGS_MODULE": "deploy_tracker.settings", **variables}
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def production(**variables: str) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "ALLOWED_HOSTS": "deploy.example.org",
        **variables,
    }


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"REDIS_URL": "http://nope"}, "REDIS_URL='http://nope' must look like redis://"),
        ({"DEBUG": "false"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose' must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
    ],
    ids=["debug-maybe", "redis-http", "production-without-secret-key", "log-level-verbose"],
)
def test_a_bad_variable_stops_manage_py_naming_it(variables: dict[str, str], message: str) -> None:
    result = run("manage.py", "check", **variables)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {message}" in result.stderr


def test_production_settings_pass_the_deploy_checks() -> None:
    variables = production(EMAIL_URL="smtp+tls://deploy:example@mail.example.org:587")
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_without_email_url_fails_the_deploy_checks() -> None:
    # The console default would print every offer to a responder into the server log instead.
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode != 0
    assert "mail.E001" in result.stderr
    assert "identified 1 issue" in result.stderr


def test_embedded_defaults_pass_the_checks() -> None:
    result = run("manage.py", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {},
            {
                "engine": "django.db.backends.sqlite3",
                "transaction_mode": "IMMEDIATE",
                "channel_layer": "deploy_tracker.layers.InMemoryChannelLayer",
                "log_level": "INFO",
            },
        ),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/0"},
            {"channel_layer": "deploy_tracker.layers.RedisPubSubChannelLayer"},
        ),
        (
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
            {"engine": "django.db.backends.postgresql", "transaction_mode": None},
        ),
        (
            # A sqlite:// URL keeps the WAL / IMMEDIATE / busy-timeout options of the default.
            {"DATABASE_URL": "sqlite:////tmp/deploy-tracker-settings-test.sqlite3"},
            {"engine": "django.db.backends.sqlite3", "transaction_mode": "IMMEDIATE"},
        ),
        ({"LOG_LEVEL": "warning"}, {"log_level": "WARNING"}),
    ],
    ids=["defaults", "redis", "postgres", "sqlite-url", "log-level-lower-case"],
)
def test_the_environment_selects_the_engines(
    variables: dict[str, str], expected: dict[str, str | None]
) -> None:
    result = run("-c", _PRINT_SETTINGS, **variables)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert {key: printed[key] for key in expected} == expected
