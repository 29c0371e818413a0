"""Races over real HTTP: 50 requests released together against a real Daphne server on PostgreSQL.

Each scenario fires the workflow's REST doors (CONTRACTS.md, "HTTP API") from 50 threads that a
barrier releases at once, at one server process that runs every request in its own thread with
its own database connection — the shape of production, minus the load balancer. Then it checks
what must hold whatever the interleaving:

* exactly one winner where only one is allowed; every loser gets 409 with a JSON reason — never
  a 200, a 500, or the 503 a database error such as a deadlock becomes;
* no expert holds two overlapping deployments (rest days included), no request has more live
  deployments than it asked for;
* the event log accounts for every state each deployment went through: one event per state, in
  order, no gaps, ending in the state the row is in, and one event per winning request.

PostgreSQL only: SQLite serialises every writer (IMMEDIATE transactions), so these races cannot
happen there; tests/test_concurrency.py runs thread-level races on both engines.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from incidents import workflow
from incidents.models import Deployment, Event, HealthScreening, Incident, RoleRequest
from resources.models import Expert
from tests import factories
from tests.conftest import World, database_url
from tests.servers import daphne

Status = Deployment.Status
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]

N = 50  # requests per race: one server thread and one database connection each

# What each state-changing event says the deployment became, and the moves the workflow allows
# (DESIGN.md, "Deployment workflow"). Other events (locks, equipment) do not move the state.
REACHES = {
    "deployment.proposed": Status.PROPOSED,
    "deployment.offered": Status.OFFERED,
    "deployment.accepted": Status.ACCEPTED,
    "deployment.declined": Status.DECLINED,
    "deployment.expired": Status.EXPIRED,
    "deployment.cancelled": Status.CANCELLED,
    "deployment.checked_in": Status.ON_SITE,
    "deployment.screening_failed": Status.CANCELLED,
    "deployment.released": Status.RELEASED,
}
MOVES: dict[str | None, set[str]] = {
    None: {Status.PROPOSED},
    Status.PROPOSED: {Status.OFFERED, Status.CANCELLED},
    Status.OFFERED: {Status.ACCEPTED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED},
    Status.ACCEPTED: {Status.ON_SITE, Status.CANCELLED},
    Status.ON_SITE: {Status.RELEASED},
}
# Which row timestamp each state sets: a state in the log without it (or the reverse) is a lie.
STAMPS = {
    Status.OFFERED: "offered_at",
    Status.ON_SITE: "checked_in_at",
    Status.RELEASED: "released_at",
    Status.CANCELLED: "cancelled_at",
}


# --- The server and the client ------------------------------------------------------------------


def server_env() -> dict[str, str]:
    """Settings of the server process: this test database, Redis if the run has it, jobs inline."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "true",
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "TASK_BACKEND": "immediate",
    }
    env.pop("SQLITE_PATH", None)
    return env


@contextmanager
def serving() -> Iterator[str]:
    with daphne(server_env()) as address:
        yield address


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[str]:
    """One Daphne process for the module (it starts in a few seconds; each test then cleans the
    database, and the server opens a fresh connection per request)."""
    with serving() as address:
        yield address


@dataclass(frozen=True)
class Call:
    """One HTTP request of a race: what it is (for the assertions), where, as whom, with what."""

    label: str
    path: str
    token: str
    body: dict[str, Any] = field(default_factory=dict)
    deployment: int | None = None


@dataclass(frozen=True)
class Answer:
    call: Call
    status: int
    body: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.call.label} {self.call.path} → HTTP {self.status} {self.body}"


