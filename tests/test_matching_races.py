"""Matching under pressure: runs started at once on one incident, and the workflow moving while
a run is in progress.

A run (incidents/matching/loader.py, `run`) reads the incident, solves, then replaces the
incident's unlocked proposals with its own, in one transaction. Runs of one incident serialise:
the second waits for the first to commit, then reads what the first wrote and replaces it whole,
so the proposals standing at the end are exactly one run's. Meanwhile the rest of the incident
keeps working: a responder's accept does not wait for a run, and a move on a proposal the run is
replacing (offer, confirm, a manual proposal for a request it fills) waits and is then refused
with a reason, never doubled and never a database error.

To start runs truly together, a test holds the incident's row itself while they start, waits
until PostgreSQL shows every one of them queued on that lock, and lets go: they then race for it.
To act during a run, a test stops the run after it has read (its own progress hook waits) and
lets it go once the other moves are queued on its locks (or have finished: what would happen
without them, which the assertions then catch). PostgreSQL only (SQLite's IMMEDIATE transactions
serialise every writer).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from deploy_tracker.errors import IllegalTransition, RequestFull
from incidents import jobs, workflow
from incidents.matching.loader import run
from incidents.models import Deployment, Event, Incident, Job, RoleRequest
from resources.models import Expert
from tests import factories
from tests.conftest import World
from tests.servers import ROOT
from tests.test_races_http import Call, assert_books_balance, judge, send, server_env, serving, token

Status = Deployment.Status
pytestmark = [pytest.mark.postgresql, pytest.mark.django_db(transaction=True)]
REPLACED = "Replaced by a new matching run."


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[str]:
    with serving() as address:
        yield address


@dataclass
class Board:
    """The world's incident with three requests for five RNs, and eight nurses who could go."""

    incident: Incident
    requests: list[RoleRequest]
    nurses: list[Expert]
    start: date


@pytest.fixture
def board(world: World) -> Board:
    # Dates from today, not a fixed day: runs over HTTP and the command match from the real today.
    start = timezone.localdate() + timedelta(days=7)
    end = start + timedelta(days=9)
    RoleRequest.objects.filter(pk=world.request.pk).update(start=start, end=end, quantity=2)
    world.request.refresh_from_db()
    rn = world.request.qualification
    requests = [world.request] + [
        factories.RoleRequestFactory(
            facility=world.request.facility, qualification=rn, quantity=q, priority=p, start=start, end=end
        )
        for q, p in [(2, "high"), (1, "normal")]
    ]
    nurses = []
    for i in range(8):
        nurse = factories.ExpertFactory(latitude=47.61 + i * 0.05, longitude=-122.33)
        factories.CredentialFactory(expert=nurse, qualification=rn)
        factories.AvailabilityFactory(
            expert=nurse, start=start - timedelta(days=30), end=end + timedelta(days=30)
        )
        nurses.append(nurse)
    return Board(world.incident, requests, nurses, start)


def standing(incident: Incident) -> list[Deployment]:
    return list(
        Deployment.objects.filter(request__facility__incident=incident, status=Status.PROPOSED).order_by("pk")
    )


def assert_one_runs_proposals_stand(
    incident: Incident, runs: int, besides: Deployment | None = None
) -> set[tuple[int, str]]:
    """The runs wrote one after the other: each replaced all of the previous run's proposals at
    the moment it wrote its own, and the proposals standing are one run's, whole (`besides`: a
    deployment proposed by hand, no run's). Returns them as (request, expert email)."""
    made = Deployment.objects.filter(request__facility__incident=incident, locked=False)
    made = made.exclude(pk=besides.pk) if besides is not None else made
    batches = sorted(set(made.values_list("proposed_at", flat=True)))
    assert len(batches) == runs, f"{runs} runs wrote, but proposals carry {len(batches)} different times"
    for earlier, later in pairwise(batches):
        gone = made.filter(proposed_at=earlier)
        assert set(gone.values_list("status", "cancelled_at", "reason")) == {
            (Status.CANCELLED, later, REPLACED)
        }
    last = made.filter(proposed_at=batches[-1])
    assert set(last.values_list("status", flat=True)) == {Status.PROPOSED}
    assert {d.pk for d in standing(incident) if d != besides} == set(last.values_list("pk", flat=True))
    assert_books_balance(incident)
    return set(last.values_list("request_id", "expert__email"))


def proposed_by(doc: dict[str, Any]) -> set[tuple[int, str]]:
    return {(p["request"], p["expert"]) for p in doc["proposals"]}


# --- Letting runs start together --------------------------------------------------------------


