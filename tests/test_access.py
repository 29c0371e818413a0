"""The scoping selector: each persona sees exactly what is theirs to see."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from incidents.access import can_approve_costs, can_command, role_in, visible
from incidents.models import (
    Deployment,
    Event,
    Facility,
    HealthScreening,
    Incident,
    IncidentMembership,
    RoleRequest,
    TimeEntry,
)
from resources.models import Credential, Expert, Qualification
from tests import factories
from tests.conftest import World

Status = Deployment.Status


@pytest.fixture
def records(world: World) -> dict[str, Deployment]:
    """Alice's and Bob's deployments here, a proposal for Alice, and one in another incident."""
    elsewhere = factories.RoleRequestFactory(
        facility=factories.FacilityFactory(incident=world.other_incident)
    )
    made = {
        "alice": factories.DeploymentFactory(
            request=world.request, expert=world.alice, status=Status.ON_SITE
        ),
        "bob": factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.OFFERED),
        "alice_draft": factories.DeploymentFactory(
            request=factories.RoleRequestFactory(facility=world.request.facility), expert=world.alice
        ),
        "elsewhere": factories.DeploymentFactory(request=elsewhere, expert=factories.ExpertFactory()),
    }
    for d in made.values():
        Event.objects.create(
            incident=d.request.facility.incident,
            deployment=d,
            expert=d.expert if d.status != Status.PROPOSED else None,
            type="test.event",
            at=timezone.now(),
        )
        if d.status != Status.PROPOSED:  # hours are only ever logged once offered and on
            d.time_entries.create(date=d.start, regular_hours=8)
    return made


def pks(queryset: object) -> set[int]:
    return set(queryset.values_list("pk", flat=True))  # type: ignore[attr-defined]


@pytest.mark.parametrize("who", ["commander", "finance", "viewer"])
def test_members_see_their_incident_and_nothing_of_another(
    world: World, records: dict[str, Deployment], who: str
) -> None:
    user = getattr(world, who)
    assert pks(visible(user, Incident.objects.all())) == {world.incident.pk}
    here = {records[k].pk for k in ("alice", "bob", "alice_draft")}
    assert pks(visible(user, Deployment.objects.all())) == here
    assert pks(visible(user, Event.objects.all())) == set(
        Event.objects.filter(incident=world.incident).values_list("pk", flat=True)
    )
    assert records["elsewhere"].pk not in pks(visible(user, Deployment.objects.all()))
    assert pks(visible(user, Facility.objects.all())) == set(
        world.incident.facilities.values_list("pk", flat=True)
    )
    assert visible(user, RoleRequest.objects.all()).count() == 2
    assert visible(user, TimeEntry.objects.all()).count() == 2


def test_commander_of_another_incident_sees_only_that_one(
    world: World, records: dict[str, Deployment]
) -> None:
    assert pks(visible(world.other_commander, Deployment.objects.all())) == {records["elsewhere"].pk}
    assert pks(visible(world.other_commander, Incident.objects.all())) == {world.other_incident.pk}


def test_responder_sees_only_their_own_offered_and_later_deployments(
    world: World, records: dict[str, Deployment]
) -> None:
    # Alice's proposal is still the commander's draft; Bob's records are Bob's.
    assert pks(visible(world.alice_user, Deployment.objects.all())) == {records["alice"].pk}
    assert pks(visible(world.bob_user, Deployment.objects.all())) == {records["bob"].pk}
    assert pks(visible(world.alice_user, Event.objects.all())) == set(
        Event.objects.filter(deployment=records["alice"]).values_list("pk", flat=True)
    )
    assert pks(visible(world.alice_user, TimeEntry.objects.all())) == set(
        records["alice"].time_entries.values_list("pk", flat=True)
    )
    assert not visible(world.alice_user, Incident.objects.all()).exists()
    assert not visible(world.alice_user, RoleRequest.objects.all()).exists()
    assert not visible(world.alice_user, IncidentMembership.objects.all()).exists()


def test_roster_visibility(world: World, records: dict[str, Deployment]) -> None:
    everyone = Expert.objects.count()
    assert visible(world.commander, Expert.objects.all()).count() == everyone  # matching needs the roster
    assert pks(visible(world.finance, Expert.objects.all())) == {world.alice.pk, world.bob.pk}
    assert pks(visible(world.alice_user, Expert.objects.all())) == {world.alice.pk}
    factories.CredentialFactory(expert=world.alice)
    factories.CredentialFactory(expert=world.bob)
    assert set(visible(world.alice_user, Credential.objects.all()).values_list("expert", flat=True)) == {
        world.alice.pk
    }


def test_outsiders_and_anonymous_see_nothing(world: World, records: dict[str, Deployment]) -> None:
    for user in (world.outsider, AnonymousUser()):
        for model in (Incident, Deployment, Event, TimeEntry, Expert, Credential, HealthScreening):
            assert not visible(user, model.objects.all()).exists(), model.__name__


def test_inactive_users_see_nothing(world: World, records: dict[str, Deployment]) -> None:
    world.commander.is_active = False
    world.commander.save()
    assert not visible(world.commander, Deployment.objects.all()).exists()


def test_superuser_sees_everything(world: World, records: dict[str, Deployment]) -> None:
    assert visible(world.superuser, Deployment.objects.all()).count() == Deployment.objects.count()


def test_a_model_without_a_rule_is_refused_not_leaked(world: World) -> None:
    from django.contrib.auth.models import Group

    with pytest.raises(LookupError, match="No visibility rule for Group"):
        visible(world.commander, Group.objects.all())


def test_the_catalog_is_read_by_every_signed_in_user_and_no_one_else(world: World) -> None:
    from django.contrib.auth.models import AnonymousUser

    assert visible(world.alice_user, Qualification.objects.all()).count() == Qualification.objects.count() > 0
    assert not visible(AnonymousUser(), Qualification.objects.all()).exists()


def test_the_selector_is_one_query(
    world: World, records: dict[str, Deployment], django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    with django_assert_num_queries(1):  # the deployments, membership check as a subquery
        list(visible(world.finance, Deployment.objects.all()))


def test_role_helpers(world: World) -> None:
    assert role_in(world.finance, world.incident) == IncidentMembership.Role.FINANCE
    assert role_in(world.finance, world.other_incident) is None
    assert can_command(world.commander, world.incident)
    assert not can_command(world.commander, world.other_incident)
    assert not can_command(world.finance, world.incident)
    assert can_approve_costs(world.finance, world.incident)
    assert not can_approve_costs(world.viewer, world.incident)
    assert can_command(world.superuser, world.other_incident)
    assert not can_command(AnonymousUser(), world.incident)
