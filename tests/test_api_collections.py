"""The API's collections: who sees which rows, the filters, pagination and the query budgets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from incidents.models import Deployment, Event, Expense, Facility, Incident, RoleRequest, TimeEntry
from resources.models import Expert, Qualification
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status

PERSONAS = [
    "commander",
    "finance",
    "viewer",
    "other_commander",
    "outsider",
    "alice_user",
    "bob_user",
    "superuser",
]


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@dataclass
class Scene:
    """Two incidents' worth of rows, each with a name the expectations below use."""

    pks: dict[str, dict[str, int]]

    def names(self, collection: str, ids: set[int]) -> set[str]:
        by_pk = {pk: name for name, pk in self.pks[collection].items()}
        return {by_pk[pk] for pk in ids}


@pytest.fixture
def scene(world: World) -> Scene:
    """Here (WA-2026-01): Alice on site, Bob offered, a proposal for Alice on a second request.
    There (OR-2026-07): Carol on site. Dave is rostered and never deployed. Each deployment has
    an event (a proposal's is for the commanders only); the on-site ones have hours and an
    expense."""
    today = timezone.localdate()
    rn = world.request.qualification
    rt = factories.QualificationFactory(code="RT", name="Respiratory Therapist", kind="certification")
    here = world.request.facility
    world.other_incident.kind = Incident.Kind.WILDFIRE
    world.other_incident.start = date(2026, 6, 1)
    world.other_incident.status = Incident.Status.DEMOBILIZING
    world.other_incident.save()
    there = factories.FacilityFactory(
        incident=world.other_incident,
        code="LTC-PDX-01",
        name="Providence Portland",
        kind=Facility.Kind.LONG_TERM_CARE,
        state="OR",
        county="Multnomah",
    )
    second = factories.RoleRequestFactory(
        facility=here,
        qualification=rt,
        priority=RoleRequest.Priority.NORMAL,
        start=date(2027, 1, 4),
        end=date(2027, 1, 17),
    )
    there_request = factories.RoleRequestFactory(
        facility=there, qualification=rn, start=today - timedelta(days=2), end=today + timedelta(days=8)
    )
    carol = factories.ExpertFactory(email="carol@example.org", first_name="Carol", last_name="Ng")
    dave = factories.ExpertFactory(email="dave@example.org", first_name="Dave", active=False)
    factories.CredentialFactory(expert=world.alice, qualification=rn)
    factories.CredentialFactory(expert=world.bob, qualification=rn, verified=False, verified_at=None)
    factories.CredentialFactory(expert=carol, qualification=rt)
    factories.AvailabilityFactory(expert=carol, start=date(2027, 3, 1), end=date(2027, 3, 31))
    deployments = {
        "alice": factories.DeploymentFactory(
            request=world.request,
            expert=world.alice,
            status=Status.ON_SITE,
            start=today - timedelta(days=3),
            end=today + timedelta(days=10),
        ),
        "bob": factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.OFFERED),
        "alice_draft": factories.DeploymentFactory(request=second, expert=world.alice),
        "there": factories.DeploymentFactory(request=there_request, expert=carol, status=Status.ON_SITE),
    }
    events, time, expenses = {}, {}, {}
    for name, d in deployments.items():
        events[name] = Event.objects.create(
            incident=d.request.facility.incident,
            deployment=d,
            expert=None if d.status == Status.PROPOSED else d.expert,
            type="deployment.proposed" if d.status == Status.PROPOSED else f"deployment.{d.status}",
            at=timezone.now() - timedelta(hours=len(events)),
        )
        if d.status == Status.ON_SITE:
            time[name] = TimeEntry.objects.create(deployment=d, date=d.start, regular_hours=8)
            expenses[name] = Expense.objects.create(
                deployment=d,
                date=d.start,
                category=Expense.Category.LODGING if name == "alice" else Expense.Category.PER_DIEM,
                amount=Decimal("120.00"),
            )
    return Scene(
        pks={
            "incidents": {"here": world.incident.pk, "there": world.other_incident.pk},
            "facilities": {"here": here.pk, "there": there.pk},
            "requests": {"here": world.request.pk, "second": second.pk, "there": there_request.pk},
            "deployments": {name: d.pk for name, d in deployments.items()},
            "events": {name: e.pk for name, e in events.items()},
            "time-entries": {name: t.pk for name, t in time.items()},
            "expenses": {name: e.pk for name, e in expenses.items()},
            "experts": {"alice": world.alice.pk, "bob": world.bob.pk, "carol": carol.pk, "dave": dave.pk},
            "qualifications": {"rn": rn.pk, "rt": rt.pk},
        }
    )


