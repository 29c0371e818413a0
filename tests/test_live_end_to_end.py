"""End to end over real sockets: a Daphne server on Redis, a `websockets` client as commander,
a responder accepting over HTTP, and the event arriving — plus a second server process sharing
the Redis layer, so an event made through one reaches a client of the other."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dj_database_url
import pytest
import websockets
from django.conf import settings
from rest_framework.authtoken.models import Token

from incidents import offers, workflow
from incidents.models import Deployment
from tests.conftest import World, database_url
from tests.servers import daphnes

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "DEBUG": "true",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TASK_BACKEND": "database",  # as in production: background work waits for `db_worker`
    }


@pytest.fixture
def servers() -> Iterator[list[str]]:
    """Two Daphne processes on the same database and the same Redis channel layer."""
    assert dj_database_url  # the server parses DATABASE_URL with it too
    with daphnes(server_env(), 2) as addresses:
        yield addresses


def accept_by_link(base: str, deployment: Deployment) -> int:
    """What a responder's phone does: open the emailed link, then press Accept."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = f"http://{base}/offers/{offers.answer_token(deployment)}/"
    page = opener.open(url, timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf, page[:500]
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf.group(1), "answer": "accept"}).encode()
    request = urllib.request.Request(url, data=body, headers={"Referer": url})
    return int(opener.open(request, timeout=10).status)


def test_an_accept_over_http_reaches_a_commander_on_another_server(world: World, servers: list[str]) -> None:
    d = workflow.offer(workflow.propose(world.request, world.alice, by=world.commander), by=world.commander)
    token = Token.objects.create(user=world.commander).key

    async def scenario() -> list[dict]:
        received: list[dict] = []
        headers = {"Authorization": f"Token {token}"}
        async with websockets.connect(
            f"ws://{servers[0]}/ws/incidents/{world.incident.pk}/", additional_headers=headers
        ) as ws:
            await asyncio.sleep(0.3)  # joined its group
            status = await asyncio.to_thread(accept_by_link, servers[1], d)  # through the OTHER server
            assert status == 200
            while not any(e["type"] == "deployment.accepted" for e in received):
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                received.extend(message["events"])
        return received

    events = asyncio.run(scenario())
    accepted = [e for e in events if e["type"] == "deployment.accepted"]
    assert len(accepted) == 1
    assert accepted[0]["data"]["deployment"] == d.pk and accepted[0]["data"]["via"] == "email link"
    d.refresh_from_db()
    assert d.status == Deployment.Status.ACCEPTED


def test_a_worker_process_reports_a_jobs_progress_to_a_commander_on_a_server(
    world: World, servers: list[str]
) -> None:
    """Matching queued over HTTP on one server, run by `manage.py db_worker` in its own process:
    the commander, connected to the other server, sees the progress and the end."""
    token = Token.objects.create(user=world.commander).key
    headers = {"Authorization": f"Token {token}"}

    def start_matching() -> dict:
        request = urllib.request.Request(
            f"http://{servers[1]}/api/incidents/{world.incident.pk}/match/",
            data=json.dumps({"background": True}).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
            return dict(json.loads(response.read()))

    def work() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "--no-reload"],
            cwd=ROOT,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    async def scenario() -> tuple[dict, list[dict], list[dict]]:
        stages: list[dict] = []
        events: list[dict] = []
        async with websockets.connect(
            f"ws://{servers[0]}/ws/incidents/{world.incident.pk}/", additional_headers=headers
        ) as ws:
            await asyncio.sleep(0.3)  # joined its group
            job = await asyncio.to_thread(start_matching)
            assert job["status"] == "queued"
            worker = asyncio.create_task(asyncio.to_thread(work))
            while not any(e["type"] == "job.finished" for e in events):
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                if "job" in message:
                    stages.append(message["job"])
                events.extend(message.get("events", []))
            finished = await worker
            assert finished.returncode == 0, finished.stderr[-2000:]
        return job, stages, events

    job, stages, events = asyncio.run(scenario())
    assert {s["id"] for s in stages} == {job["id"]}
    assert "solving" in [s["stage"] for s in stages]
    (end,) = [e for e in events if e["type"] == "job.finished"]
    assert end["data"]["job"] == job["id"]
