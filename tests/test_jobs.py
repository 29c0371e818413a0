"""Background jobs through django.tasks: started over the API, progress live, the end logged."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from incidents import jobs
from incidents.models import Deployment, Event, IncidentMembership, Job
from tests import factories
from tests.conftest import World, database_url

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def nurse(world: World) -> None:
    expert = factories.ExpertFactory(email="near@example.org", latitude=47.61, longitude=-122.33)
    factories.CredentialFactory(expert=expert, qualification=world.request.qualification)
    factories.AvailabilityFactory(expert=expert, end=world.request.end + timedelta(days=30))


def client_for(user: object) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)  # type: ignore[arg-type]
    return client


def match_in_background(world: World, **options: Any) -> Any:
    return client_for(world.commander).post(
        reverse("api-incident-match", args=[world.incident.pk]),
        {"background": True, **options},
        format="json",
    )


@pytest.mark.django_db(transaction=True)  # the job starts when the request's work commits
def test_matching_in_the_background_answers_202_with_the_job_and_keeps_the_result(
    world: World, nurse: None
) -> None:
    response = match_in_background(world, radius_km=50)
    assert response.status_code == 202
    body = response.json()
    # The embedded default runs the job at once; a real queue would answer "queued".
    assert (body["kind"], body["status"], body["options"]) == (
        "matching",
        "done",
        {"dry_run": False, "radius_km": 50.0, "include_unverified": False},
    )
    assert [p["expert"] for p in body["result"]["proposals"]] == ["near@example.org"]
    assert Deployment.objects.filter(status="proposed").count() == 1
    (end,) = Event.objects.filter(type="job.finished")
    assert end.data["job"] == body["id"] and end.data["summary"]["proposed"] == 1
    assert end.actor_id == world.commander.pk and end.expert_id is None  # members only


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("commander", 200),
        ("finance", 200),
        ("viewer", 200),
        ("other_commander", 404),
        ("outsider", 404),
        ("alice_user", 404),
    ],
)
def test_a_job_is_seen_by_the_incidents_members_only(world: World, who: str, status: int) -> None:
    job = Job.objects.create(incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)
    response = client_for(getattr(world, who)).get(reverse("api-job", args=[job.pk]))
    assert response.status_code == status
    if status == 200:
        assert response.json()["status"] == "queued"


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_only_commanders_start_matching_jobs(world: World, who: str) -> None:
    response = client_for(getattr(world, who)).post(
        reverse("api-incident-match", args=[world.incident.pk]), {"background": True}, format="json"
    )
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_a_job_whose_asker_lost_the_right_fails_with_the_reason_logged(world: World) -> None:
    job = Job.objects.create(incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)
    IncidentMembership.objects.filter(user=world.commander).update(role=IncidentMembership.Role.VIEWER)
    assert jobs.run(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "Only a commander" in job.error and job.finished_at is not None
    (end,) = Event.objects.filter(type="job.failed")
    assert end.data == {"job": job.pk, "kind": "matching", "error": job.error}


def test_a_job_runs_once_however_often_it_is_picked_up(world: World, nurse: None) -> None:
    job = jobs.start(world.incident, Job.Kind.MATCHING, by=world.commander)  # not run: no commit here
    assert jobs.run(job.pk) == "done"
    assert jobs.run(job.pk) == "done"
    assert Event.objects.filter(type="job.finished").count() == 1
    assert Event.objects.filter(type="deployment.proposed").count() == 1


@pytest.fixture
def database_queue(settings: Any) -> None:
    """TASK_BACKEND=database for one test: jobs wait in the database for `db_worker`."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


@pytest.mark.django_db(transaction=True)  # the worker is another process: it sees committed rows
def test_with_the_database_queue_the_worker_command_runs_the_job(
    world: World, nurse: None, database_queue: None
) -> None:
    response = match_in_background(world)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert not Deployment.objects.exists()
    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url(), "TASK_BACKEND": "database"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "done" and job.result is not None
    assert [p["expert"] for p in job.result["proposals"]] == ["near@example.org"]
    assert Deployment.objects.filter(status="proposed").count() == 1
    assert Event.objects.filter(type="job.finished", data__job=job.pk).exists()
