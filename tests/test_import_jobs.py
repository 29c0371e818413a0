"""Imports as background jobs: a big upload checked and stored, the same import run by a worker,
its counts or its problems on the page, and the job seen by the one who started it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from pytest_django import Settings
from rest_framework.test import APIClient

from incidents import jobs
from incidents.models import Event, Facility, Job
from resources.importing import import_roster
from resources.models import Agency, Availability, Credential, Expert, Qualification
from tests import factories
from tests.conftest import World, database_url
from tests.test_import_incident import facility, incident_book, incident_row
from tests.test_import_roster import credential, expert, roster, window

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
ROSTER = reverse("import-roster")
INCIDENT = reverse("import-incident")


@pytest.fixture(autouse=True)
def media(settings: Settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def background(settings: Settings) -> None:
    settings.IMPORT_BACKGROUND_BYTES = 1  # every file is "big"


@pytest.fixture
def admin(world: World) -> User:
    factories.QualificationFactory(code="RN")
    factories.QualificationFactory(code="EPI")
    return factories.UserFactory(username="admin", is_staff=True)


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def uploads_left(media: Path) -> list[str]:
    folder = media / "imports"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def big_roster(tmp_path: Path) -> Path:
    """Three people (one already on the roster, changed), their licenses and windows, a new agency."""
    return roster(
        tmp_path,
        experts=[
            expert(),
            expert("ben@example.org", first_name="Ben", agency="Tribal Health", latitude=46.6),
            expert("existing@example.org", first_name="Existing", hourly_rate=70),
        ],
        credentials=[
            credential(),
            credential("ben@example.org", qualification="EPI", verified="no"),
            credential("existing@example.org", number="RN-77", expires_on=date(2028, 1, 31)),
        ],
        availability=[
            window(),
            window("ben@example.org"),
            window("existing@example.org", end=date(2027, 5, 1)),
        ],
    )


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every roster row as the import leaves it, by natural keys (ids and timestamps aside)."""
    return {
        "experts": list(
            Expert.objects.order_by("email").values_list(
                "email",
                "first_name",
                "last_name",
                "phone",
                "agency__name",
                "home_place",
                "latitude",
                "longitude",
                "max_travel_km",
                "hourly_rate",
                "overtime_multiplier",
                "active",
            )
        ),
        "credentials": list(
            Credential.objects.order_by("expert__email", "qualification__code").values_list(
                "expert__email",
                "qualification__code",
                "number",
                "jurisdiction",
                "verified",
                "verified_by__username",
                "expires_on",
            )
        ),
        "availability": list(
            Availability.objects.order_by("expert__email", "start").values_list(
                "expert__email", "start", "end"
            )
        ),
        "agencies": list(Agency.objects.order_by("name").values_list("name", "fringe_rate")),
        "qualifications": list(Qualification.objects.order_by("code").values_list("code", "name", "kind")),
    }


# --- A background roster import ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the job starts when the upload's work commits
def test_a_background_roster_import_writes_what_the_synchronous_one_would(
    admin: User, client: Client, tmp_path: Path, media: Path, background: None
) -> None:
    factories.ExpertFactory(email="existing@example.org", first_name="Old", hourly_rate=50)
    before = snapshot()
    path = big_roster(tmp_path)
    with transaction.atomic():  # the import during the request, as the page did before: then undone
        sync = import_roster(path, by=admin)
        synchronous = snapshot()
        transaction.set_rollback(True)
    assert snapshot() == before != synchronous

    client.force_login(admin)
    response = client.post(ROSTER, {"file": upload(path)})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{ROSTER}?job={job.pk}"
    assert (job.kind, job.status, job.incident_id) == ("import", "done", None)
    assert job.options["book"] == "roster" and job.options["dry_run"] is False
    assert snapshot() == synchronous
    assert job.result["counts"] == {
        sheet: {"created": c.created, "updated": c.updated, "unchanged": c.unchanged, "removed": c.removed}
        for sheet, c in sync.counts.items()
    }
    assert uploads_left(media) == []  # the stored upload is gone once imported
    assert not Event.objects.exists()  # no incident, so no incident log: the job row is the record

    html = client.get(response["Location"]).content.decode()
    assert "Imported roster.xlsx" in html  # the page's own result block, as for a file imported at once
    assert '<tr id="counts-experts"><th scope="row">experts</th><td>2</td><td>1</td><td>0</td>' in html
    assert f'id="job-{job.pk}" class="done"' in html and "data-job=" not in html


