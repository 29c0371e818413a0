"""Schemathesis against the OpenAPI schema: every operation, as a commander and as a responder.

The schema is the one the app serves at /api/schema/; Schemathesis generates requests from it
(data the schema allows, and data it forbids), sends them through the app's own WSGI handler (no
server; the test database), and checks every answer: no 5xx, a documented status code, a
documented content type, documented headers, and a body that matches the schema.

Path ids, and the body and query fields that name records, are mostly swapped for ids of a small
fixture world (otherwise almost every call would be a 404 or a 400), so the calls reach the code
behind the doors. Each example runs in a savepoint rolled back after it: a workflow POST of one
example never changes what the next one finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from incidents import timesheets
from incidents.access import visible
from incidents.models import Deployment, Event, Expense, Facility, Incident, Job, RoleRequest, TimeEntry
from resources.models import Agency, Expert, Qualification
from tests import factories
from tests.conftest import World

Status = Deployment.Status

# Bounded, for CI: any examples the schema gives, then this many generated cases an operation and
# a role (Hypothesis may stop earlier when it runs out of distinct cases). About a minute in all.
MAX_EXAMPLES = 15

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP)
# Positive data (what the schema says a client may send) and negative data (what it says a client
# may not: wrong types, missing fields, out-of-range values): either way, no 5xx and a documented
# answer.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))
# The coverage phase enumerates every boundary of every parameter (hundreds of cases for a list
# with twenty filters): not bounded, so CI runs the schema's examples and the fuzzing phase.
schema.config.phases.update(phases=["examples", "fuzzing"])

PASSWORD = "correct horse battery staple"  # every user's, as tests/factories.py makes them

# Every operation runs, /api/auth/token/ and the file downloads of /api/reports/ too: a workbook
# or a CSV file has its status and content type checked (a body schema of `string`/`binary` has
# nothing more to check in it); their JSON errors are checked in full.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# The model behind the `{id}` of each collection under /api/.
COLLECTIONS: dict[str, type[Any]] = {
    "deployments": Deployment,
    "events": Event,
    "expenses": Expense,
    "experts": Expert,
    "facilities": Facility,
    "incidents": Incident,
    "jobs": Job,
    "qualifications": Qualification,
    "requests": RoleRequest,
    "time-entries": TimeEntry,
}


@dataclass
class Api:
    """Who calls, and the records the calls are aimed at."""

    user: User
    headers: dict[str, str]
    today: date
    ids: dict[str, list[int]] = field(default_factory=dict)
    codes: dict[str, list[str]] = field(default_factory=dict)
    usernames: list[str] = field(default_factory=list)

    def refresh(self) -> None:
        """Every record there is (other incidents' too: those answer 404), the caller's first.

        Hypothesis leans towards the first element of a list, so the records the caller may see
        lead: most calls get past the 404 to the code behind it.
        """
        self.ids = {name: self._values(model, "pk") for name, model in COLLECTIONS.items()}
        self.ids["agencies"] = self._values(Agency, "pk")
        self.codes = {
            "incident": self._values(Incident, "number"),
            "facility": self._values(Facility, "code"),
            "agency": self._values(Agency, "code"),
            "qualification": self._values(Qualification, "code"),
            "expert": self._values(Expert, "email"),
        }
        self.usernames = [
            self.user.username,
            *User.objects.exclude(pk=self.user.pk).values_list("username", flat=True),
        ]

    def _values(self, model: type[Any], name: str) -> list[Any]:
        seen = list(visible(self.user, model.objects.order_by("pk")).values_list(name, flat=True))
        return seen + list(
            model.objects.exclude(**{f"{name}__in": seen}).order_by("pk").values_list(name, flat=True)
        )


def _mostly(data: st.DataObject, real: st.SearchStrategy[Any], generated: Any) -> Any:
    """A real value four times in five, else what Schemathesis generated (shrinks to the real one)."""
    if data.draw(st.integers(0, 4), label="pick") < 4:
        return data.draw(real)
    return generated


def aim(api: Api, case: Case[Any], data: st.DataObject) -> None:
    """Point the generated case at records that exist (or, now and then, leave it as generated)."""
    segments = case.operation.path.strip("/").split("/")
    collection = segments[1]
    path = case.path_parameters
    if path is not None and "id" in path:
        assert collection in COLLECTIONS, f"{case.operation.label}: add its model to COLLECTIONS"
        path["id"] = _mostly(data, st.sampled_from(api.ids[collection]), path["id"])

    by_name: dict[str, st.SearchStrategy[Any]] = {
        "incident_id": st.sampled_from(api.ids["incidents"]),
        "facility_id": st.sampled_from(api.ids["facilities"]),
        "agency_id": st.sampled_from(api.ids["agencies"]),
        "expert_id": st.sampled_from(api.ids["experts"]),
        "qualification_id": st.sampled_from(api.ids["qualifications"]),
        "deployment": st.sampled_from(api.ids["deployments"]),
        "request": st.sampled_from(api.ids["requests"]),
        "deployments": st.lists(st.sampled_from(api.ids["deployments"]), max_size=4),
    }
    query = case.query
    if isinstance(query, dict):
        for name, value in query.items():
            if name in api.codes and isinstance(value, str):  # filters by code: incident=WA-2026-01
                query[name] = _mostly(data, st.sampled_from(api.codes[name]), value)
            elif name in by_name and not isinstance(value, list | str):
                query[name] = _mostly(data, by_name[name], value)

    body = case.body
    if isinstance(body, dict):
        records = {"time-entries": "time-entries", "expenses": "expenses"}.get(collection, "deployments")
        hours = st.decimals(0, 12, places=2).map(str)
        by_name |= {
            "expert": st.sampled_from(api.ids["experts"]),
            "facility": st.sampled_from(api.ids["facilities"]),
            "qualification": st.sampled_from(api.codes["qualification"]),
            "ids": st.lists(st.sampled_from(api.ids[records]), min_size=1, max_size=4),
            "username": st.sampled_from(api.usernames),
            "password": st.just(PASSWORD),
            "regular_hours": hours,
            "overtime_hours": hours,
            "amount": st.decimals(0, 500, places=2).map(str),
            "temperature_c": st.decimals(35, 39, places=1).map(str),
        }
        for name, value in body.items():
            if name in by_name:
                body[name] = _mostly(data, by_name[name], value)
        # A day of the deployment named, worked already (time and expenses are refused otherwise).
        named = body.get("deployment")
        if isinstance(named, int) and "date" in body:
            deployment = Deployment.objects.filter(pk=named).first()
            if deployment is not None and deployment.start <= api.today:
                worked = st.dates(deployment.start, min(deployment.end, api.today)).map(date.isoformat)
                body["date"] = _mostly(data, worked, body["date"])
        # Dates of a proposal (within its request's), or of a request (the coming weeks), in order.
        if "start" in body or "end" in body:
            asked = body.get("request")
            request = RoleRequest.objects.filter(pk=asked).first() if isinstance(asked, int) else None
            first, last = (
                (request.start, request.end) if request else (api.today, api.today + timedelta(days=60))
            )
            start = data.draw(st.dates(first, last), label="start")
            end = data.draw(st.dates(start, max(start, last)), label="end")
            for name, day in (("start", start), ("end", end)):
                if name in body:
                    body[name] = _mostly(data, st.just(day.isoformat()), body[name])


def _build(world: World) -> None:
    """Deployments in every state, hours, expenses, events and a job, on top of the `world`."""
    today = timezone.localdate(timezone=world.incident.tz)
    request = world.request
    factories.CredentialFactory(expert=world.alice, qualification=request.qualification)
    later = factories.RoleRequestFactory(
        facility=request.facility,
        qualification=request.qualification,
        start=today + timedelta(days=30),
        end=today + timedelta(days=40),
    )
    on_site = factories.DeploymentFactory(
        request=request,
        expert=world.alice,
        status=Status.ON_SITE,
        start=today - timedelta(days=3),
        end=today + timedelta(days=5),
    )
    timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=8)
    approved = timesheets.log_time(
        on_site, by=world.alice_user, day=on_site.start + timedelta(days=1), regular_hours=9
    )
    timesheets.review([approved], by=world.finance, approve=True)
    timesheets.add_expense(on_site, by=world.alice_user, day=on_site.start, category="mileage")
    timesheets.add_expense(on_site, by=world.alice_user, day=on_site.start, category="lodging", amount="80")
    factories.DeploymentFactory(
        request=later,
        expert=world.alice,
        status=Status.OFFERED,
        offer_expires_at=timezone.now() + timedelta(hours=24),
    )
    factories.DeploymentFactory(request=later, expert=world.alice, status=Status.DECLINED)
    factories.DeploymentFactory(request=request, expert=world.bob, status=Status.ACCEPTED)
    for state in (Status.PROPOSED, Status.OFFERED, Status.RELEASED, Status.CANCELLED, Status.EXPIRED):
        factories.DeploymentFactory(request=request, expert=factories.ExpertFactory(), status=state)
    elsewhere = factories.RoleRequestFactory(
        facility=factories.FacilityFactory(incident=world.other_incident)
    )
    factories.DeploymentFactory(request=elsewhere, status=Status.ON_SITE)
    Job.objects.create(incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander)


@pytest.fixture(params=["commander", "responder"])
def api(request: pytest.FixtureRequest, world: World) -> Iterator[Api]:
    _build(world)
    user = world.commander if request.param == "commander" else world.alice_user
    token = Token.objects.create(user=user)
    today = timezone.localdate(timezone=world.incident.tz)
    caller = Api(user=user, headers={"Authorization": f"Token {token.key}"}, today=today)
    caller.refresh()
    # A real WSGI handler closes the database connection as each request starts and ends; here
    # that would close the test's transaction under it. Django's test client unhooks it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield caller
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # One world per operation and role, shared by its examples (each rolled back).
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api(case: Case[Any], data: st.DataObject, api: Api) -> None:
    aim(api, case, data)
    with transaction.atomic():
        case.call_and_validate(headers=api.headers, checks=CHECKS)
        transaction.set_rollback(True)
