"""The OpenAPI schema: it generates cleanly, documents every answer, and real answers match it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient

from incidents import timesheets
from incidents.models import Deployment, Event
from tests import factories
from tests.conftest import World, offered

Status = Deployment.Status
MINE = "/api/auth/token/", "/api/reports/"  # documented by their own doors, not by this API's


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def test_the_schema_generates_and_validates_without_a_warning(tmp_path: Path) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")


def test_every_collection_and_action_of_the_contract_is_documented(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    for collection in (
        "incidents",
        "facilities",
        "requests",
        "experts",
        "qualifications",
        "deployments",
        "events",
        "time-entries",
        "expenses",
    ):
        assert "get" in paths[f"/api/{collection}/"], collection
        assert "get" in paths[f"/api/{collection}/{{id}}/"], collection
    for verb in ("offer", "accept", "decline", "check-in", "release", "cancel"):
        assert "post" in paths[f"/api/deployments/{{id}}/{verb}/"], verb
    for path in ("/api/me/deployments/", "/api/incidents/{id}/match/", "/api/incidents/{id}/offers/"):
        assert path in paths
    assert "post" in paths["/api/time-entries/review/"] and "post" in paths["/api/expenses/review/"]


def test_every_operation_documents_how_it_can_fail(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        if path.startswith(MINE):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            where = f"{method.upper()} {path}"
            assert "403" in codes, where  # not signed in, or not allowed
            if "{id}" in path:
                assert "404" in codes, where
            if method in ("post", "put", "patch"):
                assert "400" in codes, where
            if method == "get" and "{id}" not in path:
                assert {"400", "404"} <= codes, where  # a bad filter; a page past the end
                assert "page_size" in {p["name"] for p in operation["parameters"]}, where


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable` in JSON Schema terms, so jsonschema can check answers."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


class Checker:
    """Calls the API and checks each answer against what the schema documents for it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(
        self,
        user: User | None,
        method: str,
        template: str,
        status: int,
        body: dict[str, Any] | None = None,
        **ids: int,
    ) -> Response:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        path = template.format(**ids) if ids else template
        if method == "get":
            response: Response = client.get(path, body or {})
        else:
            response = getattr(client, method)(path, body or {}, format="json")
        assert response.status_code == status, (template, response.content)
        documented = self.spec["paths"][template][method]["responses"][str(status)]
        if "content" in documented:
            schema = documented["content"]["application/json"]["schema"]
            root = _json_schema({**schema, "components": self.spec["components"]})
            jsonschema.validate(response.json(), root)
        else:
            assert not response.content
        self.seen.add((method, template, status))
        return response


