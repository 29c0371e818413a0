"""Every transition: allowed and illegal moves, with the actor's role, and the events they write."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from deploy_tracker.errors import (
    ExpertUnavailable,
    IllegalTransition,
    InvalidInput,
    NotAllowed,
    ReleaseBlocked,
    RequestFull,
)
from incidents import workflow
from incidents.models import Approval, Deployment, Event, HealthScreening
from tests import factories
from tests.conftest import World, offered

Status = Deployment.Status


def haversine_km(a: object, b: object) -> float:
    """Great-circle distance computed here, independently of geopy."""
    lat1, lon1, lat2, lon2 = map(
        math.radians,
        (a.latitude, a.longitude, b.latitude, b.longitude),  # type: ignore[attr-defined]
    )
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.009 * math.asin(math.sqrt(h))


# --- propose ---------------------------------------------------------------------------------


def test_commander_proposes_and_the_event_is_for_members_only(world: World) -> None:
    d = workflow.propose(world.request, world.alice, by=world.commander, why="closest RN")
    assert d.status == Status.PROPOSED
    assert (d.start, d.end) == (world.request.start, world.request.end)
    assert d.rest_until == d.end + timedelta(days=world.incident.rest_days)
    assert d.distance_km == pytest.approx(haversine_km(world.alice, world.request.facility), abs=0.1)
    event = Event.objects.get()
    assert (event.type, event.expert_id, event.actor) == ("deployment.proposed", None, world.commander)
    assert event.data["why"] == "closest RN"


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "outsider", "alice_user"])
def test_only_a_commander_of_the_incident_may_propose(world: World, who: str) -> None:
    with pytest.raises(NotAllowed, match="Only a commander of incident WA-2026-01"):
        workflow.propose(world.request, world.alice, by=getattr(world, who))
    assert not Deployment.objects.exists()
    assert not Event.objects.exists()


def test_superuser_may_propose_anywhere(world: World) -> None:
    assert workflow.propose(world.request, world.alice, by=world.superuser).status == Status.PROPOSED


def test_propose_refuses_a_full_request(world: World) -> None:
    world.request.quantity = 1
    world.request.save()
    workflow.propose(world.request, world.alice, by=world.commander)
    with pytest.raises(RequestFull, match="needs 1"):
        workflow.propose(world.request, world.bob, by=world.commander)


def test_propose_refuses_the_same_person_twice_on_one_request(world: World) -> None:
    workflow.propose(world.request, world.alice, by=world.commander)
    with pytest.raises(IllegalTransition, match="already has a live deployment"):
        workflow.propose(world.request, world.alice, by=world.commander)


def test_propose_refuses_an_inactive_expert(world: World) -> None:
    world.alice.active = False
    world.alice.save()
    with pytest.raises(InvalidInput, match="not active"):
        workflow.propose(world.request, world.alice, by=world.commander)


def test_propose_keeps_dates_inside_the_request(world: World) -> None:
    with pytest.raises(InvalidInput, match="outside request"):
        workflow.propose(
            world.request, world.alice, by=world.commander, end=world.request.end + timedelta(days=1)
        )


def test_longer_than_policy_needs_an_approved_extension(world: World) -> None:
    world.request.end = world.request.start + timedelta(days=20)
    world.request.save()
    with pytest.raises(InvalidInput, match="21 days is longer than incident WA-2026-01 allows"):
        workflow.propose(world.request, world.alice, by=world.commander)
    d = workflow.propose(world.request, world.alice, by=world.commander, extension_approved=True)
    assert d.extension_approved


# --- offer -----------------------------------------------------------------------------------


def test_offer_sets_a_deadline_and_tells_the_responder(world: World) -> None:
    d = workflow.propose(world.request, world.alice, by=world.commander)
    before = timezone.now()
    d = workflow.offer(d, by=world.commander)
    assert d.status == Status.OFFERED
    assert d.offer_expires_at is not None
    assert d.offer_expires_at - before >= timedelta(hours=world.incident.offer_response_hours)
    event = Event.objects.latest("id")
    assert (event.type, event.expert_id) == ("deployment.offered", world.alice.pk)
    assert (event.data["from"], event.data["to"]) == ("proposed", "offered")


def test_offer_refuses_an_overlapping_holding_deployment_rest_days_included(world: World) -> None:
    first = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    later_request = factories.RoleRequestFactory(
        facility=world.request.facility,
        start=first.end + timedelta(days=2),  # inside the 2 rest days
        end=first.end + timedelta(days=8),
    )
    d = workflow.propose(later_request, world.alice, by=world.commander)
    with pytest.raises(ExpertUnavailable, match=f"already holds deployment #{first.pk}"):
        workflow.offer(d, by=world.commander)
    d.refresh_from_db()
    assert d.status == Status.PROPOSED


def test_offer_after_the_rest_days_is_fine(world: World) -> None:
    first = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ON_SITE)
    later_request = factories.RoleRequestFactory(
        facility=world.request.facility,
        start=first.rest_until + timedelta(days=1),
        end=first.rest_until + timedelta(days=7),
    )
    d = workflow.propose(later_request, world.alice, by=world.commander)
    assert workflow.offer(d, by=world.commander).status == Status.OFFERED


def test_released_or_declined_deployments_do_not_block(world: World) -> None:
    for status in (Status.RELEASED, Status.DECLINED, Status.EXPIRED, Status.CANCELLED):
        factories.DeploymentFactory(request=world.request, expert=world.alice, status=status)
    other = factories.RoleRequestFactory(facility=world.request.facility)
    d = workflow.propose(other, world.alice, by=world.commander)
    assert workflow.offer(d, by=world.commander).status == Status.OFFERED


def test_offer_twice_is_an_illegal_transition_that_says_why(world: World) -> None:
    d = workflow.offer(workflow.propose(world.request, world.alice, by=world.commander), by=world.commander)
    with pytest.raises(IllegalTransition, match=r"it is offered \(it must be proposed\)"):
        workflow.offer(d, by=world.commander)


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "alice_user"])
def test_only_commanders_offer(world: World, who: str) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice)
    with pytest.raises(NotAllowed):
        workflow.offer(d, by=getattr(world, who))


# --- accept / decline / expire -----------------------------------------------------------------


def test_responder_accepts_their_offer(world: World) -> None:
    d = workflow.accept(offered(world), by=world.alice_user)
    assert d.status == Status.ACCEPTED
    assert d.responded_at is not None
    event = Event.objects.get()
    assert (event.type, event.actor, event.data["on_behalf"]) == (
        "deployment.accepted",
        world.alice_user,
        False,
    )


def test_commander_may_accept_on_behalf_and_it_is_recorded(world: World) -> None:
    workflow.accept(offered(world), by=world.commander)
    assert Event.objects.get().data["on_behalf"] is True


@pytest.mark.parametrize("who", ["bob_user", "finance", "viewer", "other_commander", "outsider"])
def test_nobody_else_accepts_alices_offer(world: World, who: str) -> None:
    d = offered(world)
    with pytest.raises(NotAllowed):
        workflow.accept(d, by=getattr(world, who))
    d.refresh_from_db()
    assert d.status == Status.OFFERED


def test_responder_declines_with_a_reason(world: World) -> None:
    d = workflow.decline(offered(world), by=world.alice_user, reason="Caring for a parent")
    assert (d.status, d.reason) == (Status.DECLINED, "Caring for a parent")
    assert Event.objects.get().data["reason"] == "Caring for a parent"


def test_cannot_accept_a_declined_offer(world: World) -> None:
    d = workflow.decline(offered(world), by=world.alice_user)
    with pytest.raises(IllegalTransition, match="it is declined"):
        workflow.accept(d, by=world.alice_user)


def test_accepting_a_lapsed_offer_expires_it_and_says_so(world: World) -> None:
    d = offered(world, offer_expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(IllegalTransition, match="expired at"):
        workflow.accept(d, by=world.alice_user)
    d.refresh_from_db()
    assert d.status == Status.EXPIRED
    assert Event.objects.get().type == "deployment.expired"


def test_expire_refuses_an_offer_still_open(world: World) -> None:
    d = offered(world, offer_expires_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(IllegalTransition, match="is open until"):
        workflow.expire(d)


def test_expire_due_offers_expires_only_lapsed_ones(world: World) -> None:
    lapsed = offered(world, offer_expires_at=timezone.now() - timedelta(hours=1))
    open_ = offered(world, expert=world.bob, offer_expires_at=timezone.now() + timedelta(hours=1))
    assert [d.pk for d in workflow.expire_due_offers()] == [lapsed.pk]
    open_.refresh_from_db()
    assert open_.status == Status.OFFERED
    event = Event.objects.get()
    assert (event.type, event.actor) == ("deployment.expired", None)


# --- cancel ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.PROPOSED, Status.OFFERED, Status.ACCEPTED])
def test_commander_cancels_with_a_reason(world: World, status: str) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=status)
    d = workflow.cancel(d, by=world.commander, reason="Facility closed the unit")
    assert (d.status, d.reason) == (Status.CANCELLED, "Facility closed the unit")
    assert d.cancelled_at is not None
    # The responder never saw a proposal, so they are not told it was cancelled.
    assert Event.objects.get().expert_id == (None if status == Status.PROPOSED else world.alice.pk)


def test_cancel_needs_a_reason(world: World) -> None:
    with pytest.raises(InvalidInput, match="Say why"):
        workflow.cancel(offered(world), by=world.commander, reason="  ")


@pytest.mark.parametrize("status", [Status.ON_SITE, Status.RELEASED, Status.DECLINED])
def test_cancel_is_illegal_once_on_site_or_over(world: World, status: str) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=status)
    with pytest.raises(IllegalTransition, match=f"it is {status}"):
        workflow.cancel(d, by=world.commander, reason="x")


def test_responder_may_withdraw_from_an_accepted_deployment_only(world: World) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    assert workflow.cancel(d, by=world.alice_user, reason="Sick").status == Status.CANCELLED
    o = offered(world, expert=world.bob)
    with pytest.raises(IllegalTransition, match=r"it must be accepted"):
        workflow.cancel(o, by=world.bob_user, reason="Changed my mind")
    with pytest.raises(NotAllowed):
        workflow.cancel(o, by=world.alice_user, reason="Not mine")


# --- check-in with fitness-for-duty screening ---------------------------------------------------


def accepted(world: World) -> Deployment:
    return factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)


def test_passing_screening_puts_the_responder_on_site(world: World) -> None:
    d, screening = workflow.check_in(accepted(world), by=world.commander, temperature_c="36.8", spo2=98)
    assert d.status == Status.ON_SITE
    assert d.checked_in_at is not None
    assert (screening.result, screening.reasons) == (HealthScreening.Result.PASS, [])
    assert Event.objects.get().type == "deployment.checked_in"


@pytest.mark.parametrize(
    ("temperature", "spo2", "symptoms", "why"),
    [
        ("38.0", 98, [], "temperature 38.0 °C"),
        ("36.9", 93, [], "SpO2 93 %"),
        ("36.9", 97, ["cough"], "symptom: New cough"),
    ],
)
def test_failing_screening_cancels_and_reopens_the_slot(
    world: World, temperature: str, spo2: int, symptoms: list[str], why: str
) -> None:
    d, screening = workflow.check_in(
        accepted(world), by=world.commander, temperature_c=temperature, spo2=spo2, symptoms=symptoms
    )
    assert d.status == Status.CANCELLED
    assert why in d.reason
    assert screening.result == HealthScreening.Result.FAIL
    assert HealthScreening.objects.count() == 1  # every result is kept
    assert Event.objects.get().type == "deployment.screening_failed"
    assert not world.request.deployments.filter(status__in=Deployment.FILLING).exists()


@pytest.mark.parametrize(
    ("temperature", "spo2", "symptoms", "field"),
    [
        ("29.0", 98, [], "temperature_c"),
        ("warm", 98, [], "temperature_c"),
        ("36.9", 101, [], "spo2"),
        ("36.9", "lots", [], "spo2"),
        ("36.9", 98, ["sneezing"], "symptoms"),
    ],
)
def test_implausible_screening_input_is_refused_and_nothing_is_written(
    world: World, temperature: str, spo2: int | str, symptoms: list[str], field: str
) -> None:
    d = accepted(world)
    with pytest.raises(InvalidInput) as caught:
        workflow.check_in(d, by=world.commander, temperature_c=temperature, spo2=spo2, symptoms=symptoms)
    assert caught.value.field == field
    assert not HealthScreening.objects.exists()
    d.refresh_from_db()
    assert d.status == Status.ACCEPTED


def test_check_in_needs_an_accepted_deployment(world: World) -> None:
    with pytest.raises(IllegalTransition, match="it is offered"):
        workflow.check_in(offered(world), by=world.commander, temperature_c=36.5, spo2=99)
    assert not HealthScreening.objects.exists()


@pytest.mark.parametrize("who", ["alice_user", "finance", "viewer", "other_commander"])
def test_only_commanders_screen(world: World, who: str) -> None:
    with pytest.raises(NotAllowed):
        workflow.check_in(accepted(world), by=getattr(world, who), temperature_c=36.5, spo2=99)


# --- release (demobilization check-out) ------------------------------------------------------


def on_site(world: World) -> Deployment:
    return factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ON_SITE)


def test_release_lists_every_open_check_out_item(world: World) -> None:
    d = on_site(world)
    d.equipment.create(item="Radio", issued_at=timezone.now())
    d.time_entries.create(date=d.start, regular_hours=Decimal("8"))
    with pytest.raises(ReleaseBlocked) as caught:
        workflow.release(d, by=world.commander)
    assert caught.value.blockers == [
        "1 equipment item(s) not returned",
        "1 time entry not approved",
        "return travel not arranged",
    ]
    d.refresh_from_db()
    assert (d.status, d.travel_arranged) == (Status.ON_SITE, False)


def test_release_once_checked_out(world: World) -> None:
    d = on_site(world)
    d.equipment.create(item="Radio", issued_at=timezone.now(), returned_at=timezone.now())
    d.time_entries.create(
        date=d.start,
        regular_hours=Decimal("8"),
        status=Approval.APPROVED,
        approved_by=world.finance,
        approved_at=timezone.now(),
    )
    d = workflow.release(d, by=world.commander, travel_arranged=True)
    assert d.status == Status.RELEASED
    assert d.released_at is not None
    d.refresh_from_db()
    assert d.travel_arranged


def test_release_is_illegal_before_check_in(world: World) -> None:
    d = accepted(world)
    d.travel_arranged = True
    d.save()
    with pytest.raises(IllegalTransition, match="it is accepted"):
        workflow.release(d, by=world.commander)


# --- the whole path ----------------------------------------------------------------------------


def test_a_deployment_walks_the_whole_path_and_leaves_its_activity_log(world: World) -> None:
    d = workflow.propose(world.request, world.alice, by=world.commander)
    d = workflow.offer(d, by=world.commander)
    d = workflow.accept(d, by=world.alice_user)
    d, _ = workflow.check_in(d, by=world.commander, temperature_c=36.6, spo2=99)
    d = workflow.release(d, by=world.commander, travel_arranged=True)
    assert d.status == Status.RELEASED
    log = list(d.events.order_by("id").values_list("type", "data__from", "data__to"))
    assert log == [
        ("deployment.proposed", None, "proposed"),
        ("deployment.offered", "proposed", "offered"),
        ("deployment.accepted", "offered", "accepted"),
        ("deployment.checked_in", "accepted", "on_site"),
        ("deployment.released", "on_site", "released"),
    ]


def test_a_move_recorded_late_keeps_when_it_happened(world: World) -> None:
    earlier = timezone.now() - timedelta(days=3)
    d = workflow.accept(offered(world), by=world.alice_user, at=earlier)
    assert d.responded_at == earlier
    assert Event.objects.get().at == earlier


def test_a_move_cannot_be_recorded_in_the_future(world: World) -> None:
    with pytest.raises(InvalidInput, match="in the future") as caught:
        workflow.accept(offered(world), by=world.alice_user, at=timezone.now() + timedelta(hours=1))
    assert caught.value.field == "at"
    assert not Event.objects.exists()


def test_expire_offers_command_expires_lapsed_offers_and_reports_them(world: World) -> None:
    from io import StringIO

    from django.core.management import call_command

    lapsed = offered(world, offer_expires_at=timezone.now() - timedelta(minutes=5))
    offered(world, expert=world.bob)
    out = StringIO()
    call_command("expire_offers", stdout=out)
    assert f"deployment #{lapsed.pk}" in out.getvalue()
    assert "1 offer(s) expired." in out.getvalue()
    assert Deployment.objects.get(pk=lapsed.pk).status == Status.EXPIRED
    call_command("expire_offers", stdout=(again := StringIO()))
    assert "0 offer(s) expired." in again.getvalue()
