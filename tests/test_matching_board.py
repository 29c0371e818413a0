"""The matching board: what-if preview, run, lock, exclude, offer the ticked proposals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from deploy_tracker.errors import IllegalTransition, InvalidInput, NotAllowed
from incidents import workflow
from incidents.models import Deployment, Event, Exclusion
from resources.models import Expert
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def nurse(world: World, email: str, latitude: float = 47.61) -> Expert:
    expert = factories.ExpertFactory(email=email, latitude=latitude, longitude=-122.33)
    factories.CredentialFactory(expert=expert, qualification=world.request.qualification)
    factories.AvailabilityFactory(expert=expert, end=world.request.end + timedelta(days=30))
    return expert


def board(world: World) -> str:
    return reverse("matching-board", args=[world.incident.pk])


def test_lock_keeps_a_proposal_and_exclude_removes_it_for_good(world: World) -> None:
    d = workflow.propose(world.request, world.alice, by=world.commander)
    assert workflow.set_locked(d, by=world.commander, locked=True).locked
    assert Event.objects.filter(type="deployment.locked", expert__isnull=True).count() == 1  # commanders only
    with pytest.raises(NotAllowed):
        workflow.set_locked(d, by=world.finance, locked=False)
    with pytest.raises(InvalidInput):
        workflow.exclude(d, by=world.commander, reason=" ")
    exclusion = workflow.exclude(d, by=world.commander, reason="Works at that hospital")
    d.refresh_from_db()
    assert d.status == Status.CANCELLED and "Works at that hospital" in d.reason
    assert (exclusion.request_id, exclusion.expert_id) == (world.request.pk, world.alice.pk)
    with pytest.raises(IllegalTransition):
        workflow.set_locked(d, by=world.commander, locked=True)


def test_the_board_previews_runs_excludes_and_offers(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    near, far = nurse(world, "near@example.org"), nurse(world, "far@example.org", latitude=47.9)
    client.force_login(world.commander)
    preview = client.post(board(world), {"action": "preview", "radius_km": "100"})
    assert "Would propose <strong>2</strong>" in preview.content.decode()
    assert not Deployment.objects.exists()  # a preview writes nothing

    with django_capture_on_commit_callbacks(execute=True):  # the run is a job, started on commit
        client.post(board(world), {"action": "run"})
    proposals = {d.expert_id: d for d in Deployment.objects.filter(status=Status.PROPOSED)}
    assert set(proposals) == {near.pk, far.pk}
    page = client.get(board(world)).content.decode()
    assert "Proposals (2)" in page and proposals[near.pk].why in page

    client.post(board(world), {"action": "exclude", "deployment": proposals[far.pk].pk, "reason": "Conflict"})
    assert Exclusion.objects.filter(expert=far).exists()
    with django_capture_on_commit_callbacks(execute=True):  # the excluded one is not proposed again
        client.post(board(world), {"action": "run"})
    assert not Deployment.objects.filter(expert=far, status=Status.PROPOSED).exists()

    mine = Deployment.objects.get(expert=near, status=Status.PROPOSED)
    sent = client.post(board(world), {"action": "offer", "deployment": [mine.pk]}, follow=True)
    assert "1 offer(s) sent" in sent.content.decode()
    mine.refresh_from_db()
    assert mine.status == Status.OFFERED


def test_a_bad_radius_is_shown_next_to_its_field(world: World, client: Client) -> None:
    client.force_login(world.commander)
    page = client.post(board(world), {"action": "preview", "radius_km": "-5"}).content.decode()
    assert 'id="radius_km-error"' in page and "between 1 and 20,000" in page


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "outsider", "alice_user"])
def test_the_board_is_for_the_incidents_commanders(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(board(world)).status_code == 404
    assert client.post(board(world), {"action": "run"}).status_code == 404


def test_the_board_filters_and_pages_its_proposals_and_an_action_keeps_the_view(
    world: World, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("incidents.views.PROPOSALS_PER_PAGE", 1)
    other = factories.RoleRequestFactory(
        facility=factories.FacilityFactory(incident=world.incident, code="ZZ-9")
    )
    alice = workflow.propose(world.request, world.alice, by=world.commander)
    workflow.propose(other, world.bob, by=world.commander)
    client.force_login(world.commander)
    page = client.get(board(world)).content.decode()
    assert "Proposals (2)" in page and "Page 1 of 2" in page and 'label for="id_search"' in page
    only_bob = client.get(board(world), {"facility": other.facility_id}).content.decode()
    assert "Proposals (1)" in only_bob and world.bob.full_name in only_bob
    found = client.get(board(world), {"search": "alice"}).content.decode()
    assert "Proposals (1)" in found and f"proposal-{alice.pk}" in found
    locked = client.post(f"{board(world)}?search=alice", {"action": "lock", "deployment": alice.pk})
    assert locked.status_code == 302 and locked["Location"].endswith("?search=alice")