def url(collection: str) -> str:
    return f"/api/{collection}/"


def listed(user: User, collection: str, scene: Scene, **params: Any) -> set[str]:
    response = client_for(user).get(url(collection), {"page_size": 500, **params})
    assert response.status_code == 200, response.content
    return scene.names(collection, {row["id"] for row in response.json()["results"]})


# --- Who sees what ----------------------------------------------------------------------------------

EVERYTHING = {
    "incidents": {"here", "there"},
    "facilities": {"here", "there"},
    "requests": {"here", "second", "there"},
    "deployments": {"alice", "bob", "alice_draft", "there"},
    "events": {"alice", "bob", "alice_draft", "there"},
    "time-entries": {"alice", "there"},
    "expenses": {"alice", "there"},
    "experts": {"alice", "bob", "carol", "dave"},
    "qualifications": {"rn", "rt"},
}
HERE = {
    "incidents": {"here"},
    "facilities": {"here"},
    "requests": {"here", "second"},
    "deployments": {"alice", "bob", "alice_draft"},
    "events": {"alice", "bob", "alice_draft"},
    "time-entries": {"alice"},
    "expenses": {"alice"},
    # Finance officers and viewers see the people deployed in their incidents ...
    "experts": {"alice", "bob"},
    "qualifications": {"rn", "rt"},
}
NOTHING: dict[str, set[str]] = {name: set() for name in EVERYTHING} | {"qualifications": {"rn", "rt"}}
SEES = {
    # ... commanders the whole roster, which they match against.
    "commander": HERE | {"experts": EVERYTHING["experts"]},
    "finance": HERE,
    "viewer": HERE,
    "other_commander": {name: {"there"} for name in EVERYTHING}
    | {"requests": {"there"}, "experts": EVERYTHING["experts"], "qualifications": {"rn", "rt"}},
    "outsider": NOTHING,
    # A responder: their own record, their deployments from the offer on and what hangs off them.
    "alice_user": NOTHING
    | {"deployments": {"alice"}, "events": {"alice"}, "time-entries": {"alice"}, "expenses": {"alice"}}
    | {"experts": {"alice"}},
    "bob_user": NOTHING | {"deployments": {"bob"}, "events": {"bob"}, "experts": {"bob"}},
    "superuser": EVERYTHING,
}


@pytest.mark.parametrize("who", PERSONAS)
def test_each_persona_sees_exactly_the_rows_access_allows(world: World, scene: Scene, who: str) -> None:
    seen = {collection: listed(getattr(world, who), collection, scene) for collection in EVERYTHING}
    assert seen == SEES[who]


@pytest.mark.parametrize("collection", [c for c in EVERYTHING if c != "qualifications"])
def test_a_record_outside_the_scope_is_not_found_rather_than_forbidden(
    world: World, scene: Scene, collection: str
) -> None:
    for name, pk in scene.pks[collection].items():
        response = client_for(world.outsider).get(f"{url(collection)}{pk}/")
        assert response.status_code == 404, name
        assert "detail" in response.json()
        if name in SEES["superuser"][collection]:
            assert client_for(world.superuser).get(f"{url(collection)}{pk}/").status_code == 200


