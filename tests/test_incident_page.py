"""The incident picture: fill status and alerts for the incident's members, in a fixed number of queries."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from incidents import workflow
from incidents.models import Deployment
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


@pytest.mark.parametrize("who", ["commander", "finance", "viewer", "superuser"])
def test_members_see_the_incident_page(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    page = client.get(reverse("incident", args=[world.incident.pk]))
    assert page.status_code == 200
    assert f"request-{world.request.pk}" in page.content.decode()
    assert f'data-socket="/ws/incidents/{world.incident.pk}/"' in page.content.decode()


@pytest.mark.parametrize("who", ["other_commander", "outsider", "alice_user"])
def test_others_cannot_tell_it_exists(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(reverse("incident", args=[world.incident.pk])).status_code == 404
    assert client.get(reverse("incident-fill", args=[world.incident.pk])).status_code == 404


def test_anonymous_is_sent_to_sign_in(world: World, client: Client) -> None:
    assert client.get(reverse("incident", args=[world.incident.pk])).status_code == 302


def test_the_fill_fragment_counts_each_state(world: World, client: Client) -> None:
    for status in (Status.ON_SITE, Status.ACCEPTED):
        factories.DeploymentFactory(request=world.request, status=status)
    world.request.quantity = 4
    world.request.save()
    client.force_login(world.commander)
    fragment = client.get(reverse("incident-fill", args=[world.incident.pk])).content.decode()
    assert "2/4 filled" in fragment
    assert "4</strong> slots requested" in fragment and "2 open" in fragment


def test_a_failed_screening_is_an_alert(world: World, client: Client) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    workflow.check_in(d, by=world.commander, temperature_c="38.6", spo2=97)
    client.force_login(world.commander)
    page = client.get(reverse("incident", args=[world.incident.pk])).content.decode()
    assert "deployment.screening_failed" in page and "temperature 38.6" in page


def test_the_page_takes_the_same_queries_whatever_its_size(
    world: World, client: Client, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.commander)
    url = reverse("incident", args=[world.incident.pk])
    # session, user, incident (scoped), newest event, requests with counts, alerts
    with django_assert_max_num_queries(7):
        client.get(url)
    facility = world.request.facility
    for _ in range(25):
        request = factories.RoleRequestFactory(facility=facility)
        factories.DeploymentFactory(request=request, status=Status.ACCEPTED)
    with django_assert_max_num_queries(7):
        assert client.get(url).status_code == 200
