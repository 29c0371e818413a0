"""Backups restore every row: the demo response plus fresh workflow history, backed up with
`manage.py backup`, restored with `manage.py restore` into a new database by a separate process
(as an operator would), and compared table by table — row counts of every table, a checksum of
every row of the roster, incident, deployment, event, time and expense tables."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from fixtures.demo import INCIDENT_NUMBER
from incidents import timesheets, workflow
from incidents.models import Deployment, Event, Incident, TimeEntry
from tests.conftest import database_url

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db(transaction=True)

# Every row of these is compared; content types and permissions are rebuilt by `migrate` with
# ids of its own, and the rest (sessions, queues, admin log) is counted only.
CHECKED_APPS = ("resources", "incidents")


def fingerprint() -> dict[str, Any]:
    """Row counts of every table and a checksum of every row of the checked models."""
    with connection.cursor() as cursor:
        counts = {}
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    models = [User, *(m for label in CHECKED_APPS for m in apps.get_app_config(label).get_models())]
    checksums = {}
    for model in models:
        fields = [field.attname for field in model._meta.concrete_fields]
        rows = list(model._default_manager.order_by("pk").values_list(*fields))
        # repr keeps what matters: a Decimal's places, a timestamp's microseconds and zone.
        text = json.dumps(rows, default=repr, sort_keys=True)
        checksums[model._meta.label] = hashlib.sha256(text.encode()).hexdigest()
    return {"counts": counts, "checksums": checksums, "newest_event": Event.objects.latest("id").pk}


def check_restored() -> dict[str, Any]:
    """In the restored database: its fingerprint, and the id a new event gets there (ids must
    go on after the restored ones: clients replay by event id)."""
    found = fingerprint()
    incident = Incident.objects.get(number=INCIDENT_NUMBER)
    found["next_event"] = Event.objects.create(incident=incident, type="backup.checked", at=timezone.now()).pk
    return found


@pytest.fixture
def history() -> dict[str, Any]:
    """The demo response, then a little more history through the real workflow (timestamps
    with microseconds), and one signed-in session."""
    call_command("seed_demo", password="demo", verbosity=0, stdout=StringIO())
    commander = User.objects.get(username="commander")
    proposal = Deployment.objects.filter(status=Deployment.Status.PROPOSED).order_by("pk").first()
    assert proposal is not None
    workflow.accept(workflow.offer(proposal, by=commander), by=commander)
    on_site = Deployment.objects.filter(status=Deployment.Status.ON_SITE).order_by("-start").first()
    assert on_site is not None
    today = timezone.localdate(timezone=on_site.request.facility.incident.tz)
    worked = set(TimeEntry.objects.filter(deployment=on_site).values_list("date", flat=True))
    day = next(
        d for d in (today - timedelta(days=k) for k in range(30)) if d not in worked and d >= on_site.start
    )
    timesheets.log_time(on_site, by=commander, day=day, regular_hours=Decimal("8.25"), overtime_hours="1.5")
    timesheets.add_expense(on_site, by=commander, day=day, category="lodging", amount=Decimal("123.45"))
    Client().force_login(commander)  # a session row: a data backup leaves it out, pg_dump keeps it
    return fingerprint()


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def restored_fingerprint(env: dict[str, str]) -> dict[str, Any]:
    script = (
        "import django, json; django.setup()\n"
        "from tests.test_backup_restore import check_restored\n"
        "print('FINGERPRINT ' + json.dumps(check_restored()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("FINGERPRINT ")]
    return dict(json.loads(line.removeprefix("FINGERPRINT ")))


@contextmanager
def new_database(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A new, empty database of the engine under test; yields a process environment for it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "deploy_tracker.settings"
    if connection.vendor != "postgresql":
        env["SQLITE_PATH"] = str(tmp_path / "restored.sqlite3")
        yield env
        return
    name = f"{connection.settings_dict['NAME']}_restore_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        env["DATABASE_URL"] = database_url().rsplit("/", 1)[0] + f"/{name}"
        yield env
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def assert_same(restored: dict[str, Any], original: dict[str, Any], *, not_restored: set[str]) -> None:
    assert restored["checksums"] == original["checksums"]
    counts = dict(original["counts"])
    for table in not_restored:
        assert counts[table] > 0  # the comparison below really shows it left out
        counts[table] = 0
    assert restored["counts"] == counts
    assert restored["next_event"] > original["newest_event"]
    for table in ("incidents_deployment", "incidents_event", "incidents_timeentry", "incidents_expense"):
        assert counts[table] > 0


def test_a_data_backup_restores_every_row_into_a_new_database(
    history: dict[str, Any], tmp_path: Path
) -> None:
    backup = tmp_path / "site.xml"
    call_command("backup", format="data", output=backup, stdout=StringIO())
    assert backup.stat().st_size > 0
    with new_database(tmp_path) as env:
        done = manage(env, "restore", str(backup))
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same(restored_fingerprint(env), history, not_restored={"django_session"})
    # Into a database that holds data (this one) it would merge two copies: refused, and said why.
    with pytest.raises(CommandError, match=r"already holds data .*Restore into a new, empty database"):
        call_command("restore", backup)
    assert fingerprint() == history


@pytest.mark.postgresql
def test_a_pg_dump_backup_restores_every_row_into_a_new_database(
    history: dict[str, Any], tmp_path: Path
) -> None:
    backup = tmp_path / "site.dump"
    call_command("backup", output=backup, stdout=StringIO())
    assert backup.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format
    with new_database(tmp_path) as env:
        done = manage(env, "restore", str(backup))
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same(restored_fingerprint(env), history, not_restored=set())  # a full copy
    with pytest.raises(CommandError, match=r"is not empty\. Restore into a new one"):
        call_command("restore", backup)
    assert fingerprint() == history
