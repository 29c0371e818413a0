"""The deployment workflow over the API: propose, offer, accept, decline, check in, release, cancel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient

from incidents.models import Approval, Deployment, Event, HealthScreening, TimeEntry
from tests import factories
from tests.conftest import World, offered

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def post(user: User | None, path: str, body: dict[str, Any] | None = None) -> Response:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    response: Response = client.post(path, body or {}, format="json")
    return response


def act(deployment: Deployment, verb: str) -> str:
    return f"/api/deployments/{deployment.pk}/{verb}/"


def in_state(world: World, status: str, expert: Any = None, **kwargs: Any) -> Deployment:
    return factories.DeploymentFactory(
        request=world.request, expert=expert or world.alice, status=status, **kwargs
    )


def refused(response: Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["error"] == error and body["detail"]
    return body


# --- propose ------------------------------------------------------------------------------------------


def test_a_commander_proposes_an_expert_for_a_request(world: World) -> None:
    response = post(
        world.commander, "/api/deployments/", {"request": world.request.pk, "expert": world.bob.pk}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["expert"], body["request"]) == ("proposed", world.bob.pk, world.request.pk)
    assert (body["start"], body["end"]) == (str(world.request.start), str(world.request.end))
    assert Event.objects.get(deployment_id=body["id"]).type == "deployment.proposed"


def test_a_proposal_may_take_part_of_the_request(world: World) -> None:
    start = world.request.start + timedelta(days=2)
    body = {"request": world.request.pk, "expert": world.bob.pk, "start": str(start)}
    response = post(world.commander, "/api/deployments/", body)
    assert response.status_code == 201 and response.json()["start"] == str(start)


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_members_who_do_not_command_cannot_propose(world: World, who: str) -> None:
    # Bob once declined here, so finance officers and viewers see him on the roster.
    in_state(world, Status.DECLINED, expert=world.bob)
    body = {"request": world.request.pk, "expert": world.bob.pk}
    refused(post(getattr(world, who), "/api/deployments/", body), 403, "not_allowed")
    assert Deployment.objects.count() == 1


def test_a_finance_officer_cannot_name_people_outside_their_incident(world: World) -> None:
    response = post(world.finance, "/api/deployments/", {"request": world.request.pk, "expert": world.bob.pk})
    assert response.status_code == 400 and list(response.json()) == ["expert"]


def test_a_stranger_cannot_even_name_the_request(world: World) -> None:
    response = post(
        world.other_commander, "/api/deployments/", {"request": world.request.pk, "expert": world.bob.pk}
    )
    assert response.status_code == 400
    assert list(response.json()) == ["request"]


def test_a_full_request_is_a_conflict(world: World) -> None:
    in_state(world, Status.ACCEPTED)
    in_state(world, Status.PROPOSED, expert=factories.ExpertFactory())
    response = post(
        world.commander, "/api/deployments/", {"request": world.request.pk, "expert": world.bob.pk}
    )
    refused(response, 409, "request_full")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expert": "bob"}, "expert"),
        ({"start": "2026-13-01"}, "start"),
        ({"start": "2026-11-20"}, "start"),  # before the request: the service names it
    ],
)
def test_a_bad_proposal_is_a_400_naming_the_field(world: World, body: dict[str, Any], field: str) -> None:
    response = post(
        world.commander, "/api/deployments/", {"request": world.request.pk, "expert": world.bob.pk, **body}
    )
    assert response.status_code == 400
    answer = response.json()
    assert answer.get("field") == field or list(answer) == [field]


def test_an_end_before_the_start_is_named(world: World) -> None:
    body = {
        "request": world.request.pk,
        "expert": world.bob.pk,
        "start": str(world.request.start + timedelta(days=3)),
        "end": str(world.request.start + timedelta(days=1)),
    }
    assert refused(post(world.commander, "/api/deployments/", body), 400, "invalid_input")["field"] == "end"


# --- offer --------------------------------------------------------------------------------------------


def test_a_commander_offers_a_proposal_with_a_deadline(world: World) -> None:
    draft = in_state(world, Status.PROPOSED)
    deadline = timezone.now() + timedelta(hours=6)
    response = post(world.commander, act(draft, "offer"), {"expires_at": deadline.isoformat()})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "offered" and body["id"] == draft.pk
    draft.refresh_from_db()
    assert draft.offer_expires_at == deadline


def test_offering_twice_is_a_conflict_with_the_reason(world: World) -> None:
    body = refused(post(world.commander, act(offered(world), "offer")), 409, "illegal_transition")
    assert "it is offered" in body["detail"]


def test_a_deadline_in_the_past_is_a_400_naming_it(world: World) -> None:
    draft = in_state(world, Status.PROPOSED)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    body = refused(post(world.commander, act(draft, "offer"), {"expires_at": past}), 400, "invalid_input")
    assert body["field"] == "expires_at"
    response = post(world.commander, act(draft, "offer"), {"expires_at": "soon"})
    assert response.status_code == 400 and list(response.json()) == ["expires_at"]


def test_an_expert_holding_an_overlapping_deployment_is_unavailable(world: World) -> None:
    in_state(world, Status.ACCEPTED)
    other = factories.RoleRequestFactory(facility=world.request.facility)
    draft = factories.DeploymentFactory(request=other, expert=world.alice)
    refused(post(world.commander, act(draft, "offer")), 409, "expert_unavailable")


# --- accept and decline -------------------------------------------------------------------------------


def test_the_responder_accepts_their_offer(world: World) -> None:
    response = post(world.alice_user, act(offered(world), "accept"))
    assert response.status_code == 200 and response.json()["status"] == "accepted"


def test_a_commander_accepts_on_the_responders_behalf(world: World) -> None:
    deployment = offered(world)
    assert post(world.commander, act(deployment, "accept")).json()["status"] == "accepted"
    assert Event.objects.get(type="deployment.accepted").data["on_behalf"] is True


def test_the_responder_declines_saying_why(world: World) -> None:
    deployment = offered(world)
    response = post(world.alice_user, act(deployment, "decline"), {"reason": "  Family emergency "})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("declined", "Family emergency")


def test_a_lapsed_offer_cannot_be_accepted_and_says_so(world: World) -> None:
    deployment = offered(world, offer_expires_at=timezone.now() - timedelta(minutes=5))
    assert (
        "expired"
        in refused(post(world.alice_user, act(deployment, "accept")), 409, "illegal_transition")["detail"]
    )
    deployment.refresh_from_db()
    assert deployment.status == Status.EXPIRED


@pytest.mark.parametrize("verb", ["accept", "decline"])
def test_answering_an_answered_offer_is_a_conflict(world: World, verb: str) -> None:
    refused(post(world.alice_user, act(in_state(world, Status.ACCEPTED), verb)), 409, "illegal_transition")


@pytest.mark.parametrize("verb", ["accept", "decline"])
def test_another_responder_cannot_see_the_offer(world: World, verb: str) -> None:
    assert post(world.bob_user, act(offered(world), verb)).status_code == 404


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_members_without_the_right_cannot_answer_for_the_responder(world: World, who: str) -> None:
    refused(post(getattr(world, who), act(offered(world), "accept")), 403, "not_allowed")


def test_the_responder_does_not_see_a_proposal(world: World) -> None:
    assert post(world.alice_user, act(in_state(world, Status.PROPOSED), "accept")).status_code == 404


def test_a_decline_reason_must_be_text(world: World) -> None:
    response = post(world.alice_user, act(offered(world), "decline"), {"reason": ["no"]})
    assert response.status_code == 400 and list(response.json()) == ["reason"]


# --- check in -----------------------------------------------------------------------------------------

FIT = {"temperature_c": "36.8", "spo2": 98, "symptoms": [], "notes": "Badge issued"}


def test_a_fit_responder_is_checked_in_and_on_site(world: World) -> None:
    deployment = in_state(world, Status.ACCEPTED)
    response = post(world.commander, act(deployment, "check-in"), FIT)
    assert response.status_code == 200
    body = response.json()
    assert body["deployment"]["status"] == "on_site"
    assert body["screening"]["result"] == "pass" and body["screening"]["temperature_c"] == "36.8"
    assert body["screening"]["reasons"] == [] and body["screening"]["notes"] == "Badge issued"


def test_a_failed_screening_cancels_and_says_why(world: World) -> None:
    deployment = in_state(world, Status.ACCEPTED)
    body = {**FIT, "temperature_c": 38.4, "symptoms": ["cough", "fever"]}
    answer = post(world.commander, act(deployment, "check-in"), body).json()
    assert answer["deployment"]["status"] == "cancelled"
    assert answer["screening"]["result"] == "fail"
    assert answer["screening"]["symptoms"] == ["cough", "fever"]
    assert len(answer["screening"]["reasons"]) == 3
    assert HealthScreening.objects.get().deployment_id == deployment.pk


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"temperature_c": "hot"}, "temperature_c"),
        ({"temperature_c": 55}, "temperature_c"),
        ({"spo2": 20}, "spo2"),
        ({"symptoms": ["hiccups"]}, "symptoms"),
        ({"symptoms": "cough"}, "symptoms"),
    ],
)
def test_a_bad_screening_is_a_400_naming_the_field(world: World, change: dict[str, Any], field: str) -> None:
    deployment = in_state(world, Status.ACCEPTED)
    response = post(world.commander, act(deployment, "check-in"), {**FIT, **change})
    assert response.status_code == 400 and list(response.json()) == [field]
    assert not HealthScreening.objects.exists()


def test_the_readings_are_required(world: World) -> None:
    response = post(world.commander, act(in_state(world, Status.ACCEPTED), "check-in"), {})
    assert response.status_code == 400 and set(response.json()) == {"temperature_c", "spo2"}


def test_checking_in_someone_not_yet_accepted_is_a_conflict(world: World) -> None:
    refused(post(world.commander, act(offered(world), "check-in"), FIT), 409, "illegal_transition")


def test_the_responder_cannot_check_themself_in(world: World) -> None:
    refused(
        post(world.alice_user, act(in_state(world, Status.ACCEPTED), "check-in"), FIT), 403, "not_allowed"
    )


# --- release ------------------------------------------------------------------------------------------


def test_release_once_check_out_is_complete(world: World) -> None:
    deployment = in_state(world, Status.ON_SITE)
    TimeEntry.objects.create(
        deployment=deployment,
        date=deployment.start,
        regular_hours=8,
        status=Approval.APPROVED,
        approved_by=world.finance,
        approved_at=timezone.now(),
    )
    response = post(world.commander, act(deployment, "release"), {"travel_arranged": True})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["travel_arranged"]) == ("released", True)


def test_release_is_blocked_until_travel_is_arranged_and_time_approved(world: World) -> None:
    deployment = in_state(world, Status.ON_SITE)
    TimeEntry.objects.create(deployment=deployment, date=deployment.start, regular_hours=8)
    body = refused(post(world.commander, act(deployment, "release")), 409, "release_blocked")
    assert "return travel not arranged" in body["detail"] and "not approved" in body["detail"]


def test_releasing_someone_not_on_site_is_a_conflict(world: World) -> None:
    deployment = in_state(world, Status.ACCEPTED, travel_arranged=True)
    refused(post(world.commander, act(deployment, "release")), 409, "illegal_transition")


def test_release_takes_a_boolean(world: World) -> None:
    response = post(
        world.commander, act(in_state(world, Status.ON_SITE), "release"), {"travel_arranged": "maybe"}
    )
    assert response.status_code == 400 and list(response.json()) == ["travel_arranged"]


@pytest.mark.parametrize("who", ["finance", "viewer", "alice_user"])
def test_only_commanders_release(world: World, who: str) -> None:
    deployment = in_state(world, Status.ON_SITE, travel_arranged=True)
    refused(post(getattr(world, who), act(deployment, "release")), 403, "not_allowed")


# --- cancel -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.PROPOSED, Status.OFFERED, Status.ACCEPTED])
def test_a_commander_cancels_saying_why(world: World, status: str) -> None:
    deployment = in_state(world, status)
    response = post(world.commander, act(deployment, "cancel"), {"reason": "Facility closed"})
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("cancelled", "Facility closed")


def test_cancelling_needs_a_reason(world: World) -> None:
    deployment = in_state(world, Status.ACCEPTED)
    for body in ({}, {"reason": "   "}):
        response = post(world.commander, act(deployment, "cancel"), body)
        assert response.status_code == 400 and list(response.json()) == ["reason"]


def test_the_responder_withdraws_from_an_accepted_deployment_but_not_an_offer(world: World) -> None:
    accepted = in_state(world, Status.ACCEPTED)
    assert (
        post(world.alice_user, act(accepted, "cancel"), {"reason": "Injured"}).json()["status"] == "cancelled"
    )
    offer = offered(world, expert=world.bob)
    refused(post(world.bob_user, act(offer, "cancel"), {"reason": "No"}), 409, "illegal_transition")


def test_a_released_deployment_cannot_be_cancelled(world: World) -> None:
    body = refused(
        post(world.commander, act(in_state(world, Status.RELEASED), "cancel"), {"reason": "x"}),
        409,
        "illegal_transition",
    )
    assert "released" in body["detail"]


# --- permission matrix for every action ------------------------------------------------------------------

ACTIONS = {
    "offer": (Status.PROPOSED, {}),
    "accept": (Status.OFFERED, {}),
    "decline": (Status.OFFERED, {}),
    "check-in": (Status.ACCEPTED, FIT),
    "release": (Status.ON_SITE, {"travel_arranged": True}),
    "cancel": (Status.ACCEPTED, {"reason": "x"}),
}


@pytest.mark.parametrize("verb", list(ACTIONS))
@pytest.mark.parametrize("who", ["other_commander", "outsider", "bob_user"])
def test_strangers_get_404_for_every_action(world: World, verb: str, who: str) -> None:
    status, body = ACTIONS[verb]
    deployment = in_state(world, status)
    assert post(getattr(world, who), act(deployment, verb), body).status_code == 404
    deployment.refresh_from_db()
    assert deployment.status == status


@pytest.mark.parametrize("verb", list(ACTIONS))
def test_anonymous_is_refused_every_action(world: World, verb: str) -> None:
    status, body = ACTIONS[verb]
    assert post(None, act(in_state(world, status), verb), body).status_code == 403


@pytest.mark.parametrize("verb", list(ACTIONS))
def test_a_viewer_may_see_but_not_move(world: World, verb: str) -> None:
    status, body = ACTIONS[verb]
    refused(post(world.viewer, act(in_state(world, status), verb), body), 403, "not_allowed")


@pytest.mark.parametrize("verb", list(ACTIONS))
def test_a_superuser_may_do_every_move(world: World, verb: str) -> None:
    status, body = ACTIONS[verb]
    assert post(world.superuser, act(in_state(world, status), verb), body).status_code == 200


def test_a_missing_deployment_is_404(world: World) -> None:
    assert post(world.superuser, "/api/deployments/999999/accept/").status_code == 404
    assert post(world.superuser, "/api/deployments/abc/accept/").status_code == 404


def test_actions_take_json_only(world: World) -> None:
    client = APIClient()
    client.force_authenticate(world.commander)
    response = client.post(act(in_state(world, Status.ACCEPTED), "cancel"), {"reason": "x"})  # multipart
    assert response.status_code == 415


# --- my deployments -------------------------------------------------------------------------------------


def mine(user: User, **params: Any) -> list[dict[str, Any]]:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/me/deployments/", params)
    assert response.status_code == 200
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_a_responder_lists_their_deployments_open_offers_first(world: World) -> None:
    later = factories.RoleRequestFactory(
        facility=world.request.facility,
        start=world.request.start - timedelta(days=40),
        end=world.request.start - timedelta(days=30),
    )
    past = factories.DeploymentFactory(request=later, expert=world.alice, status=Status.RELEASED)
    offer = offered(world)
    factories.DeploymentFactory(
        request=factories.RoleRequestFactory(facility=world.request.facility), expert=world.alice
    )
    offered(world, expert=world.bob)
    assert [d["id"] for d in mine(world.alice_user)] == [offer.pk, past.pk]
    assert [d["id"] for d in mine(world.alice_user, status="released")] == [past.pk]


def test_reading_my_deployments_expires_lapsed_offers(world: World) -> None:
    lapsed = offered(world, offer_expires_at=timezone.now() - timedelta(minutes=1))
    assert [(d["id"], d["status"]) for d in mine(world.alice_user)] == [(lapsed.pk, "expired")]


@pytest.mark.parametrize("who", ["commander", "outsider", "superuser"])
def test_someone_without_a_roster_record_has_no_deployments_of_their_own(world: World, who: str) -> None:
    offered(world)
    assert mine(getattr(world, who)) == []
