"""Matching end to end through the database: the adapter, the writes and the `match` command."""

from __future__ import annotations

import json
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from deploy_tracker.errors import NotAllowed
from incidents import workflow
from incidents.matching.loader import Options, run
from incidents.models import Deployment, Event, Exclusion, RoleRequest
from resources.models import Expert
from tests import factories
from tests.conftest import World

Status = Deployment.Status
TODAY = factories.START - timedelta(days=5)  # the requests of the world start in five days


def nurse(world: World, name: str, lat: float, lon: float = -122.33, **fields: object) -> Expert:
    """A verified WA RN living at (lat, lon), available around the world's dates."""
    expert = factories.ExpertFactory(
        email=f"{name}@example.org", first_name=name.title(), latitude=lat, longitude=lon, **fields
    )
    factories.CredentialFactory(expert=expert, qualification=world.request.qualification)
    factories.AvailabilityFactory(expert=expert)
    return expert


@pytest.fixture
def requests(world: World) -> dict[str, RoleRequest]:
    """Critical (the world's, 2 slots), high and normal requests at the same Seattle hospital."""
    facility = world.request.facility
    return {
        "critical": world.request,
        "high": factories.RoleRequestFactory(facility=facility, quantity=1, priority="high"),
        "normal": factories.RoleRequestFactory(facility=facility, quantity=1, priority="normal"),
    }


def proposals(doc: dict) -> set[tuple[int, str]]:
    return {(p["request"], p["expert"]) for p in doc["proposals"]}