@pytest.mark.django_db(transaction=True)
def test_a_failed_background_import_keeps_nothing_and_the_job_carries_the_problems(
    admin: User, client: Client, tmp_path: Path, media: Path, background: None
) -> None:
    bad = [expert(latitude=95), *(expert(f"p{i}@example.org", latitude=100 + i) for i in range(250))]
    client.force_login(admin)
    response = client.post(ROSTER, {"file": upload(roster(tmp_path, experts=bad))})
    job = Job.objects.get()
    assert job.status == "failed" and job.error == "roster.xlsx: 251 problems; nothing was imported."
    problems = job.result["problems"]
    assert len(problems) == 200 and job.result["more"] == 51  # the first 200, as the page shows them
    assert problems[0] == "experts:2:latitude: latitude 95 is outside -90…90"
    assert not Expert.objects.filter(email__in=["ana@example.org", "p0@example.org"]).exists()
    assert not Agency.objects.filter(name="County Health").exists()
    assert uploads_left(media) == []
    html = client.get(response["Location"]).content.decode()
    assert "<code>experts:2:latitude: latitude 95 is outside -90…90</code>" in html
    assert "… and 51 more." in html and 'id="import-error"' in html


@pytest.mark.django_db(transaction=True)
def test_a_background_dry_run_writes_nothing(
    admin: User, client: Client, tmp_path: Path, background: None
) -> None:
    client.force_login(admin)
    response = client.post(ROSTER, {"file": upload(roster(tmp_path)), "dry_run": "on"})
    assert Job.objects.get().result["dry_run"] is True
    assert "Dry run: nothing was written" in client.get(response["Location"]).content.decode()
    assert not Expert.objects.filter(email="ana@example.org").exists()


def test_small_files_are_still_imported_at_once(admin: User, client: Client, tmp_path: Path) -> None:
    client.force_login(admin)  # IMPORT_BACKGROUND_BYTES: 1 MB by default
    page = client.post(ROSTER, {"file": upload(roster(tmp_path))})
    assert page.status_code == 200 and "Imported roster.xlsx" in page.content.decode()
    assert not Job.objects.exists()


def test_what_is_not_a_spreadsheet_is_refused_before_it_is_stored(
    admin: User, client: Client, media: Path, background: None
) -> None:
    client.force_login(admin)
    page = client.post(ROSTER, {"file": SimpleUploadedFile("roster.xlsx", b"not a workbook")})
    assert page.status_code == 400
    assert "roster.xlsx is not an xlsx workbook or CSV file." in page.content.decode()
    assert not Job.objects.exists() and uploads_left(media) == []


@pytest.mark.parametrize("who", ["commander", "outsider"])
def test_others_may_not_start_a_roster_import(
    world: World, client: Client, tmp_path: Path, media: Path, background: None, who: str
) -> None:
    client.force_login(getattr(world, who))
    assert client.post(ROSTER, {"file": upload(roster(tmp_path))}).status_code == 403
    assert not Job.objects.exists() and uploads_left(media) == []