def test_a_member_reads_one_record_with_its_human_bits(world: World, scene: Scene) -> None:
    pk = scene.pks["deployments"]["alice"]
    row = client_for(world.viewer).get(f"/api/deployments/{pk}/").json()
    assert row["status"] == "on_site"
    assert row["incident"] == world.incident.pk
    assert row["facility_code"] == world.request.facility.code
    assert row["qualification"] == "RN"
    assert (row["expert_name"], row["expert_email"]) == ("Alice Lee", "alice@example.org")
    assert row["agency"] == world.alice.agency.code
    request = client_for(world.viewer).get(f"/api/requests/{world.request.pk}/").json()
    assert (request["qualification"], request["filled"], request["quantity"]) == ("RN", 2, 2)
    incident = client_for(world.finance).get(f"/api/incidents/{world.incident.pk}/").json()
    assert (incident["number"], incident["role"], incident["mileage_rate"]) == (
        "WA-2026-01",
        "finance",
        "0.435",
    )
    assert client_for(world.superuser).get(f"/api/incidents/{world.incident.pk}/").json()["role"] is None


@pytest.mark.parametrize("collection", [*EVERYTHING, "me/deployments"])
def test_anonymous_gets_nothing(scene: Scene, collection: str) -> None:
    response = APIClient().get(url(collection))
    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/requests/"),
        ("patch", "/api/requests/{request}/"),
        ("put", "/api/requests/{request}/"),
        ("delete", "/api/requests/{request}/"),
        ("post", "/api/deployments/"),
        ("post", "/api/time-entries/"),
        ("post", "/api/time-entries/review/"),
        ("post", "/api/expenses/"),
        ("post", "/api/expenses/review/"),
    ],
)
def test_anonymous_cannot_write(world: World, method: str, path: str) -> None:
    response = getattr(APIClient(), method)(path.format(request=world.request.pk), {}, format="json")
    assert response.status_code == 403 and "detail" in response.json()
    assert RoleRequest.objects.filter(pk=world.request.pk).exists()


@pytest.mark.parametrize("collection", list(EVERYTHING))
def test_collections_are_read_only_where_the_contract_says_so(world: World, collection: str) -> None:
    writable = {"requests": {"post"}, "deployments": {"post"}, "time-entries": {"post"}, "expenses": {"post"}}
    client = client_for(world.superuser)
    for method in ("post", "put", "patch", "delete"):
        path = url(collection) if method == "post" else f"{url(collection)}1/"
        status = getattr(client, method)(path, {}, format="json").status_code
        allowed = method in writable.get(collection, set()) or (collection == "requests")
        assert (status == 405) is not allowed, (method, collection, status)


def test_a_token_signs_in_as_well_as_a_session(world: World, scene: Scene) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=world.viewer).key}")
    assert client.get("/api/deployments/").json()["count"] == 3
    client = APIClient()
    client.login(username="viewer", password="correct horse battery staple")
    assert client.get("/api/deployments/").json()["count"] == 3


# --- Filters ----------------------------------------------------------------------------------------

