"""The users of `bench/load.py`: responders, commanders on dashboards, finance officers.

Not run on its own: bench/load.py builds the world (users, tokens, sessions, offers), starts the
servers and runs this file with `locust --headless`, passing what it needs in the environment:

  LOAD_WORLD     the world's JSON (see `build_world` in bench/load.py)
  LOAD_HOSTS     the Daphne base URLs, comma-separated; user i of each kind talks to host i % n
                 (a sticky split, as a load balancer with session affinity would make)
  LOAD_OUT       where to write results.json when Locust quits, and `spawned` once every user runs
  LOAD_DURATION  seconds after every user runs during which workflow writes go out; the run's
                 tail after that is reads only, so the last live events reach every dashboard

Every request is recorded with its start, class (read, write, export), status and time; every
workflow write a client saw succeed is recorded with the event it must have left in the
database, so bench/load.py can count records lost. Pages use the session cookie (a browser),
the API a token (the phone app, scripts); the cookie is set by hand because production cookies
are `Secure` and these requests are plain HTTP on the loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import websocket
from locust import FastHttpUser, between, events, task
from locust.env import Environment

WORLD: dict[str, Any] = json.loads(Path(os.environ["LOAD_WORLD"]).read_text())
HOSTS = os.environ["LOAD_HOSTS"].split(",")
OUT = Path(os.environ["LOAD_OUT"])
DURATION = float(os.environ["LOAD_DURATION"])

INCIDENT = WORLD["incident"]
NUMBER = WORLD["number"]
# incidents/static/incidents/live.js: one fill refresh half a second after the last event of a
# burst (at most two seconds after the first under a stream), plus up to 250 ms of jitter.
DEBOUNCE_S = 0.5
MAX_WAIT_S = 2.0
JITTER_S = 0.25
IDLE_REFRESH_S = 60.0  # live.js refreshes the fill every minute anyway
SINCE = re.compile(r'data-since="(\d+)"')

# What a run records, written to results.json when Locust quits.
samples: list[
    tuple[float, str, str, int, str, float, int]
] = []  # start, class, name, status, error, ms, host
writes: list[dict[str, Any]] = []  # every workflow write sent, with its outcome
dashboards: list[dict[str, Any]] = []
clock: dict[str, float | None] = {"spawned": None, "writes_until": None}


def _identities(kind: str) -> Iterator[tuple[int, dict[str, Any]]]:
    yield from enumerate(WORLD[kind])


_next = {kind: _identities(kind) for kind in ("responders", "commanders", "finance")}


def writing() -> bool:
    """Workflow writes go out from the start until LOAD_DURATION after the last user started."""
    until = clock["writes_until"]
    return until is None or time.time() < until


@events.spawning_complete.add_listener
def _spawned(user_count: int, **_: Any) -> None:
    now = time.time()
    clock["spawned"], clock["writes_until"] = now, now + DURATION
    (OUT / "spawned").write_text(str(now))


@events.request.add_listener
def _record(
    request_type: str,
    name: str,
    response_time: float,
    response: Any,
    context: dict[str, Any],
    exception: BaseException | None,
    start_time: float,
    **_: Any,
) -> None:
    status = getattr(response, "status_code", 0) or 0
    error = ""
    if exception is not None:
        error = f"HTTP {status}" if status else type(exception).__name__
    samples.append(
        (
            start_time,
            context.get("class", "read"),
            name,
            status,
            error,
            response_time,
            context.get("host", -1),
        )
    )


@events.quitting.add_listener
def _dump(environment: Environment, **_: Any) -> None:
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "spawned": clock["spawned"],
                "writes_until": clock["writes_until"],
                "samples": samples,
                "writes": writes,
                "dashboards": dashboards,
            }
        )
    )


class _Client(FastHttpUser):
    """A user pinned to one Daphne, with a token for the API and a session for pages."""

    abstract = True
    kind = ""
    network_timeout = 30.0
    connection_timeout = 10.0
    index = 0
    host_index = 0
    me: dict[str, Any]
    base = ""

    def on_start(self) -> None:
        self.index, self.me = next(_next[self.kind])
        self.host_index = self.index % len(HOSTS)
        self.base = HOSTS[self.host_index]
        self.api = {"Authorization": f"Token {self.me['token']}"}
        self.browser = {"Cookie": f"sessionid={self.me['session']}"}

    def page(self, path: str, name: str) -> str | None:
        """GET a page as a signed-in browser; a redirect (to the login page) is a failure."""
        with self.client.get(
            self.base + path,
            name=name,
            headers=self.browser,
            allow_redirects=False,
            catch_response=True,
            context={"class": "read", "host": self.host_index},
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return None
            return response.text or ""

    def write(self, op: str, deployment: int, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST a workflow move through the API; record it and, on success, the answer."""
        sent = time.time()
        with self.client.post(
            self.base + path,
            name=f"POST /api/deployments/[id]/{op}/",
            json=body,
            headers=self.api,
            catch_response=True,
            context={"class": "write", "host": self.host_index},
        ) as response:
            status = response.status_code or 0
            answer = None
            if 200 <= status < 300:
                try:
                    answer = json.loads(response.text or "")
                except ValueError:
                    response.failure("answer is not JSON")
            writes.append(
                {"op": op, "deployment": deployment, "status": status, "at": sent, "answer": answer}
            )
            return answer


