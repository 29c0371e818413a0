"""Exports as background jobs: started over the API and the report pages, written by a worker with
progress, downloaded only by those who may read that report, removed after their retention."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from pytest_django import Settings
from rest_framework.test import APIClient

from incidents import jobs
from incidents.models import Event, IncidentMembership, Job
from reports import service
from reports.spec import FIRST_ROW, HEADER_ROW
from reports.writers import PROGRESS_ROWS, write_csv, write_xlsx
from tests.conftest import World, database_url
from tests.test_reports_world import START, entry, on_site

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FINANCE_SHEETS = ["Summary", "Labor", "By person", "Expenses", "Daily burn"]


@pytest.fixture(autouse=True)
def media(settings: Settings, tmp_path: Path) -> Path:
    """Each test's own storage folder (a worker process is pointed at it too)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def worked(world: World) -> World:
    """Alice and Bob on site, with approved hours on three days between them and a lodging claim."""
    alice, bob = on_site(world, world.alice), on_site(world, world.bob)
    entry(world, alice, START, "8.00", "2.00")
    entry(world, alice, START.replace(day=START.day + 1), "9.50")
    entry(world, bob, START, "7.25")
    return world


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def start_export(user: User | None, kind: str = "finance", **params: Any) -> Any:
    params.setdefault("incident", "WA-2026-01")
    params.setdefault("format", "xlsx")
    return client_for(user).post(reverse("api-report-jobs", args=[kind]), params, format="json")


def download(user: User | None, job_id: int) -> Any:
    return client_for(user).get(reverse("api-job-file", args=[job_id]))


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def data_rows(book: openpyxl.Workbook, sheet: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in book[sheet].iter_rows(min_row=FIRST_ROW + 1, values_only=True)]


# --- Started, written, downloaded --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the job starts when the request's work commits
def test_a_finance_export_in_the_background_downloads_as_the_same_workbook(worked: World) -> None:
    response = start_export(worked.finance)
    assert response.status_code == 202, response.content
    job = response.json()
    # The embedded default runs it at once; a real queue would answer "queued".
    assert (job["kind"], job["status"], job["incident"]) == ("export", "done", worked.incident.pk)
    assert job["options"] == {
        "report": "finance",
        "format": "xlsx",
        "sheet": None,
        "filters": {"incident": ["WA-2026-01"]},
    }
    result = job["result"]
    assert result["rows"] == {"labor": 3, "summary": 3, "people": 2, "expenses": 0, "burn": 2}
    assert re.fullmatch(r"WA-2026-01-finance-\d{8}-\d{4}\.xlsx", result["name"])
    assert result["download"] == f"/api/jobs/{job['id']}/file/"

    got = download(worked.finance, job["id"])
    assert got.status_code == 200
    assert got["Content-Type"] == XLSX
    assert got["Content-Disposition"] == f'attachment; filename="{result["name"]}"'
    content = body(got)
    assert len(content) == result["size"] == int(got["Content-Length"])
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    assert book.sheetnames == FINANCE_SHEETS
    # The very rows of the download written during the request (only the generation time differs).
    now = client_for(worked.finance).get(
        reverse("api-report", args=["finance"]), {"incident": "WA-2026-01", "format": "xlsx"}
    )
    direct = openpyxl.load_workbook(io.BytesIO(body(now)), read_only=True)
    for sheet in FINANCE_SHEETS:
        assert data_rows(book, sheet) == data_rows(direct, sheet), sheet
    assert [c.value for c in book["Labor"][HEADER_ROW + 1]][:3] == [
        c.value for c in direct["Labor"][HEADER_ROW + 1]
    ][:3]
    (end,) = Event.objects.filter(type="job.finished", data__job=job["id"])
    # Every member sees the end of it: which report and how big, never a figure from it.
    assert end.data["summary"] == {"report": "finance", "format": "xlsx", "rows": 10, "size": result["size"]}