FILTERS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("incidents", {"number": "wa-2026-01"}, {"here"}),
    ("incidents", {"status": ["active"]}, {"here"}),
    ("incidents", {"status": ["active", "demobilizing"]}, {"here", "there"}),
    ("incidents", {"kind": "wildfire"}, {"there"}),
    ("incidents", {"start_after": "2026-11-01"}, {"here"}),
    ("incidents", {"start_before": "2026-06-01"}, {"there"}),
    ("incidents", {"search": "fire or"}, {"there"}),
    ("facilities", {"incident": "OR-2026-07"}, {"there"}),
    ("facilities", {"incident_id": "{here}"}, {"here"}),
    ("facilities", {"state": "or"}, {"there"}),
    ("facilities", {"county": "king"}, {"here"}),
    ("facilities", {"kind": ["long_term_care", "testing_site"]}, {"there"}),
    ("facilities", {"code": "ltc-pdx-01"}, {"there"}),
    ("facilities", {"search": "portland"}, {"there"}),
    ("requests", {"incident": "WA-2026-01"}, {"here", "second"}),
    ("requests", {"facility": "LTC-PDX-01"}, {"there"}),
    ("requests", {"qualification": "rt"}, {"second"}),
    ("requests", {"priority": "normal"}, {"second"}),
    ("requests", {"start_after": "2027-01-01"}, {"second"}),
    ("requests", {"end_before": "2026-12-31"}, {"here", "there"}),
    ("requests", {"open": "true"}, {"second", "there"}),
    ("requests", {"open": "false"}, {"here"}),
    ("requests", {"search": "respiratory"}, {"second"}),
    ("deployments", {"status": ["offered", "on_site"]}, {"alice", "bob", "there"}),
    ("deployments", {"status": "proposed"}, {"alice_draft"}),
    ("deployments", {"incident": "WA-2026-01", "expert": "ALICE@example.org"}, {"alice", "alice_draft"}),
    ("deployments", {"qualification": "RT"}, {"alice_draft"}),
    ("deployments", {"priority": "critical", "facility": "LTC-PDX-01"}, {"there"}),
    ("deployments", {"search": "carol ng"}, {"there"}),
    ("deployments", {"search": "ltc-pdx"}, {"there"}),
    ("deployments", {"start_after": "2027-01-01"}, {"alice_draft"}),
    ("deployments", {"end_before": "2026-12-31"}, {"alice", "bob", "there"}),
    ("events", {"type": ["deployment.offered", "deployment.proposed"]}, {"bob", "alice_draft"}),
    ("events", {"incident": "OR-2026-07"}, {"there"}),
    ("time-entries", {"incident": "WA-2026-01", "status": "submitted"}, {"alice"}),
    ("time-entries", {"status": "approved"}, set()),
    ("time-entries", {"facility": "LTC-PDX-01"}, {"there"}),
    ("time-entries", {"search": "alice"}, {"alice"}),
    ("expenses", {"category": ["per_diem", "mileage"]}, {"there"}),
    ("expenses", {"incident_id": "{there}"}, {"there"}),
    ("experts", {"qualification": "rn"}, {"alice", "bob"}),
    ("experts", {"qualification": "rn", "verified": "true"}, {"alice"}),
    ("experts", {"verified": "true"}, {"alice", "carol"}),
    ("experts", {"verified": "false"}, {"alice", "bob", "carol", "dave"}),
    ("experts", {"active": "false"}, {"dave"}),
    ("experts", {"available_on": "2027-03-15"}, {"carol"}),
    ("experts", {"search": "example.org dav"}, {"dave"}),
    ("qualifications", {"kind": "certification"}, {"rt"}),
    ("qualifications", {"code": "rn"}, {"rn"}),
    ("qualifications", {"jurisdictional": "true"}, {"rn", "rt"}),
    ("qualifications", {"search": "respiratory"}, {"rt"}),
]


@pytest.mark.parametrize("collection", list(EVERYTHING))
def test_filters_narrow_the_collection(world: World, scene: Scene, collection: str) -> None:
    ids = {"here": world.incident.pk, "there": world.other_incident.pk}
    cases = [(params, expected) for name, params, expected in FILTERS if name == collection]
    assert cases
    for params, expected in cases:
        query = {k: v.format(**ids) if isinstance(v, str) else v for k, v in params.items()}
        assert (query, listed(world.superuser, collection, scene, **query)) == (query, expected)


