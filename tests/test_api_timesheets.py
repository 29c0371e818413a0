"""Hours and expenses over the API: logged by the responder (or finance for them), reviewed in bulk."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIClient

from incidents.models import Approval, Deployment, Event, Expense, TimeEntry
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def post(user: User, path: str, body: dict[str, Any]) -> Response:
    client = APIClient()
    client.force_authenticate(user)
    response: Response = client.post(path, body, format="json")
    return response


@pytest.fixture
def on_site(world: World) -> Deployment:
    """Alice on site since three days ago, 120.4 km from home."""
    today = timezone.localdate(timezone=world.incident.tz)
    return factories.DeploymentFactory(
        request=world.request,
        expert=world.alice,
        status=Status.ON_SITE,
        start=today - timedelta(days=3),
        end=today + timedelta(days=10),
        distance_km=120.4,
    )


def hours(deployment: Deployment, **change: Any) -> dict[str, Any]:
    return {"deployment": deployment.pk, "date": str(deployment.start), "regular_hours": "8", **change}


# --- time ---------------------------------------------------------------------------------------------


def test_the_responder_logs_a_day(world: World, on_site: Deployment) -> None:
    response = post(world.alice_user, "/api/time-entries/", hours(on_site, overtime_hours="2.5", notes="ICU"))
    assert response.status_code == 201
    body = response.json()
    assert (body["regular_hours"], body["overtime_hours"], body["status"]) == ("8.00", "2.50", "submitted")
    assert (body["deployment"], body["expert_name"], body["notes"]) == (on_site.pk, "Alice Lee", "ICU")
    assert Event.objects.get().type == "time.submitted"


def test_sending_a_day_again_corrects_it(world: World, on_site: Deployment) -> None:
    post(world.alice_user, "/api/time-entries/", hours(on_site))
    response = post(world.alice_user, "/api/time-entries/", hours(on_site, regular_hours="10"))
    assert response.status_code == 201 and response.json()["regular_hours"] == "10.00"
    assert TimeEntry.objects.get().regular_hours == 10


@pytest.mark.parametrize("who", ["finance", "commander"])
def test_finance_or_a_commander_enters_paper_time(world: World, on_site: Deployment, who: str) -> None:
    assert post(getattr(world, who), "/api/time-entries/", hours(on_site)).status_code == 201


def test_a_viewer_may_not_log_time(world: World, on_site: Deployment) -> None:
    response = post(world.viewer, "/api/time-entries/", hours(on_site))
    assert response.status_code == 403 and response.json()["error"] == "not_allowed"


@pytest.mark.parametrize("who", ["bob_user", "other_commander", "outsider"])
def test_someone_elses_deployment_does_not_exist_for_them(
    world: World, on_site: Deployment, who: str
) -> None:
    response = post(getattr(world, who), "/api/time-entries/", hours(on_site))
    assert response.status_code == 400 and list(response.json()) == ["deployment"]


def test_time_waits_for_the_check_in(world: World) -> None:
    accepted = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.ACCEPTED)
    response = post(world.alice_user, "/api/time-entries/", hours(accepted))
    assert response.status_code == 409 and response.json()["error"] == "illegal_transition"


def test_approved_time_no_longer_changes(world: World, on_site: Deployment) -> None:
    post(world.alice_user, "/api/time-entries/", hours(on_site))
    TimeEntry.objects.update(status=Approval.APPROVED, approved_by=world.finance, approved_at=timezone.now())
    response = post(world.alice_user, "/api/time-entries/", hours(on_site, regular_hours="12"))
    assert response.status_code == 409 and "already approved" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"regular_hours": "25"}, "regular_hours"),
        ({"regular_hours": "-1"}, "regular_hours"),
        ({"regular_hours": "eight"}, "regular_hours"),
        ({"overtime_hours": "1.234"}, "overtime_hours"),
        ({"date": "2026-02-30"}, "date"),
        ({"notes": "x" * 301}, "notes"),
    ],
)
def test_a_bad_entry_is_a_400_naming_the_field(
    world: World, on_site: Deployment, change: dict[str, Any], field: str
) -> None:
    response = post(world.alice_user, "/api/time-entries/", hours(on_site, **change))
    assert response.status_code == 400 and list(response.json()) == [field]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"regular_hours": "20", "overtime_hours": "5"}, "overtime_hours"),
        ({"regular_hours": "0"}, "regular_hours"),
        ({"date": "tomorrow"}, "date"),
        ({"date": "before"}, "date"),
    ],
)
def test_the_services_rules_are_a_400_naming_the_field(
    world: World, on_site: Deployment, change: dict[str, Any], field: str
) -> None:
    today = timezone.localdate(timezone=world.incident.tz)
    days = {"tomorrow": today + timedelta(days=1), "before": on_site.start - timedelta(days=1)}
    if change.get("date") in days:
        change = {**change, "date": str(days[change["date"]])}
    response = post(world.alice_user, "/api/time-entries/", hours(on_site, **change))
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["field"]) == ("invalid_input", field)


# --- expenses -----------------------------------------------------------------------------------------


def claim(deployment: Deployment) -> dict[str, Any]:
    return {
        "deployment": deployment.pk,
        "date": str(deployment.start),
        "category": "lodging",
        "amount": "129.5",
    }


def test_the_responder_claims_an_expense(world: World, on_site: Deployment) -> None:
    response = post(world.alice_user, "/api/expenses/", {**claim(on_site), "description": "Motel"})
    assert response.status_code == 201
    body = response.json()
    assert (body["category"], body["amount"], body["status"], body["description"]) == (
        "lodging",
        "129.50",
        "submitted",
        "Motel",
    )


def test_mileage_is_computed(world: World, on_site: Deployment) -> None:
    body = {**claim(on_site), "category": "mileage", "amount": None}
    response = post(world.alice_user, "/api/expenses/", body)
    assert response.status_code == 201
    assert (response.json()["amount"], response.json()["distance_km"]) == ("52.37", 120.4)  # 120.4 × 0.435
    body["amount"] = "10"
    response = post(world.alice_user, "/api/expenses/", body)
    assert (response.status_code, response.json()["field"]) == (400, "amount")


@pytest.mark.parametrize(
    ("change", "field"),
    [({"category": "champagne"}, "category"), ({"amount": "-3"}, "amount"), ({"amount": "lots"}, "amount")],
)
def test_a_bad_claim_is_a_400_naming_the_field(
    world: World, on_site: Deployment, change: dict[str, Any], field: str
) -> None:
    response = post(world.alice_user, "/api/expenses/", {**claim(on_site), **change})
    assert response.status_code == 400 and list(response.json()) == [field]


def test_an_expense_needs_an_amount(world: World, on_site: Deployment) -> None:
    response = post(world.alice_user, "/api/expenses/", {**claim(on_site), "amount": None})
    assert (response.status_code, response.json()["field"]) == (400, "amount")


def test_another_responder_cannot_claim_on_alices_deployment(world: World, on_site: Deployment) -> None:
    response = post(world.bob_user, "/api/expenses/", claim(on_site))
    assert response.status_code == 400 and list(response.json()) == ["deployment"]


# --- review -------------------------------------------------------------------------------------------


@pytest.fixture
def submitted(world: World, on_site: Deployment) -> dict[str, list[int]]:
    """Two days of Alice's hours and two of her expenses, all waiting for review."""
    times = [
        TimeEntry.objects.create(deployment=on_site, date=on_site.start + timedelta(days=i), regular_hours=8)
        for i in range(2)
    ]
    expenses = [
        Expense.objects.create(
            deployment=on_site, date=on_site.start, category="per_diem", amount=Decimal("59")
        )
        for _ in range(2)
    ]
    return {"time-entries": [t.pk for t in times], "expenses": [e.pk for e in expenses]}