@pytest.mark.django_db(transaction=True)
def test_a_csv_export_of_one_sheet_with_filters(worked: World) -> None:
    response = start_export(worked.commander, "finance", format="csv", sheet="people", facility="")
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["options"]["sheet"] == "people" and job["result"]["rows"] == {"people": 2}
    got = download(worked.commander, job["id"])
    assert got["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r"WA-2026-01-finance-people-\d{8}-\d{4}\.csv", job["result"]["name"])
    assert got["Content-Disposition"] == f'attachment; filename="{job["result"]["name"]}"'
    lines = list(csv.reader(io.StringIO(body(got).decode("utf-8-sig"))))
    assert len(lines) == 1 + 2  # header and two people


# --- Who may start, see and download -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("viewer", 403),  # a member, told why: finance is for finance officers and commanders
        ("other_commander", 404),
        ("outsider", 404),
        ("alice_user", 404),
        ("anonymous", 403),
    ],
)
def test_only_the_reports_readers_start_its_export(world: World, who: str, status: int) -> None:
    response = start_export(None if who == "anonymous" else getattr(world, who))
    assert response.status_code == status
    if who == "viewer":
        assert "finance officers and commanders" in response.json()["detail"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "pdf"}, "format"),
        ({"format": "csv", "sheet": "nope"}, "sheet"),
        ({"colour": "red"}, "colour"),
        ({"from": "yesterday"}, "from"),
        ({"status": [["approved"]]}, "status"),
    ],
)
def test_bad_parameters_are_refused_before_a_job_is_queued(
    world: World, params: dict[str, Any], field: str
) -> None:
    response = start_export(world.finance, **params)
    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert not Job.objects.exists()


def finished_export(world: World, kind: str, by: User) -> Job:
    job = jobs.start(world.incident, Job.Kind.EXPORT, by=by, options=export_options(kind))
    assert jobs.run(job.pk) == "done"  # no commit in this test: run it as the worker would
    job.refresh_from_db()
    return job


def export_options(kind: str) -> dict[str, Any]:
    return {"report": kind, "format": "xlsx", "sheet": None, "filters": {"incident": ["WA-2026-01"]}}


@pytest.mark.parametrize(
    ("who", "finance", "logistics"),
    [
        ("finance", 200, 200),
        ("commander", 200, 200),
        ("superuser", 200, 200),
        ("viewer", 404, 200),
        ("other_commander", 404, 404),
        ("outsider", 404, 404),
        ("alice_user", 404, 404),
    ],
)
def test_the_job_and_its_file_are_for_the_reports_readers(
    worked: World, who: str, finance: int, logistics: int
) -> None:
    user = getattr(worked, who)
    for kind, status in (("finance", finance), ("logistics", logistics)):
        job = finished_export(worked, kind, worked.finance)
        assert client_for(user).get(reverse("api-job", args=[job.pk])).status_code == status, kind
        got = download(user, job.pk)
        assert got.status_code == status, kind
        if status == 200:
            openpyxl.load_workbook(io.BytesIO(body(got)), read_only=True)
        else:
            assert got.json() == {"error": "not_found", "detail": "No such export among those you may see."}
    assert download(None, job.pk).status_code == 403


def test_the_right_is_checked_again_at_download(worked: World) -> None:
    job = finished_export(worked, "finance", worked.finance)
    assert download(worked.finance, job.pk).status_code == 200
    IncidentMembership.objects.filter(user=worked.finance).update(role=IncidentMembership.Role.VIEWER)
    assert download(worked.finance, job.pk).status_code == 404
    # They asked for it, so the job stays theirs to see (while they see the incident), not the file.
    assert client_for(worked.finance).get(reverse("api-job", args=[job.pk])).status_code == 200


def test_a_matching_job_has_no_file(world: World) -> None:
    job = Job.objects.create(incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)
    assert download(world.commander, job.pk).status_code == 404
    assert download(world.commander, 999_999).status_code == 404


def test_no_file_while_queued_or_after_failing(worked: World) -> None:
    job = jobs.start(worked.incident, Job.Kind.EXPORT, by=worked.finance, options=export_options("finance"))
    got = download(worked.finance, job.pk)  # not run: nothing commits in this test
    assert got.status_code == 409
    assert got.json() == {"error": "not_ready", "detail": "The export is queued; its file is not ready yet."}
    IncidentMembership.objects.filter(user=worked.finance).update(role=IncidentMembership.Role.VIEWER)
    assert jobs.run(job.pk) == "failed"  # the worker checks the right again, as the requester
    job.refresh_from_db()
    assert job.error == "The finance report of WA-2026-01 is for its finance officers and commanders."
    IncidentMembership.objects.filter(user=worked.finance).update(role=IncidentMembership.Role.FINANCE)
    got = download(worked.finance, job.pk)
    assert got.status_code == 409 and "failed" in got.json()["detail"]
    assert not default_storage.exists("exports")


