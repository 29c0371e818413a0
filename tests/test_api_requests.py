"""Role requests over the API: commanders of the incident create, change and delete them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.response import Response
from rest_framework.test import APIClient

from incidents.models import Deployment, RoleRequest
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def call(user: User, method: str, path: str, body: dict[str, Any] | None = None) -> Response:
    client = APIClient()
    client.force_authenticate(user)
    response: Response = getattr(client, method)(path, body, format="json")
    return response


def one(world: World) -> str:
    return f"/api/requests/{world.request.pk}/"


def new_request(world: World, **change: Any) -> dict[str, Any]:
    return {
        "facility": world.request.facility.pk,
        "qualification": "RN",
        "quantity": 3,
        "start": "2027-01-04",
        "end": "2027-01-15",
        "priority": "high",
        **change,
    }


# --- create -------------------------------------------------------------------------------------------


def test_a_commander_creates_a_request(world: World) -> None:
    response = call(world.commander, "post", "/api/requests/", new_request(world, max_travel_km=150))
    assert response.status_code == 201
    body = response.json()
    assert (body["qualification"], body["quantity"], body["filled"], body["max_travel_km"]) == (
        "RN",
        3,
        0,
        150,
    )
    assert (body["incident"], body["facility_code"]) == (world.incident.pk, world.request.facility.code)
    assert RoleRequest.objects.get(pk=body["id"]).created_by == world.commander


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_members_who_do_not_command_cannot_create_requests(world: World, who: str) -> None:
    response = call(getattr(world, who), "post", "/api/requests/", new_request(world))
    assert response.status_code == 403 and response.json()["error"] == "not_allowed"
    assert RoleRequest.objects.count() == 1


@pytest.mark.parametrize("who", ["other_commander", "outsider", "alice_user"])
def test_a_facility_one_may_not_see_is_named_as_not_existing(world: World, who: str) -> None:
    response = call(getattr(world, who), "post", "/api/requests/", new_request(world))
    assert response.status_code == 400 and list(response.json()) == ["facility"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end": "2027-01-01"}, "end"),
        ({"quantity": 0}, "quantity"),
        ({"qualification": "XYZ"}, "qualification"),
        ({"priority": "urgent"}, "priority"),
        ({"max_travel_km": 0}, "max_travel_km"),
        ({"start": "someday"}, "start"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(world: World, change: dict[str, Any], field: str) -> None:
    response = call(world.commander, "post", "/api/requests/", new_request(world, **change))
    assert response.status_code == 400 and list(response.json()) == [field]


def test_the_required_fields_are_named(world: World) -> None:
    response = call(world.commander, "post", "/api/requests/", {})
    assert response.status_code == 400
    assert set(response.json()) == {"facility", "qualification", "quantity", "start", "end"}


# --- update -------------------------------------------------------------------------------------------


def test_a_commander_changes_a_request(world: World) -> None:
    response = call(world.commander, "patch", one(world), {"quantity": 5, "notes": "Night shift"})
    assert response.status_code == 200
    assert (response.json()["quantity"], response.json()["notes"]) == (5, "Night shift")
    world.request.refresh_from_db()
    assert world.request.quantity == 5


def test_a_whole_request_can_be_replaced(world: World) -> None:
    response = call(world.commander, "put", one(world), new_request(world, quantity=4))
    assert response.status_code == 200 and response.json()["start"] == "2027-01-04"


def test_dates_are_checked_against_the_kept_ones(world: World) -> None:
    end = world.request.start - timedelta(days=1)
    response = call(world.commander, "patch", one(world), {"end": str(end)})
    assert response.status_code == 400 and list(response.json()) == ["end"]


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_members_who_do_not_command_cannot_change_requests(world: World, who: str) -> None:
    for method in ("patch", "put", "delete"):
        response = call(getattr(world, who), method, one(world), {"quantity": 9})
        assert response.status_code == 403 and response.json()["error"] == "not_allowed"
    world.request.refresh_from_db()
    assert world.request.quantity == 2


@pytest.mark.parametrize("who", ["other_commander", "outsider", "alice_user"])
def test_strangers_cannot_find_the_request(world: World, who: str) -> None:
    for method in ("get", "patch", "delete"):
        assert call(getattr(world, who), method, one(world), {"quantity": 9}).status_code == 404


def test_a_request_cannot_move_to_an_incident_one_does_not_command(world: World) -> None:
    there = factories.FacilityFactory(incident=world.other_incident)
    assert call(world.commander, "patch", one(world), {"facility": there.pk}).status_code == 400
    factories.MembershipFactory(user=world.commander, incident=world.other_incident, role="viewer")
    response = call(world.commander, "patch", one(world), {"facility": there.pk})
    assert response.status_code == 403 and response.json()["error"] == "not_allowed"


def test_a_request_with_live_deployments_keeps_them_whole(world: World) -> None:
    factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.OFFERED)
    for change, error in [
        ({"quantity": 1}, "request_full"),
        ({"qualification": factories.QualificationFactory(code="RT").code}, "illegal_transition"),
        ({"facility": factories.FacilityFactory(incident=world.incident).pk}, "illegal_transition"),
        ({"start": str(world.request.start + timedelta(days=1))}, "illegal_transition"),
    ]:
        response = call(world.commander, "patch", one(world), change)
        assert (response.status_code, response.json()["error"]) == (409, error), change
    later = str(world.request.end + timedelta(days=3))
    assert call(world.commander, "patch", one(world), {"end": later, "quantity": 4}).status_code == 200


def test_a_request_whose_deployments_ended_may_change(world: World) -> None:
    factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.DECLINED)
    factories.QualificationFactory(code="RT")
    response = call(world.commander, "patch", one(world), {"quantity": 1, "qualification": "RT"})
    assert response.status_code == 200 and response.json()["qualification"] == "RT"


# --- delete -------------------------------------------------------------------------------------------


def test_a_request_without_deployments_is_deleted(world: World) -> None:
    assert call(world.commander, "delete", one(world)).status_code == 204
    assert not RoleRequest.objects.exists()


def test_a_request_with_deployments_is_kept(world: World) -> None:
    factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.CANCELLED)
    response = call(world.commander, "delete", one(world))
    assert response.status_code == 409 and response.json()["error"] == "illegal_transition"
    assert "1 deployment" in response.json()["detail"]
    assert RoleRequest.objects.exists()