def lock_waiters() -> int:
    """Other sessions on this database waiting for a lock right now."""
    with connection.cursor() as cursor:
        # Statistics are read once per transaction unless cleared, and we ask inside one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def settle(waiting: int, *pending: Future[Any] | subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until `waiting` other sessions queue on a lock, or until all of `pending` ended (what
    happens without the lock, which the assertions that follow then catch)."""
    deadline = time.monotonic() + timeout

    def ended(p: Future[Any] | subprocess.Popen[str]) -> bool:
        return p.done() if isinstance(p, Future) else p.poll() is not None

    while lock_waiters() < waiting and not all(ended(p) for p in pending):
        assert time.monotonic() < deadline, f"{lock_waiters()} of {waiting} queued in {timeout} s"
        time.sleep(0.05)


@contextmanager
def holding(incident: Incident) -> Iterator[None]:
    """Hold the incident's row (as a run does) until the block ends; whatever starts inside
    queues behind it, then races for it when the block ends."""
    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident.pk)
        yield


class Pause:
    """A run's progress hook that stops it once loaded (inside its transaction) until `go`."""

    def __init__(self, stage: str = "solving") -> None:
        self.stage = stage
        self.reached = threading.Event()
        self.go = threading.Event()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == self.stage:
            self.reached.set()
            assert self.go.wait(60), "the test never let the run go on"


def in_thread[T](pool: ThreadPoolExecutor, work: Callable[[], T]) -> Future[T]:
    """Run `work` on its own thread and database connection."""

    def job() -> T:
        try:
            return work()
        finally:
            connection.close()

    return pool.submit(job)


def outcome(future: Future[Any], timeout: float = 60) -> Any:
    """The result, or the exception raised, of a thread's work."""
    try:
        return future.result(timeout=timeout)
    except Exception as exc:
        return exc


# --- Runs started at once ----------------------------------------------------------------------


