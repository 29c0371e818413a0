"""Faults over real sockets: the database and Redis going away under running Daphne servers.

* PostgreSQL: a TCP proxy (tests/faults.py) sits between a server and the real PostgreSQL; the
  test cuts it (every connection closed, new ones refused) — what a crash or restart looks like
  from the application — while one request is inside its transaction, then restores it. The
  machine's PostgreSQL itself never stops: other tests share it.
* The embedded default's SQLite file out of reach: the same 503s, in every run of the suite.
* Redis: a private redis-server, started, stopped and started again by the test, behind two
  servers; a `websockets` client rides through the outage the way incidents/static/incidents/
  live.js does (reconnect with `?since=<last id seen>`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import websockets
from django.conf import settings
from django.db import OperationalError, connection
from rest_framework.authtoken.models import Token

from deploy_tracker.middleware import database_unavailable
from incidents import live, offers
from incidents.consumers import LAYER_LOST
from incidents.models import Deployment, Event
from tests.conftest import World, database_url
from tests.faults import proxy
from tests.servers import daphne, free_port

pytestmark = pytest.mark.django_db(transaction=True)

Answer = tuple[int, dict[str, str], bytes]


def call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None, **headers: str
) -> Answer:
    """One HTTP request; the status, headers and body whatever the status."""
    if token:
        headers["Authorization"] = f"Token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"http://{base}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def server_env(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DEBUG="true",  # a 500 would come with Django's technical page: the test would see it
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        TASK_BACKEND="database",  # offer emails wait in the queue, as in production
    )
    env.update(overrides)
    return env


def assert_unavailable(answer: Answer, *, api: bool) -> None:
    """503 with Retry-After: the API's error shape under /api/, the short page elsewhere."""
    status, headers, body = answer
    assert status == 503, body[:300]
    assert int(headers["Retry-After"]) > 0
    if api:
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {
            "error": "database_unavailable",
            "detail": "The database is unavailable; try again in a few seconds.",
        }
    else:
        assert headers["Content-Type"].startswith("text/html")
        assert b"temporarily unavailable" in body and b"Traceback" not in body


@pytest.fixture(autouse=True)
def _server_sessions_ended(transactional_db: None) -> Iterator[None]:
    """A server's database sessions end a moment after its process does: wait for them, so
    nothing still holds the test database when it is dropped."""
    yield
    if connection.vendor == "postgresql":
        eventually(lambda: not other_sessions())


def other_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


# --- Which errors mean "the database is away" -------------------------------------------------


def django_error(error: Exception) -> OperationalError:
    """The error as Django raises it: its own class, caused by the driver's (db/utils.py)."""
    wrapped = OperationalError(*error.args)
    wrapped.__cause__ = error
    return wrapped


def test_only_errors_of_an_unreachable_or_busy_database_count_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(psycopg.OperationalError) as refused:  # nothing listens on a fresh free port
        psycopg.connect(host="127.0.0.1", port=free_port(), user="nobody", connect_timeout=5)
    assert database_unavailable(django_error(refused.value))

    path = tmp_path / "busy.sqlite3"
    with closing(sqlite3.connect(path)) as holder, closing(sqlite3.connect(path, timeout=0)) as writer:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked") as locked:
            writer.execute("INSERT INTO t VALUES (1)")
        holder.rollback()
        with pytest.raises(sqlite3.OperationalError, match="no such table") as missing:
            writer.execute("SELECT * FROM nowhere")
    assert database_unavailable(django_error(locked.value))
    # SQLite reports its own mistakes as OperationalError too: those stay 500s with a trace.
    assert not database_unavailable(django_error(missing.value))
    assert not database_unavailable(ValueError("not a database error"))


def test_an_unreachable_sqlite_file_is_a_503_for_the_api_and_for_pages(tmp_path: Path) -> None:
    """The embedded default with its database file out of reach (a volume gone): every door
    answers 503, and the log has one line for it, not a trace per request."""
    log = tmp_path / "server.log"
    env = server_env(SQLITE_PATH=str(tmp_path / "missing-folder" / "db.sqlite3"))
    with daphne(env, log=log) as base:
        for _ in range(3):
            assert_unavailable(call(base, "GET", "/api/incidents/", token="a" * 40), api=True)
        # A session cookie makes the page look its user up in the database.
        assert_unavailable(call(base, "GET", "/", Cookie=f"sessionid={'s' * 32}"), api=False)
    text = log.read_text()
    assert text.count("database unavailable (unable to open database file)") == 1, text
    assert "Traceback" not in text and "Internal Server Error" not in text


