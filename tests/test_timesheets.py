"""Time and money: responders log hours and expenses, commanders and finance officers review."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deploy_tracker.errors import IllegalTransition, InvalidInput, NotAllowed
from incidents import timesheets
from incidents.models import Approval, Deployment, Event, Expense, TimeEntry
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db
Status = Deployment.Status


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


def test_a_responder_logs_a_day_regular_and_overtime_apart(world: World, on_site: Deployment) -> None:
    entry = timesheets.log_time(
        on_site, by=world.alice_user, day=on_site.start, regular_hours="8", overtime_hours="2.5"
    )
    assert (entry.regular_hours, entry.overtime_hours, entry.status) == (
        Decimal(8),
        Decimal("2.5"),
        "submitted",
    )
    (event,) = Event.objects.filter(type="time.submitted")
    assert event.expert_id == world.alice.pk and event.data["overtime_hours"] == "2.5"


def test_correcting_a_day_replaces_it_until_it_is_approved(world: World, on_site: Deployment) -> None:
    timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=8)
    entry = timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=10)
    assert TimeEntry.objects.get().regular_hours == 10
    timesheets.review([entry], by=world.finance, approve=True)
    with pytest.raises(IllegalTransition, match="already approved"):
        timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=12)
    assert TimeEntry.objects.get().regular_hours == 10


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"regular_hours": "-1"}, "regular_hours"),
        ({"regular_hours": "eight"}, "regular_hours"),
        ({"regular_hours": 20, "overtime_hours": 5}, "overtime_hours"),
        ({"regular_hours": 0}, "regular_hours"),
        ({"regular_hours": 8, "day": "2026-02-30"}, "date"),
        ({"regular_hours": 8, "day_offset": 1}, "date"),  # tomorrow
        ({"regular_hours": 8, "day_offset": -4}, "date"),  # before the deployment
    ],
)
def test_bad_hours_name_the_field_and_write_nothing(
    world: World, on_site: Deployment, kwargs: dict, field: str
) -> None:
    today = timezone.localdate(timezone=world.incident.tz)
    day = kwargs.pop("day", None) or today + timedelta(days=kwargs.pop("day_offset", 0))
    with pytest.raises(InvalidInput) as refused:
        timesheets.log_time(on_site, by=world.alice_user, day=day, **kwargs)
    assert refused.value.field == field
    assert not TimeEntry.objects.exists() and not Event.objects.exists()


def test_no_time_before_check_in_and_none_for_someone_else(world: World, on_site: Deployment) -> None:
    accepted = factories.DeploymentFactory(request=world.request, expert=world.bob, status=Status.ACCEPTED)
    with pytest.raises(IllegalTransition, match="once the responder is checked in"):
        timesheets.log_time(accepted, by=world.bob_user, day=accepted.start, regular_hours=8)
    with pytest.raises(NotAllowed):
        timesheets.log_time(on_site, by=world.bob_user, day=on_site.start, regular_hours=8)
    with pytest.raises(NotAllowed):
        timesheets.log_time(on_site, by=world.viewer, day=on_site.start, regular_hours=8)
    # Finance may enter hours for a responder (from a paper timesheet).
    assert timesheets.log_time(on_site, by=world.finance, day=on_site.start, regular_hours=8).pk


def test_mileage_is_the_distance_at_the_incidents_rate(world: World, on_site: Deployment) -> None:
    world.incident.mileage_rate = Decimal("0.435")
    world.incident.save()
    claim = timesheets.add_expense(on_site, by=world.alice_user, day=on_site.start, category="mileage")
    # 120.4 km × $0.435/km = $52.374 → $52.37, computed here independently of the code.
    assert (claim.distance_km, claim.amount) == (120.4, Decimal("52.37"))
    with pytest.raises(InvalidInput) as refused:
        timesheets.add_expense(
            on_site, by=world.alice_user, day=on_site.start, category="mileage", amount="99"
        )
    assert refused.value.field == "amount"


def test_other_expenses_need_an_amount_and_a_known_category(world: World, on_site: Deployment) -> None:
    lodging = timesheets.add_expense(
        on_site,
        by=world.alice_user,
        day=on_site.start,
        category="lodging",
        amount="129.999",
        description="Inn",
    )
    assert lodging.amount == Decimal("130.00") and lodging.distance_km is None
    for category, amount, field in (
        ("lodging", "", "amount"),
        ("spa", "10", "category"),
        ("other", "-5", "amount"),
    ):
        with pytest.raises(InvalidInput) as refused:
            timesheets.add_expense(
                on_site, by=world.alice_user, day=on_site.start, category=category, amount=amount
            )
        assert refused.value.field == field
    assert Expense.objects.count() == 1


def test_finance_approves_and_rejects_with_a_reason_once(world: World, on_site: Deployment) -> None:
    days = [on_site.start + timedelta(days=i) for i in range(3)]
    entries = [timesheets.log_time(on_site, by=world.alice_user, day=d, regular_hours=8) for d in days]
    assert timesheets.review(entries[:2], by=world.finance, approve=True) == 2
    with pytest.raises(InvalidInput):
        timesheets.review(entries[2:], by=world.commander, approve=False)
    assert timesheets.review(entries[2:], by=world.commander, approve=False, reason="Shift was 12 h") == 1
    assert timesheets.review(entries, by=world.finance, approve=True) == 0  # already reviewed: untouched
    statuses = dict(TimeEntry.objects.values_list("date", "status"))
    assert statuses == {days[0]: Approval.APPROVED, days[1]: Approval.APPROVED, days[2]: Approval.REJECTED}
    approved = TimeEntry.objects.filter(status=Approval.APPROVED)
    assert {e.approved_by_id for e in approved} == {world.finance.pk}
    rejected = Event.objects.get(type="time.rejected")
    assert rejected.data["reason"] == "Shift was 12 h" and rejected.expert_id == world.alice.pk
    # A rejected day can be corrected and sent again.
    assert (
        timesheets.log_time(on_site, by=world.alice_user, day=days[2], regular_hours=12).status == "submitted"
    )


@pytest.mark.parametrize("who", ["viewer", "alice_user", "other_commander"])
def test_only_commanders_and_finance_review(world: World, on_site: Deployment, who: str) -> None:
    entry = timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=8)
    with pytest.raises(NotAllowed):
        timesheets.review([entry], by=getattr(world, who), approve=True)
    entry.refresh_from_db()
    assert entry.status == Approval.SUBMITTED


# --- pages ------------------------------------------------------------------------------------------


def test_the_responder_logs_hours_and_claims_mileage_from_their_page(
    world: World, on_site: Deployment, client: Client
) -> None:
    client.force_login(world.alice_user)
    page = client.get(reverse("my-deployments")).content.decode()
    assert "Log hours for a day" in page and "Claim an expense" in page
    sent = client.post(
        reverse("my-time", args=[on_site.pk]),
        {"date": on_site.start.isoformat(), "regular_hours": "8", "overtime_hours": "1"},
        follow=True,
    )
    assert "sent for approval" in sent.content.decode()
    bad = client.post(
        reverse("my-time", args=[on_site.pk]),
        {"date": on_site.start.isoformat(), "regular_hours": "30"},
        follow=True,
    )
    assert "more than 24" in bad.content.decode()
    client.post(
        reverse("my-expense", args=[on_site.pk]), {"date": on_site.start.isoformat(), "category": "mileage"}
    )
    assert list(Expense.objects.values_list("category", flat=True)) == ["mileage"]
    assert "Submitted" in client.get(reverse("my-deployments")).content.decode()


def test_another_responder_cannot_post_to_my_deployment(
    world: World, on_site: Deployment, client: Client
) -> None:
    client.force_login(world.bob_user)
    response = client.post(
        reverse("my-time", args=[on_site.pk]), {"date": on_site.start.isoformat(), "regular_hours": "8"}
    )
    assert response.status_code == 404 and not TimeEntry.objects.exists()


def test_finance_approves_from_the_approvals_page(world: World, on_site: Deployment, client: Client) -> None:
    first = timesheets.log_time(on_site, by=world.alice_user, day=on_site.start, regular_hours=8)
    timesheets.log_time(on_site, by=world.alice_user, day=on_site.start + timedelta(days=1), regular_hours=8)
    client.force_login(world.finance)
    page = client.get(reverse("approvals", args=[world.incident.pk])).content.decode()
    assert "Hours (2)" in page and world.alice.full_name in page
    done = client.post(
        reverse("approvals", args=[world.incident.pk]),
        {"kind": "time", "record": [first.pk], "decision": "approve"},
        follow=True,
    )
    assert "1 record(s) approved" in done.content.decode()
    assert "Hours (1)" in done.content.decode()


@pytest.mark.parametrize("who", ["viewer", "alice_user", "outsider"])
def test_the_approvals_page_is_for_commanders_and_finance(world: World, client: Client, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(reverse("approvals", args=[world.incident.pk])).status_code == 404


def test_the_approvals_page_filters_and_pages_and_keeps_its_place_after_a_review(
    world: World, on_site: Deployment, client: Client
) -> None:
    bob_there = factories.DeploymentFactory(
        request=world.request, expert=world.bob, status=Status.ON_SITE, start=on_site.start, end=on_site.end
    )
    for day in range(3):
        timesheets.log_time(
            on_site, by=world.alice_user, day=on_site.start + timedelta(days=day), regular_hours=8
        )
    bobs = timesheets.log_time(bob_there, by=world.bob_user, day=bob_there.start, regular_hours=6)
    client.force_login(world.finance)
    url = reverse("approvals", args=[world.incident.pk])
    page = client.get(url, {"search": "bob"}).content.decode()
    assert "Hours (1)" in page and world.bob.full_name in page and world.alice.full_name not in page
    later = client.get(url, {"date_after": (on_site.start + timedelta(days=1)).isoformat()}).content.decode()
    assert "Hours (2)" in later  # Alice's second and third days; Bob's is on the first
    assert 'label for="id_facility"' in page and 'type="date"' in page  # labelled filter form
    bad = client.get(url, {"date_after": "not-a-day"}).content.decode()
    assert 'class="error"' in bad  # the error sits next to its field
    # Reviewing from a filtered view comes back to it.
    done = client.post(
        f"{url}?search=bob", {"kind": "time", "record": [bobs.pk], "decision": "approve"}, follow=True
    )
    assert done.redirect_chain[-1][0].endswith("?search=bob")
    assert "Hours (0)" in done.content.decode()


def test_the_approvals_page_pages_long_lists(
    world: World, on_site: Deployment, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("incidents.views.APPROVALS_PER_PAGE", 2)
    for day in range(4):
        timesheets.log_time(
            on_site, by=world.alice_user, day=on_site.start + timedelta(days=day), regular_hours=8
        )
    client.force_login(world.commander)
    url = reverse("approvals", args=[world.incident.pk])
    first = client.get(url).content.decode()
    assert "Hours (4)" in first and "Page 1 of 2" in first and "times_page=2" in first
    assert first.count('name="record"') == 2
    last = client.get(url, {"times_page": 2}).content.decode()
    assert "Page 2 of 2" in last and "← Previous" in last
