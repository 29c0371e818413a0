"""Concurrent transitions never both win: real threads, each with its own database connection.

On PostgreSQL the conditional UPDATE and the exclusion constraint decide the race; on SQLite
the IMMEDIATE transaction serialises the writers. The suite runs on both engines in CI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest
from django.db import connection

from deploy_tracker.errors import DomainError, ExpertUnavailable, IllegalTransition
from incidents import workflow
from incidents.models import Deployment, Event
from tests import factories
from tests.conftest import World

Status = Deployment.Status
pytestmark = pytest.mark.django_db(transaction=True)


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same instant in threads; return each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            outcomes[i] = call()
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a transition hung"
    return outcomes


def split(outcomes: list[Any]) -> tuple[list[Any], list[Exception]]:
    errors = [o for o in outcomes if isinstance(o, Exception)]
    unexpected = [e for e in errors if not isinstance(e, DomainError)]
    assert not unexpected, f"a loser got a raw error instead of a domain error: {unexpected!r}"
    return [o for o in outcomes if not isinstance(o, Exception)], errors


def test_two_offers_of_one_expert_for_overlapping_dates_never_both_win(world: World) -> None:
    other_request = factories.RoleRequestFactory(
        facility=factories.FacilityFactory(incident=world.incident),
        start=world.request.start + timedelta(days=3),
        end=world.request.end + timedelta(days=3),
    )
    first = workflow.propose(world.request, world.alice, by=world.commander)
    second = workflow.propose(other_request, world.alice, by=world.commander)

    winners, losers = split(
        race(
            lambda: workflow.offer(first.pk, by=world.commander),
            lambda: workflow.offer(second.pk, by=world.commander),
        )
    )

    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ExpertUnavailable)
    assert Deployment.objects.filter(expert=world.alice, status=Status.OFFERED).count() == 1
    assert Event.objects.filter(type="deployment.offered").count() == 1


def test_many_offers_of_one_expert_leave_exactly_one_holding(world: World) -> None:
    facility = factories.FacilityFactory(incident=world.incident)
    proposals = [
        workflow.propose(
            factories.RoleRequestFactory(facility=facility, start=world.request.start + timedelta(days=i)),
            world.alice,
            by=world.commander,
        )
        for i in range(6)
    ]
    winners, losers = split(
        race(*[lambda pk=p.pk: workflow.offer(pk, by=world.commander) for p in proposals])
    )
    assert len(winners) == 1
    assert all(isinstance(e, ExpertUnavailable) for e in losers)
    assert Deployment.objects.filter(expert=world.alice, status__in=Deployment.HOLDING).count() == 1


def test_many_accepts_of_one_offer_win_once(world: World) -> None:
    offer = workflow.offer(
        workflow.propose(world.request, world.alice, by=world.commander), by=world.commander
    )
    winners, losers = split(race(*[lambda: workflow.accept(offer.pk, by=world.alice_user)] * 6))
    assert len(winners) == 1
    assert all(isinstance(e, IllegalTransition) for e in losers)
    assert Event.objects.filter(type="deployment.accepted").count() == 1


def test_accept_racing_decline_wins_once_and_the_log_tells_one_story(world: World) -> None:
    offer = workflow.offer(
        workflow.propose(world.request, world.alice, by=world.commander), by=world.commander
    )
    winners, losers = split(
        race(
            lambda: workflow.accept(offer.pk, by=world.alice_user),
            lambda: workflow.decline(offer.pk, by=world.alice_user, reason="Double-tapped"),
        )
    )
    assert len(winners) == 1
    assert isinstance(losers[0], IllegalTransition)
    offer.refresh_from_db()
    assert_log_chains(offer)


def test_accept_racing_cancel_leaves_a_log_that_chains(world: World) -> None:
    # Accepted-then-cancelled is legal, so both may win one after the other; what must never
    # happen is a state the event log does not explain.
    offer = workflow.offer(
        workflow.propose(world.request, world.alice, by=world.commander), by=world.commander
    )
    split(
        race(
            lambda: workflow.accept(offer.pk, by=world.alice_user),
            lambda: workflow.cancel(offer.pk, by=world.commander, reason="Unit closed"),
        )
    )
    offer.refresh_from_db()
    assert offer.status == Status.CANCELLED
    assert_log_chains(offer)


def assert_log_chains(deployment: Deployment) -> None:
    log = list(deployment.events.order_by("id").values_list("data__from", "data__to"))
    for (_, before), (after, _) in pairwise(log):
        assert after == before, f"event log does not chain: {log}"
    assert log[-1][1] == deployment.status


def test_proposals_racing_for_the_last_slot_never_overfill(world: World) -> None:
    world.request.quantity = 1
    world.request.save()
    experts = [factories.ExpertFactory() for _ in range(5)]
    winners, losers = split(
        race(*[lambda e=e: workflow.propose(world.request, e, by=world.commander) for e in experts])
    )
    assert len(winners) == 1
    assert len(losers) == 4
    assert world.request.deployments.count() == 1
