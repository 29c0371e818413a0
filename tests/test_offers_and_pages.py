"""Offers by email with one-tap links, a responder's own page and calendar, the home page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail, signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import offers, workflow
from incidents.models import Deployment, Event
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def offer_to(world: World, expert: Any, capture: Any) -> Deployment:
    world.request.facility.reporting_instructions = "Report to the Hospital Command Center, lobby B."
    world.request.facility.save()
    with capture(execute=True):
        return workflow.offer(workflow.propose(world.request, expert, by=world.commander), by=world.commander)


def link(d: Deployment) -> str:
    return reverse("offer-answer", args=[offers.answer_token(d)])


# --- the email --------------------------------------------------------------------------------------


def test_an_offer_emails_the_responder_everything_they_need(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    d = offer_to(world, world.alice, django_capture_on_commit_callbacks)
    (message,) = mail.outbox
    assert message.to == [world.alice.email]
    assert world.incident.number in message.subject and world.request.facility.name in message.subject
    body = message.body
    world.incident.refresh_from_db()
    local = d.offer_expires_at.astimezone(world.incident.tz)
    assert f"{local:%H:%M} {local.tzname()}" in body  # the deadline as the incident reads it
    for expected in (
        "Registered Nurse",
        world.request.facility.name,
        "Hospital Command Center, lobby B",
        "km from home",
        link(d),
    ):
        assert expected in body, expected


def test_no_email_when_the_offer_is_rolled_back(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    from django.db import transaction

    d = workflow.propose(world.request, world.alice, by=world.commander)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        workflow.offer(d, by=world.commander)
        raise RuntimeError("later step failed")
    assert mail.outbox == []


# --- the link -----------------------------------------------------------------------------------------


def test_the_link_shows_the_offer_and_only_a_post_answers(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    d = offer_to(world, world.alice, django_capture_on_commit_callbacks)
    page = client.get(link(d))
    assert page.status_code == 200
    assert "Accept this deployment" in page.content.decode()
    d.refresh_from_db()
    assert d.status == Status.OFFERED  # looking is not answering
    answered = client.post(link(d), {"answer": "accept"})
    assert answered.status_code == 200 and "You accepted" in answered.content.decode()
    d.refresh_from_db()
    assert d.status == Status.ACCEPTED
    event = Event.objects.filter(deployment=d).latest("id")
    assert (event.type, event.actor, event.data["via"], event.data["on_behalf"]) == (
        "deployment.accepted",
        world.alice_user,
        "email link",
        False,
    )
    again = client.post(link(d), {"answer": "decline"})
    assert again.status_code == 409 and "already answered" in again.content.decode()


def test_the_link_works_for_someone_without_a_login(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    nobody = factories.ExpertFactory(email="no.login@example.org")
    d = offer_to(world, nobody, django_capture_on_commit_callbacks)
    response = client.post(link(d), {"answer": "decline", "reason": "Already working a double shift"})
    assert response.status_code == 200
    d.refresh_from_db()
    assert (d.status, d.reason) == (Status.DECLINED, "Already working a double shift")
    assert Event.objects.filter(deployment=d).latest("id").actor is None


def test_an_expired_link_says_so(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    d = offer_to(world, world.alice, django_capture_on_commit_callbacks)
    url = link(d)
    Deployment.objects.filter(pk=d.pk).update(offer_expires_at=timezone.now() - timedelta(minutes=1))
    d.refresh_from_db()
    response = client.post(reverse("offer-answer", args=[offers.answer_token(d)]), {"answer": "accept"})
    assert response.status_code == 409 and "expired" in response.content.decode()
    assert client.get(url).status_code == 409  # the first link names another deadline


def test_a_tampered_link_is_refused(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    d = offer_to(world, world.alice, django_capture_on_commit_callbacks)
    forged = signing.Signer(salt="not-ours").sign_object({"d": d.pk, "e": world.alice.pk, "x": 0})
    response = client.post(reverse("offer-answer", args=[forged]), {"answer": "accept"})
    assert response.status_code == 403 and "not valid" in response.content.decode()
    d.refresh_from_db()
    assert d.status == Status.OFFERED


def test_someone_else_signed_in_cannot_use_the_link(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    d = offer_to(world, world.alice, django_capture_on_commit_callbacks)
    client.force_login(world.bob_user)
    assert client.post(link(d), {"answer": "accept"}).status_code == 403
    d.refresh_from_db()
    assert d.status == Status.OFFERED


# --- My deployments -----------------------------------------------------------------------------


def test_my_deployments_shows_my_offer_and_lets_me_accept(world: World, client: Client) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.OFFERED)
    theirs = factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.OFFERED)
    client.force_login(world.alice_user)
    page = client.get(reverse("my-deployments")).content.decode()
    assert f"deployment-{d.pk}" in page and f"deployment-{theirs.pk}" not in page
    assert client.post(reverse("my-accept", args=[theirs.pk])).status_code == 404
    response = client.post(reverse("my-accept", args=[d.pk]), follow=True)
    assert "Accepted" in response.content.decode()
    d.refresh_from_db()
    assert d.status == Status.ACCEPTED


def test_a_lapsed_offer_is_expired_when_the_page_is_read(world: World, client: Client) -> None:
    d = factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.OFFERED,
        offer_expires_at=timezone.now() - timedelta(hours=1),
    )
    client.force_login(world.alice_user)
    client.get(reverse("my-deployments"))
    d.refresh_from_db()
    assert d.status == Status.EXPIRED


def test_my_deployments_is_for_signed_in_responders(world: World, client: Client) -> None:
    assert client.get(reverse("my-deployments")).status_code == 302
    client.force_login(world.commander)
    assert client.get(reverse("my-deployments")).status_code == 404


def test_the_calendar_feed_lists_my_deployments_only(world: World, client: Client) -> None:
    mine = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.ACCEPTED)
    client.force_login(world.alice_user)
    page = client.get(reverse("my-deployments"))
    feed_url = page.context["calendar_url"]
    client.logout()  # calendar apps have no session: the address is the credential
    response = client.get(feed_url.split("testserver")[-1])
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    text = response.content.decode()
    assert text.count("BEGIN:VEVENT") == 1 and f"UID:deployment-{mine.pk}@" in text
    assert f"DTSTART;VALUE=DATE:{mine.start:%Y%m%d}" in text
    assert f"DTEND;VALUE=DATE:{mine.end + timedelta(days=1):%Y%m%d}" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert client.get(reverse("my-calendar", args=["forged"])).status_code == 404


# --- home ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "where"),
    [("alice_user", "/me/"), ("superuser", "/admin/"), (None, "/login/")],
)
def test_home_sends_each_person_where_they_work(
    world: World, client: Client, who: str | None, where: str
) -> None:
    if who:
        client.force_login(getattr(world, who))
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith(where)


def test_home_lists_a_commanders_incidents(world: World, client: Client) -> None:
    client.force_login(world.commander)
    page = client.get("/").content.decode()
    assert world.incident.number in page and world.other_incident.number not in page


def test_login_page_signs_in(world: World, client: Client) -> None:
    assert client.get(reverse("login")).status_code == 200
    response = client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302


def test_the_pages_stylesheet_and_script_are_served(client: Client) -> None:
    from django.contrib.staticfiles import finders

    assert finders.find("deploy_tracker/site.css")
    assert finders.find("incidents/live.js")
