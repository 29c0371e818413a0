"""Strict readers for settings that come from the environment.

Each helper fails loudly, naming the variable, so a typo in a deployment stops the
process at start instead of running with a silently wrong value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    return (os.environ if environ is None else environ).get(name)


def env_bool(name: str, *, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Read a yes/no flag; anything but the usual spellings is an error."""
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def env_str(name: str, *, default: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Read a non-empty string, or the default; no default means the variable is required."""
    value = _raw(name, environ)
    if value is None or not value.strip():
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set.")
        return default
    return value.strip()


def env_choice(
    name: str, *, choices: Mapping[str, Any], default: str, environ: Mapping[str, str] | None = None
) -> Any:
    """Read one of a few named options and return what it stands for."""
    value = env_str(name, default=default, environ=environ).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}.")
    return choices[value]


def env_list(name: str, *, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Read a comma-separated list; empty items are an error, not something to skip."""
    value = _raw(name, environ)
    if value is None:
        return default
    items = [item.strip() for item in value.split(",")]
    if not value.strip() or any(not item for item in items):
        raise ImproperlyConfigured(f"{name}={value!r} must be a comma-separated list without empty items.")
    return items


def env_database(
    name: str, *, default: dict[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read a database URL (postgres:// or sqlite://); unset means the embedded default."""
    value = _raw(name, environ)
    if value is None or not value.strip():
        return default
    scheme = urlsplit(value).scheme
    if scheme not in {"postgres", "postgresql", "sqlite"}:
        raise ImproperlyConfigured(
            f"{name} has scheme {scheme!r}; Deploy Tracker runs on postgres:// or sqlite:// URLs."
        )
    try:
        config = dict(dj_database_url.parse(value.strip(), conn_max_age=0, conn_health_checks=True))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from exc
    if scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/db.")
    return config


def env_redis_url(name: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """Read an optional redis:// or rediss:// URL."""
    value = _raw(name, environ)
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} must look like redis://host:6379/0.")
    return value.strip()


def env_int(name: str, *, default: int, minimum: int = 0, environ: Mapping[str, str] | None = None) -> int:
    """Read a whole number not below `minimum`."""
    value = _raw(name, environ)
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be at least {minimum}.")
    return number


_EMAIL_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtp+tls": "django.core.mail.backends.smtp.EmailBackend",
    "smtp+ssl": "django.core.mail.backends.smtp.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}


def env_email(name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read EMAIL_URL (console://, smtp[+tls|+ssl]://user:password@host:port) into MAILERS."""
    value = _raw(name, environ)
    if value is None or not value.strip():
        return {"default": {"BACKEND": _EMAIL_BACKENDS["console"]}}
    parts = urlsplit(value.strip())
    if parts.scheme not in _EMAIL_BACKENDS:
        raise ImproperlyConfigured(
            f"{name} has scheme {parts.scheme!r}; use one of {', '.join(sorted(_EMAIL_BACKENDS))}."
        )
    mailer: dict[str, Any] = {"BACKEND": _EMAIL_BACKENDS[parts.scheme]}
    if parts.scheme.startswith("smtp"):
        if not parts.hostname:
            raise ImproperlyConfigured(f"{name} must name the SMTP host, e.g. smtp://mail.example.org:587.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port.") from None
        mailer["OPTIONS"] = {
            "host": parts.hostname,
            "port": port or (465 if parts.scheme == "smtp+ssl" else 587),
            "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
            "use_tls": parts.scheme == "smtp+tls",
            "use_ssl": parts.scheme == "smtp+ssl",
        }
    return {"default": mailer}
