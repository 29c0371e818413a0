"""Request entry and editing on the web, with the same rules as the API (incidents/requests.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from incidents.models import Deployment, RoleRequest
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def form_data(world: World, **changes: object) -> dict[str, object]:
    r = world.request
    return {
        "facility": r.facility_id,
        "qualification": r.qualification_id,
        "quantity": 3,
        "start": r.start.isoformat(),
        "end": r.end.isoformat(),
        "priority": "high",
        "max_travel_km": "",
        "notes": "",
        **changes,
    }


def test_a_commander_enters_a_request(world: World, client: Client) -> None:
    client.force_login(world.commander)
    assert "New request" in client.get(reverse("request-new", args=[world.incident.pk])).content.decode()
    response = client.post(reverse("request-new", args=[world.incident.pk]), form_data(world), follow=True)
    assert "saved" in response.content.decode()
    made = RoleRequest.objects.exclude(pk=world.request.pk).get()
    assert (made.quantity, made.priority, made.created_by_id) == (3, "high", world.commander.pk)


def test_errors_are_shown_next_to_the_field_and_nothing_is_written(world: World, client: Client) -> None:
    client.force_login(world.commander)
    before = world.request.start - timedelta(days=1)
    page = client.post(
        reverse("request-new", args=[world.incident.pk]), form_data(world, end=before.isoformat())
    ).content.decode()
    assert 'id="id_end-error"' in page and "before it starts" in page
    other = factories.FacilityFactory(incident=world.other_incident)
    page = client.post(reverse("request-new", args=[world.incident.pk]), form_data(world, facility=other.pk))
    assert 'id="id_facility-error"' in page.content.decode()
    assert RoleRequest.objects.count() == 1


def test_editing_cannot_strand_live_deployments(world: World, client: Client) -> None:
    factories.DeploymentFactory(request=world.request, status=Deployment.Status.ACCEPTED)
    factories.DeploymentFactory(request=world.request, status=Deployment.Status.OFFERED)
    client.force_login(world.commander)
    url = reverse("request-edit", args=[world.incident.pk, world.request.pk])
    page = client.post(url, form_data(world, quantity=1)).content.decode()
    assert "cannot ask for fewer" in page
    world.request.refresh_from_db()
    assert world.request.quantity == 2
    assert client.post(url, form_data(world, quantity=5)).status_code == 302
    world.request.refresh_from_db()
    assert world.request.quantity == 5


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "alice_user"])
def test_only_commanders_write_requests(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.post(reverse("request-new", args=[world.incident.pk]), form_data(world)).status_code == 404
    assert RoleRequest.objects.count() == 1