# --- PostgreSQL going away under a running server --------------------------------------------


@contextmanager
def advisory_lock(incident_id: int) -> Iterator[None]:
    """Hold the incident's event lock (incidents/live.py), so a server's write waits on it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [live.LOCK_NAMESPACE, incident_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [live.LOCK_NAMESPACE, incident_id])


def backends_waiting_for_the_lock() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            ["%pg_advisory_xact_lock%"],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return bool(cursor.fetchone()[0])


def eventually(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
    return result


@pytest.mark.postgresql
def test_a_lost_postgresql_is_a_503_and_the_same_server_recovers_without_losing_a_commit(
    world: World, tmp_path: Path
) -> None:
    commander = Token.objects.create(user=world.commander).key
    alice = Token.objects.create(user=world.alice_user).key
    db = connection.settings_dict
    target = (db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    log = tmp_path / "server.log"
    with proxy(target) as gate:
        url = database_url().replace(f"@{target[0]}:{target[1]}/", f"@{gate.address}/")
        assert gate.address in url
        with daphne(server_env(DATABASE_URL=url), log=log) as base:
            # Committed before the outage: a proposal and its offer.
            status, _, body = call(
                base,
                "POST",
                "/api/deployments/",
                commander,
                {"request": world.request.pk, "expert": world.alice.pk},
            )
            assert status == 201, body
            deployment = json.loads(body)["id"]
            status, _, body = call(base, "POST", f"/api/deployments/{deployment}/offer/", commander, {})
            assert status == 200, body
            link = f"/offers/{offers.answer_token(Deployment.objects.get(pk=deployment))}/"
            assert call(base, "GET", link)[0] == 200
            assert gate.accepted > 0  # the server really goes through the proxy

            # Alice accepts; her transaction waits on the incident's event lock, inside the
            # transaction that already moved the deployment — and there the database goes away.
            answers: list[Answer] = []
            with advisory_lock(world.incident.pk):
                accepting = threading.Thread(
                    target=lambda: answers.append(
                        call(base, "POST", f"/api/deployments/{deployment}/accept/", alice)
                    )
                )
                accepting.start()
                (orphan,) = eventually(backends_waiting_for_the_lock)
                gate.cut()
                accepting.join(timeout=30)
                assert_unavailable(answers[0], api=True)

                # While it is away: reads, writes and pages alike.
                assert_unavailable(call(base, "GET", "/api/incidents/", commander), api=True)
                assert_unavailable(call(base, "GET", f"/api/deployments/{deployment}/", alice), api=True)
                assert_unavailable(
                    call(base, "POST", f"/api/deployments/{deployment}/cancel/", commander, {"reason": "x"}),
                    api=True,
                )
                assert_unavailable(call(base, "GET", link), api=False)
                # A live screen connecting meanwhile (its token is looked up in the database) is
                # closed with 4503 — try again later — not answered 500.
                socket = f"ws://{base}/ws/incidents/{world.incident.pk}/"
                assert asyncio.run(closed_with(socket, commander)) == 4503
            # The lock is free: the orphaned transaction runs on, finds its client gone and is
            # rolled back by PostgreSQL — it never commits.
            eventually(lambda: not backend_alive(orphan))

            gate.restore()
            # The same server, unrestarted: everything works again within seconds (its connection
            # pool reconnects), nothing was lost.
            status, _, body = eventually(
                lambda: (
                    (answer := call(base, "GET", f"/api/deployments/{deployment}/", alice))[0] != 503
                    and answer
                ),
                timeout=10,
            )
            assert status == 200, body
            assert json.loads(body)["status"] == "offered"  # the cut accept left no trace
            assert call(base, "GET", link)[0] == 200
            status, _, body = call(base, "POST", f"/api/deployments/{deployment}/accept/", alice)
            assert status == 200, body
            assert json.loads(body)["status"] == "accepted"

    assert list(Event.objects.filter(deployment_id=deployment).values_list("type", flat=True)) == [
        "deployment.proposed",
        "deployment.offered",
        "deployment.accepted",
    ]
    text = log.read_text()
    assert text.count("database unavailable") == 1, text
    assert text.count("database is back after") == 1, text
    assert "Traceback" not in text and "Internal Server Error" not in text, text


# --- Redis going away under two servers ------------------------------------------------------


class RedisServer:
    """A private redis-server on a free port, which the test stops and starts again."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        eventually(lambda: _pings(client), timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Screen:
    """A dashboard as live.js runs it: remembers the last event id, reconnects with ?since=."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.headers = url, {"Authorization": f"Token {token}"}
        self.since: int | None = None
        self.seen: list[dict[str, Any]] = []
        self.ws: Any = None

    async def connect(self) -> None:
        query = "" if self.since is None else f"?since={self.since}"
        self.ws = await websockets.connect(self.url + query, additional_headers=self.headers)

    async def receive(self, timeout: float = 10) -> list[dict[str, Any]]:
        body = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        events = body.get("events", [])
        self.seen.extend(events)
        if events:
            self.since = events[-1]["id"]
        return list(events)

    async def wait_for(self, event_type: str, *, timeout: float = 20) -> None:
        """Receive until `event_type` arrives, reconnecting whenever the server closes us."""
        deadline = time.monotonic() + timeout
        while not any(e["type"] == event_type for e in self.seen):
            assert time.monotonic() < deadline, f"no {event_type}; saw {self.seen}"
            try:
                if self.ws is None:
                    await self.connect()
                await self.receive(timeout=deadline - time.monotonic())
            except websockets.ConnectionClosed:
                self.ws = None
                await asyncio.sleep(0.3)


async def closed_with(url: str, token: str) -> int | None:
    """Connect and wait for the server to close the socket; its close code."""
    async with websockets.connect(url, additional_headers={"Authorization": f"Token {token}"}) as ws:
        with suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)  # a message instead: still open, no close code
        return ws.close_code


@pytest.mark.redis
def test_redis_stopping_mid_run_loses_no_commit_and_a_client_replays_what_it_missed(
    world: World, private_redis: RedisServer, tmp_path: Path
) -> None:
    commander = Token.objects.create(user=world.commander).key
    alice = Token.objects.create(user=world.alice_user).key
    env = server_env(DATABASE_URL=database_url(), REDIS_URL=private_redis.url)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with daphne(env, log=logs[0]) as a, daphne(env, log=logs[1]) as b:

        def post(path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
            status, _, answer = call(b, "POST", path, token, body)  # every write through server B
            assert status in (200, 201), answer
            return dict(json.loads(answer))

        def propose_and_offer(expert: int) -> int:
            deployment = int(
                post("/api/deployments/", commander, {"request": world.request.pk, "expert": expert})["id"]
            )
            post(f"/api/deployments/{deployment}/offer/", commander, {})
            return deployment

        async def scenario() -> tuple[Screen, int, int]:
            screen = Screen(f"ws://{a}/ws/incidents/{world.incident.pk}/", commander)
            await screen.connect()
            await asyncio.sleep(0.3)  # joined its group
            for_alice = await asyncio.to_thread(propose_and_offer, world.alice.pk)
            await screen.wait_for("deployment.offered")
            before = screen.since
            assert before is not None

            private_redis.stop()
            # The connected screen is closed with 4503, not left deaf.
            with pytest.raises(websockets.ConnectionClosed):
                await screen.receive(timeout=10)
            assert screen.ws.close_code == LAYER_LOST
            screen.ws = None

            # HTTP goes on: each write commits and answers 2xx.
            await asyncio.to_thread(post, f"/api/deployments/{for_alice}/accept/", alice, {})
            for_bob = await asyncio.to_thread(propose_and_offer, world.bob.pk)
            # A screen or phone that connects meanwhile is closed with 4503 too (not an HTTP 500).
            assert await closed_with(f"ws://{a}/ws/incidents/{world.incident.pk}/", commander) == LAYER_LOST
            assert await closed_with(f"ws://{b}/ws/me/", alice) == LAYER_LOST

            private_redis.start()
            # The screen comes back with ?since= and gets what it missed; then live events again.
            await screen.wait_for("deployment.accepted")
            await asyncio.to_thread(
                post, f"/api/deployments/{for_bob}/cancel/", commander, {"reason": "not needed"}
            )
            await screen.wait_for("deployment.cancelled")
            return screen, before, for_bob

        screen, before, for_bob = asyncio.run(scenario())

    committed = list(
        Event.objects.filter(incident=world.incident, id__gt=before).order_by("id").values_list("id", "type")
    )
    assert [t for _, t in committed] == [
        "deployment.accepted",  # the three writes made while Redis was down
        "deployment.proposed",
        "deployment.offered",
        "deployment.cancelled",  # and the one after
    ]
    after = [(e["id"], e["type"]) for e in screen.seen if e["id"] > before]
    assert after == committed  # every one, in order, exactly once
    assert Deployment.objects.get(pk=for_bob).status == Deployment.Status.CANCELLED
    for log in logs:
        text = log.read_text()
        assert "Exception inside application" not in text, text
        assert text.count("live updates' Redis unavailable") == 1, text