def test_fills_critical_first_then_by_distance_and_explains(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    near, mid, far = nurse(world, "near", 47.61), nurse(world, "mid", 47.7), nurse(world, "far", 48.0)
    doc = run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    # Three nurses, four slots: both critical slots and the high one fill; normal stays open.
    assert doc["summary"]["filled"] == {"critical": 2, "high": 1, "normal": 0}
    assert doc["summary"]["open"] == {"critical": 0, "high": 0, "normal": 1}
    assert len(doc["proposals"]) == 3
    (row,) = [u for u in doc["unfilled"] if u["request"] == requests["normal"].pk]
    assert row["missing"] == 1
    assert row["reasons"]["taken_by_higher_priority"] == 3
    assert row["reasons"]["no_credential"] == Expert.objects.filter(active=True).count() - 3
    why = next(p["why"] for p in doc["proposals"] if p["expert"] == near.email)
    assert "Critical RN slot" in why or "High RN slot" in why
    assert "verified RN" in why and "km away" in why
    assert {p["expert"] for p in doc["proposals"]} == {near.email, mid.email, far.email}


def test_dry_run_writes_nothing(world: World, requests: dict[str, RoleRequest]) -> None:
    nurse(world, "near", 47.61)
    before = (Deployment.objects.count(), Event.objects.count())
    run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    assert (Deployment.objects.count(), Event.objects.count()) == before


def test_a_run_writes_proposals_and_the_next_replaces_the_unlocked_ones(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    nurse(world, "near", 47.61)
    nurse(world, "mid", 47.7)
    first = run(world.incident, by=world.commander, today=TODAY)
    made = Deployment.objects.filter(status=Status.PROPOSED)
    assert made.count() == len(first["proposals"]) == 2
    assert Event.objects.filter(type="deployment.proposed").count() == 2
    locked = made.first()
    assert locked is not None
    locked.locked = True
    locked.save()
    second = run(world.incident, by=world.commander, today=TODAY)
    # The lock stays and its expert is not proposed again; the other proposal was replaced.
    assert Deployment.objects.filter(pk=locked.pk, status=Status.PROPOSED).exists()
    assert locked.expert.email not in {p["expert"] for p in second["proposals"]}
    replaced = Deployment.objects.filter(status=Status.CANCELLED)
    assert replaced.count() == 1
    assert replaced.get().reason == "Replaced by a new matching run."
    assert Deployment.objects.filter(status=Status.PROPOSED).count() == 2
    assert Event.objects.filter(type="deployment.cancelled", deployment=replaced.get()).count() == 1


def test_declined_and_excluded_people_are_not_proposed_again(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    declined, excluded, free = (
        nurse(world, "declined", 47.61),
        nurse(world, "excluded", 47.62),
        nurse(world, "free", 48.1),
    )
    factories.DeploymentFactory(request=world.request, expert=declined, status=Status.DECLINED)
    Exclusion.objects.create(request=world.request, expert=excluded, created_by=world.commander)
    doc = run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    critical = {p["expert"] for p in doc["proposals"] if p["request"] == world.request.pk}
    assert critical == {free.email}
    (row,) = [u for u in doc["unfilled"] if u["request"] == world.request.pk]
    assert row["reasons"]["declined"] == 2


def test_people_already_held_and_slots_already_filled_count(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    busy = nurse(world, "busy", 47.61)
    nurse(world, "free", 47.7)
    factories.DeploymentFactory(request=world.request, expert=busy, status=Status.ACCEPTED)
    doc = run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    assert busy.email not in {p["expert"] for p in doc["proposals"]}
    # One critical slot was already filled by the accepted deployment; the run fills the other.
    assert doc["summary"]["filled"]["critical"] == 2


def test_what_if_wider_radius_and_unverified(world: World, requests: dict[str, RoleRequest]) -> None:
    nurse(world, "spokane", 47.66, -117.43, max_travel_km=1000)  # ~370 km from Seattle
    unverified = factories.ExpertFactory(email="new@example.org", latitude=47.6, longitude=-122.3)
    factories.CredentialFactory(
        expert=unverified, qualification=world.request.qualification, verified=False, verified_at=None
    )
    factories.AvailabilityFactory(expert=unverified)
    base = run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    wider = run(world.incident, by=world.commander, options=Options(dry_run=True, radius_km=500), today=TODAY)
    loose = run(
        world.incident,
        by=world.commander,
        options=Options(dry_run=True, include_unverified=True),
        today=TODAY,
    )
    assert sum(base["summary"]["filled"].values()) == 0
    assert sum(wider["summary"]["filled"].values()) == 1
    assert sum(loose["summary"]["filled"].values()) == 1
    reasons = next(u["reasons"] for u in base["unfilled"] if u["request"] == world.request.pk)
    assert reasons["too_far"] == 1 and reasons["unverified"] == 1
    # A what-if says what it gains against the plain run.
    assert "compared_to_plain" not in base["summary"]
    assert wider["summary"]["compared_to_plain"]["filled"] == {"critical": 1, "high": 0, "normal": 0}
    assert wider["summary"]["compared_to_plain"]["total_distance_km"] == wider["summary"]["total_distance_km"]


def test_ended_requests_are_history_and_running_ones_start_today(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    nurse(world, "near", 47.61)
    today = world.request.start + timedelta(days=3)  # the critical request is running
    requests["high"].start, requests["high"].end = today - timedelta(days=10), today - timedelta(days=1)
    requests["high"].save()
    doc = run(world.incident, by=world.commander, today=today)
    assert requests["high"].pk not in {p["request"] for p in doc["proposals"]} | {
        u["request"] for u in doc["unfilled"]
    }
    made = Deployment.objects.get(status=Status.PROPOSED, request=world.request)
    assert (made.start, made.end) == (today, world.request.end)


def test_a_request_longer_than_the_policy_is_reported_not_proposed(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    nurse(world, "near", 47.61)
    requests["high"].end = requests["high"].start + timedelta(days=20)
    requests["high"].save()
    doc = run(world.incident, by=world.commander, today=TODAY)
    (row,) = [u for u in doc["unfilled"] if u["request"] == requests["high"].pk]
    assert row["reasons"] == {"longer_than_policy": 1}


def test_credentials_expiring_soon_after_are_flagged(world: World, requests: dict[str, RoleRequest]) -> None:
    expert = nurse(world, "soon", 47.61)
    expert.credentials.update(expires_on=world.request.end + timedelta(days=5))
    doc = run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    why = next(p["why"] for p in doc["proposals"] if p["expert"] == expert.email)
    assert "expires 5 day(s) after the deployment ends" in why


@pytest.mark.parametrize("who", ["finance", "viewer", "other_commander", "alice_user"])
def test_only_commanders_run_matching(world: World, who: str) -> None:
    with pytest.raises(NotAllowed):
        run(world.incident, by=getattr(world, who), options=Options(dry_run=True), today=TODAY)


def test_loading_takes_the_same_few_queries_whatever_the_roster(
    world: World, requests: dict[str, RoleRequest], django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        nurse(world, f"n{i}", 47.6 + i / 100)
    # permission (1) + requests, filling, declined, excluded, experts, credentials,
    # availability, holds (8) + the savepoint and its release that our transaction becomes
    # inside the test's own (2)
    with django_assert_num_queries(11):
        run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)
    for i in range(40):
        nurse(world, f"m{i}", 47.0 + i / 50)
    with django_assert_num_queries(11):
        run(world.incident, by=world.commander, options=Options(dry_run=True), today=TODAY)


def test_the_accepted_workflow_still_applies_to_proposals_from_matching(
    world: World, requests: dict[str, RoleRequest]
) -> None:
    carol = factories.UserFactory(username="carol")
    nurse(world, "near", 47.61, user=carol)
    run(world.incident, by=world.commander, today=TODAY)
    made = Deployment.objects.get(status=Status.PROPOSED, expert__email="near@example.org")
    workflow.accept(workflow.offer(made, by=world.commander), by=carol)
    made.refresh_from_db()
    assert made.status == Status.ACCEPTED


# --- the command ---------------------------------------------------------------------------------


def test_command_prints_the_json_document(world: World, requests: dict[str, RoleRequest]) -> None:
    nurse(world, "near", 47.61)
    out = StringIO()
    call_command("match", world.incident.number, "--json", "--dry-run", stdout=out)
    doc = json.loads(out.getvalue())
    assert set(doc) == {"incident", "proposals", "unfilled", "summary"}
    assert set(doc["summary"]) >= {"filled", "open", "total_distance_km", "seconds"}
    assert set(doc["proposals"][0]) == {
        "request",
        "facility",
        "qualification",
        "priority",
        "expert",
        "distance_km",
        "why",
    }
    assert not Deployment.objects.exists()


def test_command_writes_and_summarises(world: World, requests: dict[str, RoleRequest]) -> None:
    nurse(world, "near", 47.61)
    out = StringIO()
    # The command judges "today" by the clock; the world's requests start in the future.
    call_command("match", world.incident.number, stdout=out)
    assert "proposed 1 deployment(s)" in out.getvalue()
    assert Deployment.objects.filter(status=Status.PROPOSED).count() == 1
    assert Event.objects.get(type="deployment.proposed").actor is None  # the command line


def test_command_exit_codes(world: World) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("match", "NO-SUCH-1", stdout=StringIO())
    assert caught.value.returncode == 2
    with pytest.raises(CommandError, match="more than 0"):
        call_command("match", world.incident.number, "--radius-km", "0", stdout=StringIO())


def test_the_demo_matches_cleanly(db: None) -> None:
    from fixtures.demo import load_demo

    load_demo()
    before = Deployment.objects.filter(status=Status.PROPOSED).count()
    out = StringIO()
    call_command("match", "WA-2026-01", "--json", stdout=out)
    doc = json.loads(out.getvalue())
    assert doc["proposals"], "the demo leaves open slots that somebody can fill"
    assert Deployment.objects.filter(status=Status.PROPOSED).count() == len(doc["proposals"]) + (
        before
        - Deployment.objects.filter(status=Status.CANCELLED, reason="Replaced by a new matching run.").count()
    )
    today = timezone.localdate()
    assert all(
        d.start >= today - timedelta(days=1)
        for d in Deployment.objects.filter(status=Status.PROPOSED, why__startswith="")
    )
    assert isinstance(date.today(), date)
