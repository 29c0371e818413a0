"""POST /api/incidents/{id}/match/: who may call it, what it answers, how errors look."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from incidents.models import Deployment
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def url(world: World) -> str:
    return reverse("api-incident-match", args=[world.incident.pk])


@pytest.fixture
def nurse(world: World) -> None:
    expert = factories.ExpertFactory(email="near@example.org", latitude=47.61, longitude=-122.33)
    factories.CredentialFactory(expert=expert, qualification=world.request.qualification)
    factories.AvailabilityFactory(expert=expert, end=world.request.end + timedelta(days=30))


def client_for(user: object) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)  # type: ignore[arg-type]
    return client


def test_commander_runs_matching_and_gets_the_document(world: World, nurse: None) -> None:
    response = client_for(world.commander).post(url(world), {}, format="json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["incident"] == world.incident.number
    assert [p["expert"] for p in doc["proposals"]] == ["near@example.org"]
    assert Deployment.objects.filter(status="proposed").count() == 1


def test_dry_run_over_the_api_writes_nothing(world: World, nurse: None) -> None:
    response = client_for(world.commander).post(url(world), {"dry_run": True, "radius_km": 50}, format="json")
    assert response.status_code == 200
    assert response.json()["summary"]["proposed"] == 1
    assert not Deployment.objects.exists()


@pytest.mark.parametrize("who", ["finance", "viewer"])
def test_other_members_are_refused_with_the_reason(world: World, who: str) -> None:
    response = client_for(getattr(world, who)).post(url(world), {"dry_run": True}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "not_allowed"


@pytest.mark.parametrize("who", ["other_commander", "outsider", "alice_user"])
def test_strangers_cannot_even_tell_the_incident_exists(world: World, who: str) -> None:
    response = client_for(getattr(world, who)).post(url(world), {"dry_run": True}, format="json")
    assert response.status_code == 404


def test_anonymous_is_refused(world: World) -> None:
    assert APIClient().post(url(world), {}, format="json").status_code in (401, 403)


def test_bad_options_are_a_400_naming_the_field(world: World) -> None:
    response = client_for(world.commander).post(url(world), {"radius_km": -3}, format="json")
    assert response.status_code == 400
    assert "radius_km" in response.json()


def test_token_login_then_match(world: World, nurse: None) -> None:
    response = APIClient().post(
        reverse("api-token"),
        {"username": "commander", "password": "correct horse battery staple"},
        format="json",
    )
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=world.commander).key == token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post(url(world), {"dry_run": True}, format="json").status_code == 200


def test_the_schema_describes_the_operation(world: World) -> None:
    response = client_for(world.commander).get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/incidents/{id}/match/"]["post"]
    assert operation["operationId"] == "incidents_match"