def test_old_files_are_pruned_and_then_gone(worked: World, media: Path) -> None:
    job = finished_export(worked, "roster", worked.viewer)
    assert (media / job.result["file"]).is_file()
    out = io.StringIO()
    call_command("prune_exports", stdout=out)  # younger than EXPORT_RETENTION_HOURS: kept
    assert "0 file(s)" in out.getvalue() and (media / job.result["file"]).is_file()
    (media / "imports").mkdir()
    (media / "imports" / "abandoned-roster.xlsx").write_bytes(b"PK")  # an upload no job took
    call_command("prune_exports", "--hours", "0", stdout=out)
    assert not (media / job.result["file"]).exists()
    assert not (media / "imports" / "abandoned-roster.xlsx").exists()
    got = download(worked.viewer, job.pk)
    assert got.status_code == 410 and got.json()["error"] == "gone"
    assert client_for(worked.viewer).get(reverse("api-job", args=[job.pk])).json()["status"] == "done"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_under_asgi_the_stored_file_streams_from_an_async_iterator(worked: World) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections
    from django.test import AsyncClient

    job = await sync_to_async(finished_export)(worked, "roster", worked.viewer)
    client = AsyncClient()
    await client.aforce_login(worked.viewer)
    with warnings.catch_warnings():  # Django would read a synchronous iterator whole first
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response = await client.get(reverse("api-job-file", args=[job.pk]))
        assert response.status_code == 200 and response.is_async
        content = b"".join([block async for block in response.streaming_content])
    assert len(content) == job.result["size"]
    openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    await sync_to_async(connections.close_all)()  # the view's thread kept a connection


# --- Progress ----------------------------------------------------------------------------------------