# --- An incident workbook ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_commander_imports_their_incident_in_the_background(
    world: World, admin: User, client: Client, tmp_path: Path, background: None
) -> None:
    client.force_login(world.commander)
    path = incident_book(
        tmp_path, incident=[incident_row(number="WA-2026-01")], facilities=[facility("NEW-01")], requests=[]
    )
    response = client.post(INCIDENT, {"file": upload(path)})
    job = Job.objects.get()
    assert response["Location"] == f"{INCIDENT}?job={job.pk}" and job.status == "done", job.error
    assert Facility.objects.filter(incident=world.incident, code="NEW-01").exists()
    # The incident the service rules on is read from the file: a commander of another one fails there.
    client.force_login(world.other_commander)
    client.post(INCIDENT, {"file": upload(path)})
    refused = Job.objects.exclude(pk=job.pk).get()
    assert refused.status == "failed"
    assert (
        refused.error == "You may not import incident WA-2026-01: only administrators and its commanders may."
    )
    assert client.get(f"{INCIDENT}?job={refused.pk}").status_code == 200
    assert client.get(f"{ROSTER}?job={refused.pk}").status_code == 403  # not theirs to open at all


# --- Who sees the job --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("superuser", 200), ("other_admin", 404), ("commander", 404), ("outsider", 404)],
)
def test_an_import_job_is_seen_by_the_one_who_started_it(
    world: World, admin: User, tmp_path: Path, who: str, status: int
) -> None:
    job = Job.objects.create(
        kind=Job.Kind.IMPORT,
        requested_by=admin,
        options={"book": "roster", "dry_run": False, "file": "r.xlsx"},
    )
    users = {"admin": admin, "other_admin": factories.UserFactory(username="admin2", is_staff=True)}
    client = APIClient()
    client.force_authenticate(users.get(who) or getattr(world, who))
    response = client.get(reverse("api-job", args=[job.pk]))
    assert response.status_code == status
    if status == 200:
        assert response.json()["incident"] is None and response.json()["progress"] == {}


def test_another_administrator_cannot_open_the_page_of_someone_elses_import(
    world: World, admin: User, client: Client
) -> None:
    job = Job.objects.create(kind=Job.Kind.IMPORT, requested_by=world.superuser, options={"book": "roster"})
    client.force_login(admin)
    assert client.get(f"{ROSTER}?job={job.pk}").status_code == 404
    assert client.get(f"{ROSTER}?job=nonsense").status_code == 404
    assert client.get(f"{INCIDENT}?job={job.pk}").status_code == 404  # a roster job, not an incident one


def test_progress_without_an_incident_is_kept_on_the_job_only(admin: User) -> None:
    job = Job.objects.create(kind=Job.Kind.IMPORT, requested_by=admin, options={"book": "roster"})
    jobs.Progress(job)("reading")  # no incident, so no channel to send to: it must not try
    job.refresh_from_db()
    assert job.progress == {"stage": "reading", "done": 0, "total": 0}


def test_an_import_job_needs_its_book(admin: User) -> None:
    from deploy_tracker.errors import InvalidInput

    with pytest.raises(InvalidInput, match="book: choose roster or incident"):
        jobs.start(None, Job.Kind.IMPORT, by=admin, options={"book": "payroll"})
    assert not Job.objects.exists()


# --- With the database queue and a worker process ----------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the worker is another process: it sees committed rows
def test_with_the_database_queue_the_page_follows_the_job_until_the_worker_ran_it(
    admin: User, client: Client, tmp_path: Path, media: Path, background: None, settings: Settings
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
    client.force_login(admin)
    response = client.post(ROSTER, {"file": upload(big_roster(tmp_path))})
    job = Job.objects.get()
    html = client.get(response["Location"]).content.decode()
    assert job.status == "queued" and len(uploads_left(media)) == 1  # stored, waiting for a worker
    assert f'data-job="/api/jobs/{job.pk}/" data-end="reload"' in html
    assert '<script src="/static/incidents/job.js" defer></script>' in html
    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url(),
            "TASK_BACKEND": "database",
            "MEDIA_ROOT": str(media),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    job.refresh_from_db()
    assert job.status == "done", job.error
    assert job.progress == {"stage": "checking and writing", "done": 0, "total": 0}
    emails = ["ana@example.org", "ben@example.org", "existing@example.org"]
    assert Expert.objects.filter(email__in=emails).count() == 3
    assert uploads_left(media) == []
    html = client.get(response["Location"]).content.decode()
    assert "Imported roster.xlsx" in html and "data-job=" not in html
