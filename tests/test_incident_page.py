"""The incident picture: fill status and alerts for the incident's members, in a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import workflow
from incidents.models import Deployment, Job
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
    # session, user, incident (scoped), newest event, requests with counts, alerts, 2× role, jobs,
    # facilities (map), offers about to lapse, credentials running out
    with django_assert_max_num_queries(13):
        client.get(url)
    facility = world.request.facility
    for _ in range(25):
        request = factories.RoleRequestFactory(facility=facility)
        factories.DeploymentFactory(request=request, status=Status.ACCEPTED)
    for _ in range(5):
        Job.objects.create(incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)
    for _ in range(5):
        factories.DeploymentFactory(
            request=world.request,
            status=Status.OFFERED,
            offer_expires_at=timezone.now() + timedelta(hours=1),
        )
    with django_assert_max_num_queries(13):
        assert client.get(url).status_code == 200


# --- the watch list: trouble coming that is not an event yet ------------------------------------


def watch(world: World, client: Client) -> str:
    # A change that is no event (a credential edited) shows once the minute's fragment is stale.
    cache.clear()
    client.force_login(world.commander)
    fragment = client.get(reverse("incident-fill", args=[world.incident.pk])).content.decode()
    return fragment.split('id="watch"', 1)[1]


def test_an_offer_about_to_lapse_is_on_the_watch_list_until_answered(world: World, client: Client) -> None:
    soon = factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.OFFERED,
        offer_expires_at=timezone.now() + timedelta(hours=2),
    )
    factories.DeploymentFactory(  # two days to answer: nothing to chase yet
        request=world.request,
        expert=world.bob,
        status=Status.OFFERED,
        offer_expires_at=timezone.now() + timedelta(days=2),
    )
    listed = watch(world, client)
    assert "Offer to Alice" in listed and "Offer to Bob" not in listed
    assert "lapses" in listed and "unanswered" in listed
    workflow.accept(soon, by=world.alice_user)
    assert "Offer to Alice" not in watch(world, client)


def _credential(world: World, expires_on: object) -> None:
    factories.CredentialFactory(
        expert=world.alice,
        qualification=world.request.qualification,
        jurisdiction=world.request.facility.state,
        verified=True,
        expires_on=expires_on,
    )


@pytest.mark.parametrize(
    ("expires_in_days", "listed"),
    [(None, False), (30, False), (3, True)],
    ids=["never-expires", "valid-past-the-end", "expires-mid-deployment"],
)
def test_a_credential_running_out_mid_deployment_is_on_the_watch_list(
    world: World, client: Client, expires_in_days: int | None, listed: bool
) -> None:
    today = timezone.localdate()
    d = factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.ON_SITE,
        start=today,
        end=today + timedelta(days=10),
    )
    _credential(world, None if expires_in_days is None else today + timedelta(days=expires_in_days))
    text = watch(world, client)
    assert ("Alice" in text) is listed
    if listed:
        assert f"credential expires {(today + timedelta(days=3)):%b} " in text
        assert f"at {d.request.facility.code}" in text


def test_an_unverified_or_out_of_state_credential_does_not_cover_a_deployment(
    world: World, client: Client
) -> None:
    world.request.qualification.jurisdictional = True
    world.request.qualification.save()
    factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    other_state = "ZZ" if world.request.facility.state != "ZZ" else "YY"
    _credential(world, None)  # verified, from the facility's state: covered
    assert "Alice" not in watch(world, client)
    world.alice.credentials.update(jurisdiction=other_state)
    text = watch(world, client)
    assert "Alice" in text and f"no valid {world.request.qualification.code} credential from" in text
    world.alice.credentials.update(
        jurisdiction=world.request.facility.state, verified=False, verified_at=None
    )
    assert "Alice" in watch(world, client)


def test_released_and_cancelled_deployments_are_not_watched(world: World, client: Client) -> None:
    for status in (Status.RELEASED, Status.CANCELLED, Status.DECLINED):
        factories.DeploymentFactory(request=world.request, expert=world.alice, status=status)
    assert "Alice" not in watch(world, client)


# --- check-in at the door ------------------------------------------------------------------------


def arriving(world: World) -> Deployment:
    """Alice, accepted and due at the door today."""
    today = timezone.localdate(timezone=world.incident.tz)
    world.request.start = today
    world.request.save()
    return factories.DeploymentFactory(
        request=world.request, expert=world.alice, status=Status.ACCEPTED, start=today
    )


def test_the_screener_sees_who_is_due_and_checks_them_in(world: World, client: Client) -> None:
    d = arriving(world)
    client.force_login(world.commander)
    url = reverse("check-in", args=[world.incident.pk])
    assert f"arrival-{d.pk}" in client.get(url).content.decode()
    response = client.post(url, {"deployment": d.pk, "temperature_c": "36.7", "spo2": "98"}, follow=True)
    assert "passed screening and is on site" in response.content.decode()
    d.refresh_from_db()
    assert d.status == Status.ON_SITE


def test_a_failed_screening_sends_them_home_with_the_reasons(world: World, client: Client) -> None:
    d = arriving(world)
    client.force_login(world.commander)
    response = client.post(
        reverse("check-in", args=[world.incident.pk]),
        {"deployment": d.pk, "temperature_c": "37.0", "spo2": "97", "symptoms": ["cough"]},
        follow=True,
    )
    assert "did not pass" in response.content.decode() and "New cough" in response.content.decode()
    d.refresh_from_db()
    assert d.status == Status.CANCELLED


def test_an_implausible_reading_is_shown_next_to_its_field_and_nothing_is_written(
    world: World, client: Client
) -> None:
    from incidents.models import HealthScreening

    d = arriving(world)
    client.force_login(world.commander)
    response = client.post(
        reverse("check-in", args=[world.incident.pk]),
        {"deployment": d.pk, "temperature_c": "36.5", "spo2": "lots"},
    )
    assert response.status_code == 200
    assert f'id="error-{d.pk}-spo2"' in response.content.decode()
    assert not HealthScreening.objects.exists()
    d.refresh_from_db()
    assert d.status == Status.ACCEPTED


@pytest.mark.parametrize("who", ["finance", "viewer", "alice_user", "other_commander"])
def test_only_commanders_screen(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(reverse("check-in", args=[world.incident.pk])).status_code == 404


# --- the commander's actions: run matching, send the offers ---------------------------------------


@pytest.mark.django_db(transaction=True)  # the job starts when the request's work commits
def test_a_commander_runs_matching_then_sends_the_offers_from_the_page(world: World, client: Client) -> None:
    from datetime import timedelta

    from django.core import mail

    from incidents.models import Event

    near = factories.ExpertFactory(email="near@example.org", latitude=47.61, longitude=-122.33)
    factories.CredentialFactory(expert=near, qualification=world.request.qualification)
    factories.AvailabilityFactory(expert=near, end=world.request.end + timedelta(days=30))
    client.force_login(world.commander)
    page = client.get(reverse("incident", args=[world.incident.pk])).content.decode()
    assert "Run matching" in page and 'id="send-offers" disabled' in page  # nothing proposed yet

    ran = client.post(reverse("incident-match", args=[world.incident.pk]), follow=True)
    assert "Matching proposed 1 people" in ran.content.decode()
    (job,) = Job.objects.all()
    assert job.status == "done" and f'id="job-{job.pk}"' in ran.content.decode()
    assert 'id="send-offers" disabled' not in ran.content.decode()

    sent = client.post(reverse("incident-offers", args=[world.incident.pk]), follow=True)
    assert "1 offer(s) sent" in sent.content.decode()
    assert Deployment.objects.get(expert=near).status == Status.OFFERED
    assert [m.to for m in mail.outbox] == [["near@example.org"]]
    assert Event.objects.filter(type="deployment.offered").count() == 1


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_other_members_see_no_actions_and_cannot_post_them(world: World, client: Client, who: str) -> None:
    d = workflow.propose(world.request, world.alice, by=world.commander)
    client.force_login(getattr(world, who))
    page = client.get(reverse("incident", args=[world.incident.pk])).content.decode()
    assert "Run matching" not in page and "send-offers" not in page
    refused = client.post(reverse("incident-offers", args=[world.incident.pk]), follow=True)
    assert "Only a commander" in refused.content.decode()
    refused = client.post(reverse("incident-match", args=[world.incident.pk]), follow=True)
    assert "Only a commander" in refused.content.decode()
    d.refresh_from_db()
    assert d.status == Status.PROPOSED


@pytest.mark.parametrize("who", ["other_commander", "outsider"])
def test_strangers_cannot_post_the_actions(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.post(reverse("incident-offers", args=[world.incident.pk])).status_code == 404
    assert client.post(reverse("incident-match", args=[world.incident.pk])).status_code == 404


def test_the_map_data_colours_each_facility_by_fill(world: World, client: Client) -> None:
    import json

    from incidents import selectors

    today = timezone.localdate(timezone=world.incident.tz)
    world.request.start, world.request.end, world.request.quantity = today, today + timedelta(days=5), 2
    world.request.save()
    factories.DeploymentFactory(request=world.request, status=Status.ON_SITE, start=today)
    idle = factories.FacilityFactory(incident=world.incident, code="LTC-YAK-02")
    rows = list(selectors.request_fill(world.incident))
    points = {p["code"]: p for p in selectors.facility_points(world.incident, rows)}
    assert (points[world.request.facility.code]["state"], points[world.request.facility.code]["filled"]) == (
        "partial",
        1,
    )
    assert points[idle.code]["state"] == "idle"
    client.force_login(world.viewer)
    page = client.get(reverse("incident", args=[world.incident.pk])).content.decode()
    embedded = json.loads(
        page.split('<script id="map-points" type="application/json">')[1].split("</script>")[0]
    )
    assert {p["code"] for p in embedded} == {world.request.facility.code, idle.code}
    assert 'id="map"' in page and "leaflet/leaflet.js" in page


def test_the_fill_fragment_is_rendered_once_per_event_and_role(
    world: World, client: Client, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    url = reverse("incident-fill", args=[world.incident.pk])
    client.force_login(world.commander)
    first = client.get(url).content.decode()
    # Again, same role, nothing new: session, user, incident, role, newest event — no fill query.
    with django_assert_max_num_queries(5):
        assert client.get(url).content.decode() == first
    client.force_login(world.viewer)
    assert f"/requests/{world.request.pk}/" in first  # the commander's edit link
    assert f"/requests/{world.request.pk}/" not in client.get(url).content.decode()  # not the commander's
    factories.DeploymentFactory(request=world.request, status=Status.ON_SITE)
    workflow.cancel(
        factories.DeploymentFactory(request=world.request, status=Status.ACCEPTED),
        by=world.commander,
        reason="x",
    )
    client.force_login(world.commander)
    assert client.get(url).content.decode() != first  # a new event: a fresh render