def send(address: str, call: Call) -> Answer:
    """POST the call as JSON with its token; the answer's status and parsed body, whatever it is."""
    request = urllib.request.Request(
        f"http://{address}{call.path}",
        data=json.dumps(call.body).encode(),
        headers={
            "Authorization": f"Token {call.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"not_json": raw.decode(errors="replace")[:300]}
    return Answer(call, status, body if isinstance(body, dict) else {"json": body})


def free_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # fresh figures, even inside a transaction
        cursor.execute("SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@contextmanager
def one_race_at_a_time(needed: int, timeout: float = 60) -> Iterator[None]:
    """A race opens one database connection per request at once, half of PostgreSQL's default
    limit: a race in another pytest-xdist worker waits for this one, and a race waits until the
    server has the connections free (others may be using it too) rather than fail on the limit."""
    with open(Path(tempfile.gettempdir()) / "deploy-tracker-http-races.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        deadline = time.monotonic() + timeout
        while (free := free_connections()) < needed:
            assert time.monotonic() < deadline, (
                f"PostgreSQL has {free} free connections; a race needs {needed}"
            )
            time.sleep(0.2)
        yield


def hammer(address: str, calls: list[Call]) -> list[Answer]:
    """Send every call at the same instant, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(calls))

    def fire(call: Call) -> Answer:
        barrier.wait(timeout=30)
        return send(address, call)

    with one_race_at_a_time(len(calls) + 5), ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(fire, calls))


def judge(answers: list[Answer]) -> tuple[list[Answer], list[Answer]]:
    """(winners, losers): a winner is a 2xx, a loser a 409 with a JSON reason; nothing else."""
    odd = [str(a) for a in answers if a.status not in (200, 201, 409)]
    assert not odd, "only 2xx or 409 may come back from a race:\n" + "\n".join(odd)
    losers = [a for a in answers if a.status == 409]
    for a in losers:
        assert isinstance(a.body.get("error"), str) and a.body["error"], str(a)
        assert isinstance(a.body.get("detail"), str) and a.body["detail"], str(a)
    return [a for a in answers if a.status != 409], losers


def token(user: User) -> str:
    return str(Token.objects.get_or_create(user=user)[0].key)


# --- What must hold after any race --------------------------------------------------------------


def assert_books_balance(incident: Incident) -> None:
    """No expert double-booked, no request over-filled, and an event log that tells every state."""
    holding: dict[int, list[Deployment]] = defaultdict(list)
    for d in Deployment.objects.filter(status__in=Deployment.HOLDING):
        holding[d.expert_id].append(d)
    for held in holding.values():
        for a, b in combinations(held, 2):
            assert a.rest_until < b.start or b.rest_until < a.start, (
                f"expert {a.expert_id} double-booked: #{a.pk} {a.start}–{a.rest_until} and "
                f"#{b.pk} {b.start}–{b.rest_until}"
            )
    for request in RoleRequest.objects.filter(facility__incident=incident):
        live = request.deployments.filter(status__in=Deployment.FILLING).count()
        assert live <= request.quantity, f"request #{request.pk} asks for {request.quantity}, has {live} live"

    log: dict[int, list[Event]] = defaultdict(list)
    for e in Event.objects.filter(incident=incident, type__in=REACHES).order_by("id"):
        log[e.deployment_id or 0].append(e)
    assert 0 not in log, "a deployment event without its deployment"
    deployments = list(Deployment.objects.filter(request__facility__incident=incident))
    assert set(log) == {d.pk for d in deployments}, "a deployment without its events (or the reverse)"
    for d in deployments:
        been: list[str | None] = [None]
        for e in log[d.pk]:
            story = [(x.type, x.data["from"], x.data["to"]) for x in log[d.pk]]
            assert e.data["from"] == been[-1], f"#{d.pk}: the log skips or repeats a state: {story}"
            assert e.data["to"] == REACHES[e.type], f"#{d.pk}: {e.type} says it reached {e.data['to']}"
            assert e.data["to"] in MOVES.get(been[-1], set()), f"#{d.pk}: illegal move in {story}"
            been.append(e.data["to"])
        assert been[-1] == d.status, f"#{d.pk} is {d.status} but its log ends at {been[-1]}"
        for state, stamp in STAMPS.items():
            assert (state in been) == (getattr(d, stamp) is not None), f"#{d.pk}: {stamp} vs its log"


def new_events(before: int, type: str) -> list[Event]:
    return list(Event.objects.filter(pk__gt=before, type=type).order_by("id"))


def last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


# --- (a) one expert, fifty offers ------------------------------------------------------------


def test_fifty_offers_of_one_expert_for_overlapping_dates_book_her_once(world: World, server: str) -> None:
    """50 proposals of Alice on 50 requests whose dates overlap; 50 offers at once: one goes out."""
    facility = world.request.facility
    proposals = [
        workflow.propose(
            factories.RoleRequestFactory(
                facility=facility, quantity=1, start=world.request.start + timedelta(days=i % 7)
            ),
            world.alice,
            by=world.commander,
        )
        for i in range(N)
    ]
    key, before = token(world.commander), last_event_id()

    winners, losers = judge(
        hammer(
            server,
            [Call("offer", f"/api/deployments/{p.pk}/offer/", key, deployment=p.pk) for p in proposals],
        )
    )

    assert len(winners) == 1, [str(w) for w in winners]
    assert len(losers) == N - 1
    assert {a.body["error"] for a in losers} == {"expert_unavailable"}, {str(a) for a in losers}
    (winner,) = winners
    assert (winner.status, winner.body["id"], winner.body["status"]) == (
        200,
        winner.call.deployment,
        "offered",
    )
    held = Deployment.objects.filter(expert=world.alice, status__in=Deployment.HOLDING)
    assert list(held.values_list("pk", flat=True)) == [winner.call.deployment]
    assert [e.deployment_id for e in new_events(before, "deployment.offered")] == [winner.call.deployment]
    assert_books_balance(world.incident)


# --- (b) fifty people, one last slot ---------------------------------------------------------


def test_fifty_people_proposed_for_the_last_slot_fill_it_once(world: World, server: str) -> None:
    """A request for 3 with 2 slots taken (one accepted, one proposed); 50 commanders' proposals
    of 50 different experts at once: one takes the last slot, 49 hear it is full."""
    request = world.request
    RoleRequest.objects.filter(pk=request.pk).update(quantity=3)
    accepted = workflow.offer(workflow.propose(request, world.alice, by=world.commander), by=world.commander)
    workflow.accept(accepted, by=world.alice_user)
    workflow.propose(request, world.bob, by=world.commander)
    candidates = [factories.ExpertFactory() for _ in range(N)]
    key, before = token(world.commander), last_event_id()

    winners, losers = judge(
        hammer(
            server,
            [
                Call("propose", "/api/deployments/", key, {"request": request.pk, "expert": e.pk})
                for e in candidates
            ],
        )
    )

    assert [w.status for w in winners] == [201], [str(w) for w in winners]
    assert len(losers) == N - 1
    assert {a.body["error"] for a in losers} == {"request_full"}, {str(a) for a in losers}
    live = request.deployments.filter(status__in=Deployment.FILLING)
    assert live.count() == 3
    assert winners[0].body["id"] in set(live.values_list("pk", flat=True))
    assert [e.deployment_id for e in new_events(before, "deployment.proposed")] == [winners[0].body["id"]]
    assert_books_balance(world.incident)


# --- (c) one offer, fifty answers ------------------------------------------------------------


def open_offer(world: World) -> Deployment:
    return workflow.offer(
        workflow.propose(world.request, world.alice, by=world.commander), by=world.commander
    )


def test_an_accept_hammered_fifty_times_wins_once(world: World, server: str) -> None:
    offer = open_offer(world)
    key, before = token(world.alice_user), last_event_id()

    winners, losers = judge(
        hammer(server, [Call("accept", f"/api/deployments/{offer.pk}/accept/", key) for _ in range(N)])
    )

    assert [(w.status, w.body["status"]) for w in winners] == [(200, "accepted")]
    assert len(losers) == N - 1
    assert {a.body["error"] for a in losers} == {"illegal_transition"}
    offer.refresh_from_db()
    assert offer.status == Status.ACCEPTED
    assert len(new_events(before, "deployment.accepted")) == 1
    assert_books_balance(world.incident)


def test_accepts_racing_declines_leave_one_answer_standing(world: World, server: str) -> None:
    """Half accept, half decline, all at once (a double-tapping responder on a shaky network):
    whichever lands first is the answer; the log says that one and nothing else."""
    offer = open_offer(world)
    key, before = token(world.alice_user), last_event_id()
    calls = [
        Call("accept", f"/api/deployments/{offer.pk}/accept/", key)
        if i % 2
        else Call("decline", f"/api/deployments/{offer.pk}/decline/", key, {"reason": "Double-tapped"})
        for i in range(N)
    ]

    winners, losers = judge(hammer(server, calls))

    assert len(winners) == 1, [str(w) for w in winners]
    assert len(losers) == N - 1
    assert {a.body["error"] for a in losers} == {"illegal_transition"}
    (winner,) = winners
    offer.refresh_from_db()
    assert offer.status == {"accept": Status.ACCEPTED, "decline": Status.DECLINED}[winner.call.label]
    assert winner.body["status"] == offer.status
    answered = new_events(before, "deployment.accepted") + new_events(before, "deployment.declined")
    assert [e.type for e in answered] == [f"deployment.{offer.status}"]
    assert_books_balance(world.incident)


# --- (d) arrival racing the commander's other moves -----------------------------------------------

PASS = {"temperature_c": "36.8", "spo2": 98}
FEVER = {"temperature_c": "38.6", "spo2": 97}


def test_check_ins_racing_cancels_and_releases_tell_one_story_per_person(world: World, server: str) -> None:
    """Ten accepted responders; for each, at once: a passing check-in, a failing one, a cancel
    and two releases (with return travel arranged). A person is checked in (pass or fail) or
    cancelled, never two of these; a release wins only after a passing check-in, at most once;
    the screening is kept only for the check-in that won."""
    facility = world.request.facility
    accepted: list[Deployment] = []
    for _ in range(N // 5):
        expert: Expert = factories.ExpertFactory()
        request = factories.RoleRequestFactory(facility=facility, quantity=1)
        d = workflow.offer(workflow.propose(request, expert, by=world.commander), by=world.commander)
        accepted.append(workflow.accept(d, by=world.commander))
    key, before = token(world.commander), last_event_id()
    calls = []
    for d in accepted:
        base = f"/api/deployments/{d.pk}"
        calls += [
            Call("check-in pass", f"{base}/check-in/", key, PASS, d.pk),
            Call("check-in fail", f"{base}/check-in/", key, FEVER, d.pk),
            Call("cancel", f"{base}/cancel/", key, {"reason": "Facility closed"}, d.pk),
            Call("release", f"{base}/release/", key, {"travel_arranged": True}, d.pk),
            Call("release", f"{base}/release/", key, {"travel_arranged": True}, d.pk),
        ]

    winners, losers = judge(hammer(server, calls))

    assert {a.body["error"] for a in losers} == {"illegal_transition"}, {str(a) for a in losers}
    won: dict[int, Counter[str]] = defaultdict(Counter)
    for w in winners:
        assert w.status == 200, str(w)
        assert w.call.deployment is not None
        won[w.call.deployment][w.call.label] += 1
    expected_final = {
        "check-in pass": Status.ON_SITE,
        "check-in fail": Status.CANCELLED,
        "cancel": Status.CANCELLED,
    }
    for d in accepted:
        d.refresh_from_db()
        tally = won[d.pk]
        first = [label for label in expected_final if tally[label]]
        assert len(first) == 1 and tally[first[0]] == 1, f"#{d.pk}: {dict(tally)}"
        assert tally["release"] <= (1 if first == ["check-in pass"] else 0), f"#{d.pk}: {dict(tally)}"
        assert d.status == (Status.RELEASED if tally["release"] else expected_final[first[0]])
        screenings = list(HealthScreening.objects.filter(deployment=d).values_list("result", flat=True))
        assert screenings == {"check-in pass": ["pass"], "check-in fail": ["fail"], "cancel": []}[first[0]]
    moved = Counter(e.type for e in Event.objects.filter(pk__gt=before))
    assert moved == Counter(
        {
            "deployment.checked_in": sum(t["check-in pass"] for t in won.values()),
            "deployment.screening_failed": sum(t["check-in fail"] for t in won.values()),
            "deployment.cancelled": sum(t["cancel"] for t in won.values()),
            "deployment.released": sum(t["release"] for t in won.values()),
        }
    )
    assert_books_balance(world.incident)