class Responder(_Client):
    """Polls their deployments (mostly the API, sometimes the phone page) and now and then
    answers an open offer: three in four accepted, the rest declined."""

    kind = "responders"
    fixed_count = len(WORLD["responders"])
    wait_time = between(5, 15)
    answer_chance = 0.3  # per look at an open offer: people take their time

    @task(3)
    def poll(self) -> None:
        response = self.client.get(
            self.base + "/api/me/deployments/",
            name="GET /api/me/deployments/",
            headers=self.api,
            context={"class": "read", "host": self.host_index},
        )
        if response.status_code != 200 or not writing():
            return
        try:
            mine = json.loads(response.text or "")["results"]
        except (ValueError, KeyError, TypeError):
            return
        offered = [d["id"] for d in mine if d.get("status") == "offered"]
        if offered and random.random() < self.answer_chance:
            gevent.sleep(random.uniform(1, 3))  # reading the offer
            pk = offered[0]
            if pk % 4:
                self.write("accept", pk, f"/api/deployments/{pk}/accept/", {})
            else:
                self.write("decline", pk, f"/api/deployments/{pk}/decline/", {"reason": "Not that week."})

    @task(1)
    def my_page(self) -> None:
        self.page("/me/", "GET /me/")


class Commander(_Client):
    """Keeps the incident dashboard open (page, WebSocket, the fill fragment refreshed after
    events exactly as live.js does), reloads it now and then, and offers or checks people in."""

    kind = "commanders"
    fixed_count = len(WORLD["commanders"])
    wait_time = between(5, 15)

    def on_start(self) -> None:
        super().on_start()
        self.proposals = list(self.me["offer"])
        self.arrivals = list(self.me["check_in"])
        self.live = Dashboard(self)
        dashboards.append(self.live.stats)
        self.reload()

    def on_stop(self) -> None:
        self.live.close()

    def reload(self) -> None:
        """What a browser does on (re)load: the old page's socket closes, the page loads, and a new
        socket replays from the page's newest event."""
        self.live.close_socket()
        html = self.page(f"/incidents/{INCIDENT}/", "GET /incidents/[id]/")
        if html is None:
            self.live.reload_later()  # an error page has no live.js: the person reloads again
            return
        found = SINCE.search(html)
        self.live.open(int(found.group(1)) if found else 0)

    @task(2)
    def reload_page(self) -> None:
        self.reload()

    @task(1)
    def offer(self) -> None:
        if not self.proposals or not writing():
            return
        pk = self.proposals.pop()
        self.write("offer", pk, f"/api/deployments/{pk}/offer/", {})

    @task(1)
    def check_in(self) -> None:
        if not self.arrivals or not writing():
            return
        pk = self.arrivals.pop()
        fever = random.random() < 0.1  # one arrival in ten is sent home
        body = {"temperature_c": "38.3" if fever else f"{random.uniform(36.2, 37.3):.1f}", "spo2": 97}
        self.write("check-in", pk, f"/api/deployments/{pk}/check-in/", body)


