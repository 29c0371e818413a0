"""Backup and restore of the whole database (`manage.py backup` / `manage.py restore`).

Two kinds of file, told apart by their suffix:

* `.dump` — PostgreSQL's own custom-format dump (`pg_dump -Fc`): schema and data exactly as
  they are, constraints and extensions included; fast. Restored with `pg_restore` into a new,
  empty PostgreSQL database. The production backup.
* `.xml` — Django's data dump (`dumpdata`), engine-neutral: the embedded default's backup, and
  the way from SQLite to PostgreSQL. XML, because the JSON serializer cuts timestamps to
  milliseconds (DjangoJSONEncoder, ECMA-262 dates) and a restore must give back every value.
  Primary keys are kept — clients replay live updates by event id — and references to content
  types and permissions go by natural key, since `migrate` rebuilds those tables with ids of
  its own. Left out: what `migrate` rebuilds (content types, permissions) and what is not worth
  bringing back (sessions: people sign in again; the background-task queue: replaying it could
  send offer emails twice; sign-in failure counters: they expire in minutes anyway).

Either reads one consistent snapshot while the site runs (pg_dump's own; a REPEATABLE READ
transaction for the data dump on PostgreSQL, an IMMEDIATE one on SQLite, which holds writers off
for the seconds a small site's dump takes).

A restore only ever goes into an empty database: loading into one that holds data would merge
the two silently (loaddata overwrites rows with the same primary key and keeps the rest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, transaction

Kind = Literal["pg", "data"]
SUFFIX: dict[Kind, str] = {"pg": ".dump", "data": ".xml"}

# app labels and app_label.model names `dumpdata` leaves out (see the module docstring)
NOT_BACKED_UP = ("contenttypes", "auth.permission", "sessions", "django_tasks_database", "axes.accessattempt")
# rows `migrate` writes into a new database, which therefore still counts as empty
REBUILT_BY_MIGRATE = (ContentType, Permission)
# libpq reads these from the environment; the password never shows on a command line
_LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}


class BackupError(Exception):
    """A backup or restore could not be done; the message says why and what to do."""


def default_kind() -> Kind:
    return "pg" if connection.vendor == "postgresql" else "data"


def default_path(kind: Kind, folder: Path = Path("backups")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"deploy-tracker-{stamp}{SUFFIX[kind]}"


def backup(path: Path, *, kind: Kind) -> Path:
    """Write the database to `path` (complete or not at all: a failed run leaves no file)."""
    if kind == "pg" and connection.vendor != "postgresql":
        raise BackupError(
            "A pg_dump backup needs PostgreSQL (DATABASE_URL=postgres://…); use the data format."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        if kind == "pg":
            _run("pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}")
        else:
            # One snapshot, so a write made meanwhile is in the file whole or not at all (dumpdata
            # reads table by table). SQLite's IMMEDIATE transaction holds writers off meanwhile.
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                call_command(
                    "dumpdata",
                    format="xml",
                    natural_foreign=True,
                    exclude=_installed(NOT_BACKED_UP),
                    output=str(partial),
                    verbosity=0,
                )
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def restore(path: Path) -> Kind:
    """Load a backup made by `backup` into this (empty) database, then migrate it to the code."""
    if not path.is_file():
        raise BackupError(f"{path} is not a file.")
    kind: Kind
    if path.suffix == SUFFIX["pg"]:
        kind = "pg"
        if connection.vendor != "postgresql":
            raise BackupError(
                f"{path} is a pg_dump backup: restore it into PostgreSQL (DATABASE_URL=postgres://…)."
            )
        if connection.introspection.table_names():
            raise BackupError(
                f"Database {connection.settings_dict['NAME']!r} is not empty. Restore into a new one: "
                "createdb NAME, then DATABASE_URL=postgres://…/NAME."
            )
        _run(
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            str(path),
        )
        call_command("migrate", interactive=False, verbosity=0)  # code newer than the backup
    elif path.suffix == SUFFIX["data"]:
        kind = "data"
        call_command("migrate", interactive=False, verbosity=0)
        if holding := _models_holding_data():
            raise BackupError(
                f"Database {connection.settings_dict['NAME']!r} already holds data ({', '.join(holding[:5])}"
                f"{', …' if len(holding) > 5 else ''}). Restore into a new, empty database."
            )
        call_command("loaddata", str(path), verbosity=0)  # one transaction; sequences are reset
    else:
        raise BackupError(f"{path}: a backup ends in .dump (pg_dump) or .xml (data dump).")
    return kind


def _installed(labels: tuple[str, ...]) -> list[str]:
    """The labels whose app is installed (dumpdata refuses unknown ones)."""
    installed = {app.label for app in apps.get_app_configs()}
    return [label for label in labels if label.split(".")[0] in installed]


def _models_holding_data() -> list[str]:
    return [
        model._meta.label
        for model in apps.get_models()
        if not model._meta.proxy and model not in REBUILT_BY_MIGRATE and model._default_manager.exists()
    ]


def _libpq_env() -> dict[str, str]:
    """This database's connection settings as libpq's environment variables."""
    db = connection.settings_dict
    env = {**os.environ, "PGDATABASE": str(db["NAME"])}
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
    ):
        if db.get(key):
            env[variable] = str(db[key])
    for option, variable in _LIBPQ_OPTIONS.items():
        if option in db.get("OPTIONS", {}):
            env[variable] = str(db["OPTIONS"][option])
    return env


def _run(program: str, *arguments: str) -> None:
    if shutil.which(program) is None:
        raise BackupError(
            f"{program} not found: install PostgreSQL's client programs (the server's version or newer)."
        )
    env = _libpq_env()
    done = subprocess.run(
        [program, *arguments, f"--dbname={env['PGDATABASE']}"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BackupError(f"{program} failed: {done.stderr.strip()[-2000:]}")