def test_two_api_runs_and_the_command_at_once_leave_one_runs_proposals(
    world: World, board: Board, server: str
) -> None:
    """Two commanders press "match" in the API and an operator runs `manage.py match` at the same
    moment, on an incident that already has proposals: all three succeed one after the other,
    each replacing the previous run's proposals whole."""
    run(board.incident, by=world.commander)
    key = token(world.commander)
    api = Call("match", f"/api/incidents/{board.incident.pk}/match/", key)
    env = server_env()
    with ThreadPoolExecutor(max_workers=2) as pool, holding(board.incident):
        answers = [pool.submit(send, server, api) for _ in range(2)]
        command = subprocess.Popen(
            [sys.executable, "manage.py", "match", board.incident.number, "--json"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        settle(3, *answers, command)
    out, err = command.communicate(timeout=60)
    winners, losers = judge([a.result(timeout=60) for a in answers])

    assert command.returncode == 0, err[-2000:]
    assert not losers and [w.status for w in winners] == [200, 200]
    final = assert_one_runs_proposals_stand(board.incident, runs=4)
    assert len(final) == 5  # the five RN slots, filled by the five nearest nurses
    docs = [w.body for w in winners] + [json.loads(out)]
    assert final in [proposed_by(doc) for doc in docs]


def test_two_background_jobs_and_a_second_claim_run_each_job_once_one_after_the_other(
    world: World, board: Board
) -> None:
    """The job path (`jobs.run`, what a worker calls): two matching jobs of one incident at once,
    and a second worker picking up the first job too. Each job runs once; the two runs serialise."""
    first, second = (
        Job.objects.create(incident=board.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)
        for _ in range(2)
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        with holding(board.incident):
            runs = [in_thread(pool, lambda job=job: jobs.run(job.pk)) for job in (first, second)]
            settle(2, *runs)
            again = outcome(in_thread(pool, lambda: jobs.run(first.pk)))  # claimed already: left alone
        statuses = [outcome(r) for r in runs]

    assert again == Job.Status.RUNNING
    assert statuses == [Job.Status.DONE, Job.Status.DONE]
    ends = Counter(Event.objects.filter(type="job.finished").values_list("data__job", flat=True))
    assert ends == Counter({first.pk: 1, second.pk: 1})
    final = assert_one_runs_proposals_stand(board.incident, runs=2)
    results = Job.objects.filter(pk__in=[first.pk, second.pk]).values_list("result", flat=True)
    assert final in [proposed_by(doc) for doc in results]


def test_a_double_clicked_run_matching_button_runs_twice_in_turn(
    world: World, board: Board, server: str
) -> None:
    """The incident page's "Run matching" pressed twice (two POSTs at once, one session): both
    land back on the page, both jobs finish, one after the other, and one run's proposals stand."""
    browser = Client()
    browser.force_login(world.commander)
    csrf = "c" * 32  # the CSRF secret, sent back as the form field (an unmasked token is accepted)
    cookie = f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}"

    def press() -> tuple[int, str]:
        request = urllib.request.Request(
            f"http://{server}/incidents/{board.incident.pk}/match/",
            data=f"csrfmiddlewaretoken={csrf}".encode(),
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )

        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # look at the redirect itself

        try:
            with urllib.request.build_opener(Stay).open(request, timeout=60) as response:
                return response.status, response.headers.get("Location", "")
        except urllib.error.HTTPError as answer:
            return answer.code, answer.headers.get("Location", "")

    with ThreadPoolExecutor(max_workers=2) as pool:
        with holding(board.incident):
            clicks = [pool.submit(press) for _ in range(2)]
            settle(2, *clicks)
        answers = [c.result(timeout=60) for c in clicks]

    assert answers == [(302, f"/incidents/{board.incident.pk}/")] * 2
    made = Job.objects.filter(incident=board.incident, kind=Job.Kind.MATCHING)
    assert list(made.values_list("status", flat=True)) == [Job.Status.DONE] * 2
    final = assert_one_runs_proposals_stand(board.incident, runs=2)
    assert final in [proposed_by(job.result) for job in made]


# --- The incident keeps moving while a run is in progress ---------------------------------------


def test_a_responder_accepting_during_a_matching_run_neither_waits_for_it_nor_breaks_it(
    world: World, board: Board
) -> None:
    epi = factories.QualificationFactory(code="EPI", name="Epidemiologist", jurisdictional=False)
    elsewhere = factories.RoleRequestFactory(facility=world.request.facility, qualification=epi, quantity=1)
    offer = workflow.offer(workflow.propose(elsewhere, world.alice, by=world.commander), by=world.commander)
    pause = Pause()
    with ThreadPoolExecutor(max_workers=2) as pool:
        matching = in_thread(pool, lambda: run(board.incident, by=world.commander, progress=pause))
        try:
            assert pause.reached.wait(60), outcome(matching, 0)
            accepting = in_thread(pool, lambda: workflow.accept(offer.pk, by=world.alice_user))
            answered = outcome(accepting, timeout=10)
        finally:
            pause.go.set()
        doc = outcome(matching)

    assert isinstance(answered, Deployment), f"the accept waited for the run or failed: {answered!r}"
    assert answered.status == Status.ACCEPTED
    assert isinstance(doc, dict), f"the run failed: {doc!r}"
    assert len(doc["proposals"]) == 5
    assert_one_runs_proposals_stand(board.incident, runs=1, besides=offer)


def test_moves_on_the_proposals_a_run_is_replacing_wait_and_are_refused_not_doubled(
    world: World, board: Board
) -> None:
    """While a new run is replacing the proposals, commanders confirm them all, offer one, lock
    one and cancel one: each waits for the run, then finds its proposal replaced — nothing is
    offered, kept or logged on top of the run's work, and nobody sees a database error."""
    run(board.incident, by=world.commander)
    old = standing(board.incident)
    by = world.commander
    pause = Pause()
    with ThreadPoolExecutor(max_workers=5) as pool:
        matching = in_thread(pool, lambda: run(board.incident, by=by, progress=pause))
        try:
            assert pause.reached.wait(60), outcome(matching, 0)
            moves = {
                "confirm": in_thread(pool, lambda: workflow.offer_proposals(board.incident, by=by)),
                "offer": in_thread(pool, lambda: workflow.offer(old[0].pk, by=by)),
                "lock": in_thread(pool, lambda: workflow.set_locked(old[1].pk, by=by, locked=True)),
                "cancel": in_thread(pool, lambda: workflow.cancel(old[2].pk, by=by, reason="Not needed")),
            }
            settle(len(moves), *moves.values())
        finally:
            pause.go.set()
        doc = outcome(matching)
        moved = {name: outcome(future) for name, future in moves.items()}

    assert isinstance(doc, dict), f"the run failed: {doc!r}"
    confirmed = moved.pop("confirm")
    assert isinstance(confirmed, workflow.Confirmation), f"confirming failed: {confirmed!r}"
    assert confirmed.offered == []
    for name, result in moved.items():
        assert isinstance(result, IllegalTransition), f"{name}: {result!r}"
    assert f"#{old[0].pk}: it is cancelled" in moved["offer"].message
    assert f"#{old[2].pk}: it is cancelled" in moved["cancel"].message
    assert not Deployment.objects.filter(status=Status.OFFERED).exists()
    assert not Deployment.objects.filter(locked=True).exists()
    assert not Event.objects.filter(type="deployment.locked").exists()
    assert_one_runs_proposals_stand(board.incident, runs=2)


def test_a_proposal_made_during_a_run_that_fills_its_request_waits_and_hears_it_is_full(
    world: World, board: Board
) -> None:
    latecomer = factories.ExpertFactory()
    pause = Pause()
    with ThreadPoolExecutor(max_workers=2) as pool:
        matching = in_thread(pool, lambda: run(board.incident, by=world.commander, progress=pause))
        try:
            assert pause.reached.wait(60), outcome(matching, 0)
            proposing = in_thread(
                pool, lambda: workflow.propose(world.request, latecomer, by=world.commander)
            )
            settle(1, proposing)
        finally:
            pause.go.set()
        doc, proposed = outcome(matching), outcome(proposing)

    assert isinstance(doc, dict), f"the run failed: {doc!r}"
    assert isinstance(proposed, RequestFull), f"expected 'request full', got {proposed!r}"
    assert world.request.deployments.filter(status__in=Deployment.FILLING).count() == 2
    assert_one_runs_proposals_stand(board.incident, runs=1)