class Dashboard:
    """The incident page's WebSocket, as incidents/static/incidents/live.js runs it: replay from
    the newest event on the page, reconnect after 1 s, 2 s, 4 s … (at most 30 s), and refresh
    the fill fragment half a second after the last of a burst of events."""

    def __init__(self, user: Commander) -> None:
        self.user = user
        self.socket: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.since = 0
        self.retry = 1.0
        self.refresh_at: float | None = None
        self.pending_since: float | None = None
        self.next_idle_refresh = time.time() + IDLE_REFRESH_S
        self.stopped = False
        self.stats: dict[str, Any] = {
            "user": user.index,
            "connects": 0,
            "failed_connects": 0,
            "drops": 0,
            "messages": 0,
            "reloads_asked": 0,
            "fill_refreshes": 0,
            "seen": [],  # (socket number, event id), in arrival order
            "delays": [],  # (arrival, seconds from the event's moment to its arrival)
            "pages": [],  # the newest event id each page load showed
        }
        self.sockets = 0
        self.page_retry = 1.0
        self.refresher = gevent.spawn(self._refresh_loop)

    def open(self, since: int) -> None:
        """A new page's socket, replaying from its newest event (live.js starts from the page)."""
        self.close_socket()
        self.stats["pages"].append(since)
        self.page_retry = 1.0
        self.since = since
        self.retry = 1.0
        self._connect()

    def reload_later(self) -> None:
        """After a failed page load, load it again after 1 s, 2 s, 4 s … (at most 30 s)."""
        delay, self.page_retry = self.page_retry, min(self.page_retry * 2, 30.0)
        gevent.spawn_later(delay, lambda: None if self.stopped else self.user.reload())

    def _connect(self) -> None:
        url = self.user.base.replace("http://", "ws://") + f"/ws/incidents/{INCIDENT}/?since={self.since}"
        started = time.perf_counter()
        begun = time.time()
        try:
            sock = websocket.create_connection(
                url, cookie=f"sessionid={self.user.me['session']}", timeout=10, enable_multithread=False
            )
        except (OSError, websocket.WebSocketException) as exc:
            self.stats["failed_connects"] += 1
            _ws_sample(begun, started, exc, self.user.host_index)
            self._schedule_reconnect()
            return
        sock.settimeout(None)
        self.retry = 1.0  # live.js: socket.onopen resets the backoff
        self.stats["connects"] += 1
        self.sockets += 1
        _ws_sample(begun, started, None, self.user.host_index)
        self.socket = sock
        self.reader = gevent.spawn(self._read, sock, self.sockets)

    def _read(self, sock: websocket.WebSocket, number: int) -> None:
        code = None
        try:
            while True:
                opcode, data = sock.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self._message(data.decode() if isinstance(data, bytes) else data, number)
        except (OSError, websocket.WebSocketException):
            pass
        if sock is self.socket and not self.stopped:
            self.socket = None
            if code in (4401, 4403):
                self.stats["failed_connects"] += 1
                return  # live.js gives up: not allowed
            self.stats["drops"] += 1
            self._schedule_reconnect()

    def _message(self, text: str, number: int) -> None:
        now = time.time()
        body = json.loads(text)
        self.stats["messages"] += 1
        if body.get("reload"):
            self.stats["reloads_asked"] += 1
            gevent.spawn(self.user.reload)
            return
        if "events" not in body:
            return  # job progress
        for event in body["events"]:
            self.since = max(self.since, event["id"])
            self.stats["seen"].append((number, event["id"]))
            moment = datetime.fromisoformat(event["at"]).timestamp()
            self.stats["delays"].append((now, now - moment))
        self._schedule_refresh(now)

    def _schedule_refresh(self, now: float) -> None:
        """live.js `refreshFill`: clearTimeout, then setTimeout(fetch, wait)."""
        if self.pending_since is None:
            self.pending_since = now
        wait = max(0.0, min(DEBOUNCE_S, self.pending_since + MAX_WAIT_S - now))
        self.refresh_at = now + wait + random.random() * JITTER_S

    def _schedule_reconnect(self) -> None:
        delay, self.retry = self.retry, min(self.retry * 2, 30.0)
        gevent.spawn_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self.stopped and self.socket is None:
            self._connect()

    def _refresh_loop(self) -> None:
        while not self.stopped:
            gevent.sleep(0.05)
            now = time.time()
            if now >= self.next_idle_refresh:
                self.next_idle_refresh = now + IDLE_REFRESH_S
                self._schedule_refresh(now)
            if self.refresh_at is not None and now >= self.refresh_at:
                self.refresh_at = None
                self.pending_since = None
                self.stats["fill_refreshes"] += 1
                self.user.page(f"/incidents/{INCIDENT}/fill/", "GET /incidents/[id]/fill/")

    def close_socket(self) -> None:
        sock, self.socket = self.socket, None
        if sock is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                sock.close(timeout=1)

    def close(self) -> None:
        self.stopped = True
        self.close_socket()
        self.refresher.kill(block=False)


def _ws_sample(begun: float, started: float, failure: BaseException | None, host: int) -> None:
    """A WebSocket handshake, in the samples under its own class."""
    ms = (time.perf_counter() - started) * 1000
    status = getattr(failure, "status_code", 0) or (0 if failure else 101)
    error = "" if failure is None else (f"HTTP {status}" if status else type(failure).__name__)
    samples.append((begun, "websocket", "WS /ws/incidents/[id]/", status, error, ms, host))


class FinanceOfficer(_Client):
    """Downloads the incident's finance export: the workbook mostly, sometimes the labor CSV."""

    kind = "finance"
    fixed_count = len(WORLD["finance"])
    wait_time = between(20, 40)

    def export(self, fmt: str) -> None:
        self.client.get(
            self.base + f"/api/reports/finance/?incident={NUMBER}&format={fmt}",
            name=f"GET /api/reports/finance/ ({fmt})",
            headers=self.api,
            context={"class": "export", "host": self.host_index},
        )

    @task(3)
    def workbook(self) -> None:
        self.export("xlsx")

    @task(1)
    def csv(self) -> None:
        self.export("csv")