def test_id_filters_name_related_records_by_id(world: World, scene: Scene) -> None:
    deployments = scene.pks["deployments"]
    su = world.superuser
    assert listed(su, "deployments", scene, request=world.request.pk) == {"alice", "bob"}
    assert listed(su, "deployments", scene, expert_id=world.bob.pk) == {"bob"}
    assert listed(su, "deployments", scene, agency_id=world.bob.agency_id) == {"bob"}
    assert listed(su, "deployments", scene, agency=world.bob.agency.code) == {"bob"}
    assert listed(su, "deployments", scene, facility_id=scene.pks["facilities"]["there"]) == {"there"}
    rt = scene.pks["qualifications"]["rt"]
    assert listed(su, "deployments", scene, qualification_id=rt) == {"alice_draft"}
    assert listed(su, "requests", scene, qualification_id=rt, incident_id=world.incident.pk) == {"second"}
    assert listed(su, "experts", scene, qualification_id=rt) == {"carol"}
    assert listed(su, "experts", scene, agency=world.alice.agency.code) == {"alice"}
    assert listed(su, "events", scene, deployment=deployments["bob"]) == {"bob"}
    assert listed(su, "time-entries", scene, deployment=deployments["there"]) == {"there"}
    assert listed(su, "expenses", scene, expert_id=world.alice.pk, agency_id=world.alice.agency_id) == {
        "alice"
    }


def test_events_after_an_id_or_in_a_time_range(world: World, scene: Scene) -> None:
    events = scene.pks["events"]
    assert listed(world.superuser, "events", scene, since=events["bob"]) == {"alice_draft", "there"}
    at = {e.pk: e.at for e in Event.objects.all()}
    middle = at[events["bob"]].isoformat()
    assert listed(world.superuser, "events", scene, at_before=middle) == {"bob", "alice_draft", "there"}
    assert listed(world.superuser, "events", scene, at_after=middle) == {"alice", "bob"}


def test_records_filter_by_day(world: World, scene: Scene) -> None:
    day = TimeEntry.objects.get(pk=scene.pks["time-entries"]["alice"]).date
    assert listed(world.superuser, "time-entries", scene, date_after=day, date_before=day) == {"alice"}
    assert listed(world.superuser, "expenses", scene, date_before=day - timedelta(days=1)) == set()


def test_filters_never_widen_the_scope(world: World, scene: Scene) -> None:
    assert listed(world.viewer, "deployments", scene, incident="OR-2026-07") == set()
    assert listed(world.alice_user, "deployments", scene, expert="bob@example.org") == set()


@pytest.mark.parametrize(
    ("collection", "parameter", "value"),
    [
        ("incidents", "status", "bogus"),
        ("incidents", "start_after", "not-a-date"),
        ("facilities", "incident_id", "abc"),
        ("facilities", "kind", "castle"),
        ("requests", "open", "maybe"),
        ("requests", "end_before", "2026-02-30"),
        ("requests", "priority", "urgent"),
        ("deployments", "status", "lost"),
        ("deployments", "request", "1.5"),
        ("deployments", "expert_id", "0"),
        ("events", "since", "-1"),
        ("events", "at_after", "yesterday"),
        ("events", "at_before", "9999-12-31T23:00:00-05:00"),
        ("events", "type", "deployment.\x00"),
        ("time-entries", "date_after", "tomorrow"),
        ("time-entries", "status", "paid"),
        ("expenses", "category", "champagne"),
        ("experts", "active", "perhaps"),
        ("experts", "available_on", "soon"),
        ("qualifications", "kind", "diploma"),
        ("me/deployments", "status", "lost"),
    ],
)
def test_a_value_that_does_not_parse_is_a_400_naming_the_parameter(
    world: World, collection: str, parameter: str, value: str
) -> None:
    response = client_for(world.superuser).get(url(collection), {parameter: value})
    assert response.status_code == 400
    assert list(response.json()) == [parameter]


# --- Pagination -------------------------------------------------------------------------------------


def test_lists_come_in_pages(world: World, scene: Scene) -> None:
    client = client_for(world.superuser)
    first = client.get("/api/deployments/", {"page_size": 3}).json()
    assert first["count"] == 4 and len(first["results"]) == 3 and first["previous"] is None
    assert "page=2" in first["next"] and "page_size=3" in first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert {r["id"] for r in first["results"] + second["results"]} == set(scene.pks["deployments"].values())
    missing = client.get("/api/deployments/", {"page": 9})
    assert missing.status_code == 404 and "detail" in missing.json()