def test_the_writers_report_rows_per_sheet_and_write_the_same_with_or_without(
    worked: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PROGRESS_ROWS == 1_000
    monkeypatch.setattr("reports.writers.PROGRESS_ROWS", 2)  # blocks of 2: the Labor sheet's 3 rows
    filters = service.prepare("finance", QueryDict("incident=WA-2026-01"), user=worked.finance)
    heard: list[tuple[str, int]] = []
    counts = write_xlsx(
        service.build("finance", filters, user=worked.finance),
        io.BytesIO(),
        progress=lambda s, n: heard.append((s, n)),
    )
    assert counts == write_xlsx(service.build("finance", filters, user=worked.finance), io.BytesIO())
    labor = [n for sheet, n in heard if sheet == "labor"]
    assert labor == [0, 2, 3] and counts["labor"] == 3
    assert {sheet for sheet, _ in heard} == set(counts)
    for sheet, rows in counts.items():  # every sheet announced as it begins, and its last count
        mine = [n for s, n in heard if s == sheet]
        assert mine[0] == 0 and mine[-1] == rows
    heard.clear()
    rows = write_csv(
        service.build("finance", filters, user=worked.finance),
        "labor",
        io.BytesIO(),
        progress=lambda s, n: heard.append((s, n)),
    )
    assert rows == 3 and heard == [("labor", 0), ("labor", 2), ("labor", 3)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_progress_reaches_the_incidents_channel_then_the_end(worked: World) -> None:
    from channels.db import database_sync_to_async

    from tests.test_live import connect, headers_for

    commander = await database_sync_to_async(headers_for)(worked.commander)
    alice = await database_sync_to_async(headers_for)(worked.alice_user)
    dashboard = await connect(f"/ws/incidents/{worked.incident.pk}/", commander)
    responder = await connect("/ws/me/", alice)
    job = await database_sync_to_async(
        lambda: jobs.start(
            worked.incident, Job.Kind.EXPORT, by=worked.finance, options=export_options("finance")
        )
    )()
    stages: list[str] = []
    ended = None
    while ended is None:
        message = await dashboard.receive_json_from(timeout=5)
        if "job" in message:
            assert (message["job"]["id"], message["job"]["kind"]) == (job.pk, "export")
            stages.append(message["job"]["stage"])
        ended = next((e for e in message.get("events", []) if e["type"].startswith("job.")), None)
    assert stages[0] == "started" and stages[-1] == "saving"
    assert set(stages[1:-1]) == {"labor", "summary", "people", "expenses", "burn"}
    assert ended["type"] == "job.finished" and ended["data"]["summary"]["rows"] == 10
    assert await responder.receive_nothing(timeout=0.2)  # for the incident's members only
    await responder.disconnect()
    await dashboard.disconnect()
    saved = await database_sync_to_async(lambda: Job.objects.get(pk=job.pk).progress)()
    assert saved == {"stage": "saving", "done": 0, "total": 0}  # what a polling page last saw


# --- With the database queue and a worker process ----------------------------------------------------


@pytest.fixture
def database_queue(settings: Settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def run_worker(media: Path) -> None:
    worker = subprocess.run(
        [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
        cwd=ROOT,
        # The worker and the web must share the storage folder: MEDIA_ROOT, as in production.
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


@pytest.mark.django_db(transaction=True)  # the worker is another process: it sees committed rows
def test_with_the_database_queue_the_worker_writes_the_file(
    worked: World, database_queue: None, media: Path
) -> None:
    response = start_export(worked.commander, "logistics")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    job_id = response.json()["id"]
    assert download(worked.commander, job_id).status_code == 409
    run_worker(media)
    job = Job.objects.get(pk=job_id)
    assert job.status == "done", job.error
    got = download(worked.viewer, job_id)  # logistics: every member reads it
    assert got.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(body(got)), read_only=True)
    assert book.sheetnames == ["Facilities", "By day", "People"]
    assert Event.objects.filter(type="job.finished", data__job=job_id).exists()


# --- The report pages --------------------------------------------------------------------------------


def prepare(client: Client, file: str, kind: str = "finance", **query: str) -> Any:
    query.setdefault("incident", "WA-2026-01")
    url = reverse("report-prepare", args=[kind]) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(url, {"file": file})


@pytest.mark.django_db(transaction=True)
def test_the_report_page_prepares_a_file_and_links_to_it(worked: World, client: Client) -> None:
    client.force_login(worked.finance)
    page = client.get(reverse("report", args=["finance"]), {"incident": "WA-2026-01"}).content.decode()
    assert 'action="/reports/finance/prepare/?incident=WA-2026-01' in page
    assert '<option value="csv:people">CSV: people</option>' in page
    response = prepare(client, "csv:people", facility="")
    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/reports/finance/?facility=&incident=WA-2026-01&job={job.pk}"
    assert job.options["sheet"] == "people" and job.status == "done"
    html = client.get(response["Location"]).content.decode()
    assert f'id="job-{job.pk}" class="done"' in html
    assert f'href="/api/jobs/{job.pk}/file/" download>Download</a>' in html  # shown: not hidden
    assert f"ready: {job.result['name']} · 2 rows" in html
    assert "data-job=" not in html  # ended: nothing to follow
    assert "/api/reports/finance/?facility=&amp;incident=WA-2026-01&amp;format=xlsx" in html  # no job=


@pytest.mark.django_db(transaction=True)
def test_a_queued_export_is_followed_by_the_pages_script(
    worked: World, client: Client, database_queue: None
) -> None:
    client.force_login(worked.commander)
    response = prepare(client, "xlsx", "logistics")
    job = Job.objects.get()
    html = client.get(response["Location"]).content.decode()
    assert f'data-job="/api/jobs/{job.pk}/"' in html
    assert "queued: waiting for a worker…" in html
    assert f'href="/api/jobs/{job.pk}/file/" download hidden>' in html
    assert '<script src="/static/incidents/job.js" defer></script>' in html
    assert "style=" not in html.split('id="export-job"')[1].split("</ul>")[0]  # CSP: no inline style


def test_the_page_refuses_what_the_api_refuses(world: World, client: Client) -> None:
    client.force_login(world.viewer)
    assert prepare(client, "xlsx").status_code == 403  # finance is not for viewers
    client.force_login(world.outsider)
    assert prepare(client, "xlsx", "logistics").status_code == 404
    client.force_login(world.commander)
    response = prepare(client, "pdf")
    assert response.status_code == 302 and "job=" not in response["Location"]
    assert "format: choose xlsx or csv." in client.get(response["Location"]).content.decode()
    assert client.get(reverse("report-prepare", args=["finance"])).status_code == 405
    assert not Job.objects.exists()


def test_someone_elses_job_is_not_shown_on_a_page(worked: World, client: Client) -> None:
    job = finished_export(worked, "finance", worked.finance)
    logistics = finished_export(worked, "logistics", worked.finance)
    client.force_login(worked.viewer)
    url = reverse("report", args=["finance"])
    assert client.get(url, {"incident": "WA-2026-01", "job": job.pk}).status_code == 403  # the page itself
    url = reverse("report", args=["logistics"])
    assert client.get(url, {"incident": "WA-2026-01", "job": logistics.pk}).status_code == 200
    assert client.get(url, {"incident": "WA-2026-01", "job": job.pk}).status_code == 404  # a finance one
    client.force_login(worked.commander)
    assert client.get(url, {"incident": "WA-2026-01", "job": "x"}).status_code == 404