@pytest.mark.parametrize("kind", ["time-entries", "expenses"])
@pytest.mark.parametrize("who", ["finance", "commander", "superuser"])
def test_approvers_approve_in_bulk(
    world: World, submitted: dict[str, list[int]], kind: str, who: str
) -> None:
    ids = submitted[kind]
    response = post(getattr(world, who), f"/api/{kind}/review/", {"ids": ids, "approve": True})
    assert response.status_code == 200 and response.json() == {"changed": 2}
    model = TimeEntry if kind == "time-entries" else Expense
    assert set(model.objects.values_list("status", flat=True)) == {"approved"}
    # Reviewed records are left alone: nothing changes the second time.
    assert post(world.finance, f"/api/{kind}/review/", {"ids": ids, "approve": True}).json() == {"changed": 0}


@pytest.mark.parametrize("kind", ["time-entries", "expenses"])
def test_rejecting_needs_a_reason_the_responder_sees(
    world: World, submitted: dict[str, list[int]], kind: str
) -> None:
    ids = submitted[kind]
    response = post(world.finance, f"/api/{kind}/review/", {"ids": ids, "approve": False})
    assert (response.status_code, response.json()["field"]) == (400, "reason")
    response = post(
        world.finance, f"/api/{kind}/review/", {"ids": ids[:1], "approve": False, "reason": "No receipt"}
    )
    assert response.json() == {"changed": 1}
    event = Event.objects.get(type__endswith=".rejected")
    assert event.expert_id == world.alice.pk and event.data["reason"] == "No receipt"


@pytest.mark.parametrize("kind", ["time-entries", "expenses"])
@pytest.mark.parametrize("who", ["viewer", "alice_user"])
def test_those_who_see_records_but_do_not_approve_are_refused(
    world: World, submitted: dict[str, list[int]], kind: str, who: str
) -> None:
    response = post(getattr(world, who), f"/api/{kind}/review/", {"ids": submitted[kind], "approve": True})
    assert response.status_code == 403 and response.json()["error"] == "not_allowed"


@pytest.mark.parametrize("kind", ["time-entries", "expenses"])
@pytest.mark.parametrize("who", ["other_commander", "bob_user", "outsider"])
def test_records_out_of_scope_are_unknown_and_nothing_changes(
    world: World, submitted: dict[str, list[int]], kind: str, who: str
) -> None:
    response = post(getattr(world, who), f"/api/{kind}/review/", {"ids": submitted[kind], "approve": True})
    assert response.status_code == 400 and list(response.json()) == ["ids"]
    model = TimeEntry if kind == "time-entries" else Expense
    assert set(model.objects.values_list("status", flat=True)) == {"submitted"}


def test_one_unknown_id_stops_the_whole_review(world: World, submitted: dict[str, list[int]]) -> None:
    response = post(
        world.finance,
        "/api/time-entries/review/",
        {"ids": [*submitted["time-entries"], 999_999], "approve": True},
    )
    assert response.status_code == 400 and "999999" in response.json()["ids"][0]
    assert not TimeEntry.objects.filter(status="approved").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": [], "approve": True}, "ids"),
        ({"ids": ["x"], "approve": True}, "ids"),
        ({"ids": [1]}, "approve"),
    ],
)
def test_a_bad_review_is_a_400_naming_the_field(world: World, body: dict[str, Any], field: str) -> None:
    response = post(world.finance, "/api/expenses/review/", body)
    assert response.status_code == 400 and list(response.json()) == [field]
