"""The demobilization board: who is due out, what blocks them, equipment back, release."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deploy_tracker.errors import IllegalTransition, NotAllowed
from incidents import workflow
from incidents.models import Approval, Deployment, EquipmentIssue, Event, TimeEntry
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


@pytest.fixture
def due(world: World) -> Deployment:
    """Alice on site, due out tomorrow, with a radio still out and a day not yet approved."""
    today = timezone.localdate(timezone=world.incident.tz)
    d = factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.ON_SITE,
        start=today - timedelta(days=10),
        end=today + timedelta(days=1),
    )
    EquipmentIssue.objects.create(deployment=d, item="Radio", issued_at=timezone.now() - timedelta(days=9))
    TimeEntry.objects.create(deployment=d, date=d.start, regular_hours=8)
    return d


def url(world: World, days: int = 3) -> str:
    return reverse("demob-board", args=[world.incident.pk]) + f"?days={days}"


def test_the_board_lists_who_is_due_with_what_blocks_them(
    world: World, due: Deployment, client: Client
) -> None:
    later = factories.DeploymentFactory(
        request=world.request, expert=world.bob, status=Status.ON_SITE, end=due.end + timedelta(days=20)
    )
    client.force_login(world.commander)
    page = client.get(url(world)).content.decode()
    assert f"deployment-{due.pk}" in page and f"deployment-{later.pk}" not in page
    assert "1× Radio" in page and "1 time entry not approved" in page


def test_checkout_then_release_from_the_board(world: World, due: Deployment, client: Client) -> None:
    client.force_login(world.commander)
    refused = client.post(url(world), {"deployment": due.pk, "travel_arranged": "on"}, follow=True)
    assert "Cannot release" in refused.content.decode() and "equipment" in refused.content.decode()
    item = due.equipment.get()
    client.post(url(world), {"action": "return", "item": item.pk})
    item.refresh_from_db()
    assert item.returned_at is not None and Event.objects.filter(type="equipment.returned").count() == 1
    TimeEntry.objects.update(status=Approval.APPROVED, approved_by=world.finance, approved_at=timezone.now())
    released = client.post(url(world), {"deployment": due.pk, "travel_arranged": "on"}, follow=True)
    assert f"{world.alice.full_name} released." in released.content.decode()
    due.refresh_from_db()
    assert due.status == Status.RELEASED and due.travel_arranged


def test_an_item_comes_back_once_and_only_a_commander_takes_it(world: World, due: Deployment) -> None:
    item = due.equipment.get()
    with pytest.raises(NotAllowed):
        workflow.return_equipment(item, by=world.finance)
    workflow.return_equipment(item, by=world.commander)
    with pytest.raises(IllegalTransition, match="already returned"):
        workflow.return_equipment(item, by=world.commander)


def test_the_board_takes_the_same_queries_for_2_or_20_people(
    world: World, client: Client, django_assert_max_num_queries: Any
) -> None:
    client.force_login(world.commander)
    today = timezone.localdate(timezone=world.incident.tz)

    def add(n: int) -> None:
        for _ in range(n):
            d = factories.DeploymentFactory(
                request=world.request, status=Status.ON_SITE, start=today - timedelta(days=5), end=today
            )
            EquipmentIssue.objects.create(deployment=d, item="Radio", issued_at=timezone.now())

    add(2)
    with django_assert_max_num_queries(8):
        client.get(url(world))
    add(18)
    with django_assert_max_num_queries(8):
        assert client.get(url(world)).content.decode().count('class="card" id="deployment-') == 20


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "alice_user"])
def test_the_board_is_for_commanders(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(url(world)).status_code == 404
