"""Confirming proposals: every proposal becomes an offer in one action (workflow and API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from deploy_tracker.errors import InvalidInput, NotAllowed
from incidents import workflow
from incidents.models import Deployment, Event
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def proposals(world: World, n: int) -> list[Deployment]:
    request = factories.RoleRequestFactory(facility=world.request.facility, quantity=n)
    return [workflow.propose(request, factories.ExpertFactory(), by=world.commander) for _ in range(n)]


def test_confirming_offers_every_proposal_with_a_deadline_an_event_and_an_email(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    drafts = proposals(world, 3)
    with django_capture_on_commit_callbacks(execute=True):
        done = workflow.offer_proposals(world.incident, by=world.commander)
    assert sorted(d.pk for d in done.offered) == sorted(d.pk for d in drafts)
    assert done.skipped == {}
    rows = Deployment.objects.filter(pk__in=[d.pk for d in drafts])
    world.incident.refresh_from_db()
    deadline = {d.offer_expires_at for d in rows}
    assert {d.status for d in rows} == {Status.OFFERED} and len(deadline) == 1
    (expires,) = deadline
    assert expires - next(iter({d.offered_at for d in rows})) == timedelta(
        hours=world.incident.offer_response_hours
    )
    offered = Event.objects.filter(type="deployment.offered").order_by("id")
    assert [e.deployment_id for e in offered] == sorted(d.pk for d in drafts)
    assert all(e.expert_id == e.deployment.expert_id for e in offered)  # each responder sees theirs
    assert all(e.actor_id == world.commander.pk and e.data["from"] == "proposed" for e in offered)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(d.expert.email for d in drafts)


def test_only_the_listed_proposals_go_out(world: World) -> None:
    first, second = proposals(world, 2)
    done = workflow.offer_proposals(world.incident, by=world.commander, deployments=[second.pk])
    assert [d.pk for d in done.offered] == [second.pk]
    first.refresh_from_db()
    assert first.status == Status.PROPOSED


def test_what_cannot_be_offered_is_skipped_with_the_reason_and_the_rest_goes_out(world: World) -> None:
    ok, gone_inactive, already, held, twin_a = proposals(world, 5)
    gone_inactive.expert.active = False
    gone_inactive.expert.save()
    workflow.offer(already, by=world.commander)
    # `held`'s expert already holds an overlapping deployment elsewhere in the incident.
    factories.DeploymentFactory(
        request=factories.RoleRequestFactory(facility=world.request.facility),
        expert=held.expert,
        status=Status.ACCEPTED,
    )
    # Two proposals for one person over the same days: the first goes out, the second cannot.
    twin_b = workflow.propose(
        factories.RoleRequestFactory(facility=world.request.facility), twin_a.expert, by=world.commander
    )
    elsewhere = factories.DeploymentFactory(
        request=factories.RoleRequestFactory(
            facility=factories.FacilityFactory(incident=world.other_incident)
        )
    )
    listed = [ok.pk, gone_inactive.pk, already.pk, held.pk, twin_a.pk, twin_b.pk, elsewhere.pk]
    done = workflow.offer_proposals(world.incident, by=world.commander, deployments=listed)
    assert sorted(d.pk for d in done.offered) == sorted([ok.pk, twin_a.pk])
    assert set(done.skipped) == {gone_inactive.pk, already.pk, held.pk, twin_b.pk, elsewhere.pk}
    assert "no longer active" in done.skipped[gone_inactive.pk]
    assert "is offered; only proposals" in done.skipped[already.pk]
    assert "already holds deployment" in done.skipped[held.pk]
    assert f"already holds deployment #{twin_a.pk}" in done.skipped[twin_b.pk]
    assert "not in incident WA-2026-01" in done.skipped[elsewhere.pk]
    elsewhere.refresh_from_db()
    assert elsewhere.status == Status.PROPOSED


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "alice_user"])
def test_only_the_incidents_commanders_confirm(world: World, who: str) -> None:
    (draft,) = proposals(world, 1)
    with pytest.raises(NotAllowed):
        workflow.offer_proposals(world.incident, by=getattr(world, who))
    draft.refresh_from_db()
    assert draft.status == Status.PROPOSED


def test_a_deadline_in_the_past_is_refused_and_nothing_moves(world: World) -> None:
    (draft,) = proposals(world, 1)
    with pytest.raises(InvalidInput) as refused:
        workflow.offer_proposals(
            world.incident, by=world.commander, expires_at=timezone.now() - timedelta(minutes=5)
        )
    assert refused.value.field == "expires_at"
    draft.refresh_from_db()
    assert draft.status == Status.PROPOSED and not Event.objects.filter(type="deployment.offered").exists()


def test_confirming_costs_the_same_queries_for_5_or_50_proposals(world: World) -> None:
    def queries_to_confirm(n: int) -> int:
        drafts = proposals(world, n)
        with CaptureQueriesContext(connection) as queries:
            done = workflow.offer_proposals(
                world.incident, by=world.commander, deployments=[d.pk for d in drafts]
            )
        assert len(done.offered) == n
        return len(queries)

    assert queries_to_confirm(5) == queries_to_confirm(50)


# --- the API --------------------------------------------------------------------------------------


def url(world: World) -> str:
    return reverse("api-incident-offers", args=[world.incident.pk])


def client_for(user: object) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)  # type: ignore[arg-type]
    return client


def test_the_api_confirms_and_says_what_was_skipped(world: World) -> None:
    first, second = proposals(world, 2)
    workflow.cancel(second, by=world.commander, reason="Changed plan")
    response = client_for(world.commander).post(
        url(world), {"deployments": [first.pk, second.pk]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["offered"] == [first.pk]
    assert body["skipped"] == [
        {
            "deployment": second.pk,
            "reason": f"Deployment #{second.pk} is cancelled; only proposals can be offered.",
        }
    ]


@pytest.mark.parametrize(
    ("who", "status"), [("finance", 403), ("viewer", 403), ("outsider", 404), ("alice_user", 404)]
)
def test_the_api_refuses_everyone_else(world: World, who: str, status: int) -> None:
    (draft,) = proposals(world, 1)
    response = client_for(getattr(world, who)).post(url(world), {}, format="json")
    assert response.status_code == status
    draft.refresh_from_db()
    assert draft.status == Status.PROPOSED


def test_the_api_names_the_bad_field(world: World) -> None:
    response = client_for(world.commander).post(url(world), {"deployments": ["x"]}, format="json")
    assert response.status_code == 400
    assert "deployments" in response.json()