def test_a_page_holds_fifty_by_default_and_at_most_five_hundred(world: World) -> None:
    qualifications = [Qualification(code=f"Q{i:03}", name=f"Skill {i}") for i in range(520)]
    Qualification.objects.bulk_create(qualifications)
    client = client_for(world.outsider)
    assert len(client.get("/api/qualifications/").json()["results"]) == 50
    assert len(client.get("/api/qualifications/", {"page_size": 10_000}).json()["results"]) == 500


# --- Query budgets ----------------------------------------------------------------------------------


def grow(world: World, n: int) -> None:
    """n more of everything in the world's incident: facility, request, expert, deployment..."""
    today = timezone.localdate()
    for _ in range(n):
        facility = factories.FacilityFactory(incident=world.incident)
        request = factories.RoleRequestFactory(facility=facility, quantity=1)
        expert = factories.ExpertFactory(agency=factories.AgencyFactory())
        factories.CredentialFactory(expert=expert, qualification=request.qualification)
        d = factories.DeploymentFactory(
            request=request,
            expert=expert,
            status=Status.ON_SITE,
            start=today - timedelta(days=2),
            end=today + timedelta(days=2),
        )
        Event.objects.create(
            incident=world.incident, deployment=d, expert=expert, type="x", at=timezone.now()
        )
        TimeEntry.objects.create(
            deployment=d,
            date=d.start,
            regular_hours=8,
            status="approved",
            approved_by=world.finance,
            approved_at=timezone.now(),
        )
        Expense.objects.create(deployment=d, date=d.start, category="lodging", amount=Decimal("99.00"))
    # Alice's own offers for the responder's list, a month apart (an expert's offers never overlap).
    already = Deployment.objects.filter(expert=world.alice).count()
    for i in range(already, already + n):
        start = date(2027, 1, 1) + timedelta(days=30 * i)
        factories.DeploymentFactory(
            request=factories.RoleRequestFactory(
                facility=world.request.facility, start=start, end=start + timedelta(days=5)
            ),
            expert=world.alice,
            status=Status.OFFERED,
        )


# Every list is the page's rows in one query with what it shows joined in, plus DRF's count.
BUDGETS = {
    "incidents": 2,  # count, page (the asker's role is a subquery)
    "facilities": 2,  # count, page + incident
    "requests": 2,  # count, page + facility, incident, qualification, `filled` as an aggregate
    "deployments": 2,  # count, page + request, facility, qualification, expert, agency
    "events": 2,  # count, page + actor
    "time-entries": 2,  # count, page + deployment, request, facility, expert, approver
    "expenses": 2,  # the same
    "experts": 4,  # is the asker a commander anywhere (roster scope), count, page + agency, credentials
    "qualifications": 2,  # count, page
}


def queries(user: User, path: str) -> int:
    client = client_for(User.objects.get(pk=user.pk))  # as a request has it: nothing cached
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, {"page_size": 500})
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("collection", list(BUDGETS))
def test_each_list_costs_a_constant_number_of_queries(world: World, collection: str) -> None:
    grow(world, 3)
    few = queries(world.commander, url(collection))
    grow(world, 27)
    many = queries(world.commander, url(collection))
    assert few == many == BUDGETS[collection]


def test_my_deployments_cost_a_constant_number_of_queries(world: World) -> None:
    # the asker's expert record, the offers due to expire (none), count, page
    grow(world, 3)
    assert queries(world.alice_user, "/api/me/deployments/") == 4
    grow(world, 27)
    assert queries(world.alice_user, "/api/me/deployments/") == 4


def test_a_superuser_skips_the_roster_scope_query(world: World) -> None:
    grow(world, 3)
    assert queries(world.superuser, "/api/experts/") == 3


def test_scene_is_consistent(scene: Scene) -> None:
    # The expectations above lean on these.
    assert Expert.objects.count() == 4 and RoleRequest.objects.count() == 3