@pytest.mark.django_db
def test_real_answers_match_the_documented_shapes(world: World, spec: dict[str, Any]) -> None:
    check = Checker(spec)
    today = timezone.localdate(timezone=world.incident.tz)
    factories.CredentialFactory(expert=world.alice, qualification=world.request.qualification)
    on_site = factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.ON_SITE,
        start=today - timedelta(days=2),
        end=today + timedelta(days=5),
    )
    timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=8)
    timesheets.add_expense(on_site, by=world.alice_user, day=on_site.start, category="mileage")
    su, commander = world.superuser, world.commander

    for collection in (
        "incidents",
        "facilities",
        "requests",
        "experts",
        "qualifications",
        "deployments",
        "events",
        "time-entries",
        "expenses",
    ):
        page = check(su, "get", f"/api/{collection}/", 200).json()
        assert page["results"], collection
        first = page["results"][0]["id"]
        check(su, "get", f"/api/{collection}/{{id}}/", 200, id=first)
        check(
            world.outsider,
            "get",
            f"/api/{collection}/{{id}}/",
            404 if collection != "qualifications" else 200,
            id=first,
        )
        check(None, "get", f"/api/{collection}/", 403)
        check(su, "get", f"/api/{collection}/", 404, {"page": 99})
    check(su, "get", "/api/deployments/", 400, {"status": "lost"})
    check(world.alice_user, "get", "/api/me/deployments/", 200)

    # Workflow moves: each answer, and each way to be refused.
    draft = factories.DeploymentFactory(request=world.request, expert=world.bob)
    check(commander, "post", "/api/deployments/{id}/offer/", 400, {"expires_at": "soon"}, id=draft.pk)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    check(commander, "post", "/api/deployments/{id}/offer/", 400, {"expires_at": past}, id=draft.pk)
    check(world.viewer, "post", "/api/deployments/{id}/offer/", 403, id=draft.pk)
    check(world.other_commander, "post", "/api/deployments/{id}/offer/", 404, id=draft.pk)
    check(commander, "post", "/api/deployments/{id}/offer/", 200, id=draft.pk)
    check(commander, "post", "/api/deployments/{id}/offer/", 409, id=draft.pk)
    check(world.bob_user, "post", "/api/deployments/{id}/accept/", 200, id=draft.pk)
    fit = {"temperature_c": 36.9, "spo2": 97, "symptoms": ["headache"]}
    check(commander, "post", "/api/deployments/{id}/check-in/", 200, fit, id=draft.pk)
    check(commander, "post", "/api/deployments/{id}/release/", 409, id=on_site.pk)
    check(commander, "post", "/api/deployments/{id}/cancel/", 400, id=on_site.pk)
    declined = offered(world, expert=factories.ExpertFactory())
    check(commander, "post", "/api/deployments/{id}/decline/", 200, {"reason": "x"}, id=declined.pk)
    proposal = {"request": world.request.pk, "expert": world.bob.pk}
    check(commander, "post", "/api/deployments/", 201, proposal)
    check(commander, "post", "/api/deployments/", 409, proposal)

    # Requests.
    body = {"facility": world.request.facility.pk, "qualification": "RN", "quantity": 1}
    body |= {"start": "2027-01-04", "end": "2027-01-05"}
    created = check(commander, "post", "/api/requests/", 201, body).json()
    check(commander, "patch", "/api/requests/{id}/", 200, {"quantity": 2}, id=created["id"])
    check(world.viewer, "patch", "/api/requests/{id}/", 403, {"quantity": 2}, id=created["id"])
    check(commander, "delete", "/api/requests/{id}/", 409, id=world.request.pk)
    check(commander, "delete", "/api/requests/{id}/", 204, id=created["id"])

    # Time and money.
    hours = {"deployment": on_site.pk, "date": str(on_site.start + timedelta(days=1)), "regular_hours": 9}
    entry = check(world.alice_user, "post", "/api/time-entries/", 201, hours).json()
    check(
        world.alice_user, "post", "/api/time-entries/", 400, {**hours, "date": str(today + timedelta(days=3))}
    )
    check(world.finance, "post", "/api/time-entries/review/", 200, {"ids": [entry["id"]], "approve": True})
    check(world.viewer, "post", "/api/time-entries/review/", 403, {"ids": [entry["id"]], "approve": True})
    claim = {"deployment": on_site.pk, "date": str(on_site.start), "category": "lodging", "amount": "80"}
    expense = check(world.alice_user, "post", "/api/expenses/", 201, claim).json()
    check(world.finance, "post", "/api/expenses/review/", 400, {"ids": [expense["id"]], "approve": False})

    # The doors that came before this API.
    check(commander, "post", "/api/incidents/{id}/match/", 200, {"dry_run": True}, id=world.incident.pk)
    check(commander, "post", "/api/incidents/{id}/match/", 400, {"radius_km": -1}, id=world.incident.pk)
    check(world.viewer, "post", "/api/incidents/{id}/offers/", 403, id=world.incident.pk)
    check(commander, "post", "/api/incidents/{id}/offers/", 200, id=world.incident.pk)
    check(world.outsider, "get", "/api/jobs/{id}/", 404, id=1)

    assert Event.objects.exists() and len(check.seen) > 60


@pytest.mark.django_db
def test_the_schema_and_the_interactive_docs_are_served(world: World) -> None:
    client = APIClient()
    assert client.get("/api/schema/", {"format": "json"}).json()["info"]["title"] == "Deploy Tracker API"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.mark.django_db
def test_the_browsable_api_renders_its_pages_and_forms(world: World) -> None:
    deployment = offered(world)
    client = APIClient()
    client.force_authenticate(world.commander)
    for path in (
        "/api/requests/",
        f"/api/requests/{world.request.pk}/",
        "/api/deployments/",
        f"/api/deployments/{deployment.pk}/",
        "/api/time-entries/",
        "/api/experts/",
        "/api/me/deployments/",
    ):
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        assert b"<html" in response.content.lower()
    # A viewer reads the same page; the forms it may not use are simply not offered.
    client.force_authenticate(world.viewer)
    assert client.get(f"/api/requests/{world.request.pk}/", HTTP_ACCEPT="text/html").status_code == 200
    assert client.options(f"/api/requests/{world.request.pk}/").status_code == 200


@pytest.mark.django_db
def test_an_api_address_that_matches_nothing_answers_json(client: Any) -> None:
    response = client.get("/api/deployments/1.5/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert client.get("/no/such/page/").headers["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_wrong_password_for_a_token_is_a_400(world: Any, client: Any) -> None:
    response = client.post("/api/auth/token/", {"username": "commander", "password": "nope"})
    assert response.status_code == 400 and "non_field_errors" in response.json()
