"""Demobilization (ICS 221): release days, check-out items and blockers, in bulk."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents import workflow
from incidents.models import Approval, Deployment, EquipmentIssue
from reports.demobilization import COLUMNS
from tests import factories
from tests.conftest import World
from tests.test_reports_world import START, build, entry, on_site, sheet, xlsx

pytestmark = pytest.mark.django_db
Status = Deployment.Status
KEYS = [c.key for c in COLUMNS]


def rows(**params: str) -> list[dict[str, object]]:
    report = build("demobilization", incident="WA-2026-01", **params)
    return [dict(zip(KEYS, row, strict=True)) for row in report.sheet("checkout").rows(None)]  # type: ignore[arg-type]


def issue(d: Deployment, item: str, *, returned: bool = False) -> EquipmentIssue:
    at = timezone.now() - timedelta(days=3)
    return EquipmentIssue.objects.create(
        deployment=d,
        item=item,
        quantity=2,
        issued_at=at,
        returned_at=at + timedelta(days=1) if returned else None,
    )


@pytest.fixture
def checkout(world: World) -> dict[str, Deployment]:
    alice = on_site(world, world.alice)  # blocked on all three
    issue(alice, "N95 respirators")
    issue(alice, "Radio", returned=True)
    entry(world, alice, START, "8.00")
    entry(world, alice, START + timedelta(days=1), "8.00", status=Approval.SUBMITTED)
    bob = on_site(world, world.bob, travel_arranged=True)  # ready
    issue(bob, "Radio", returned=True)
    entry(world, bob, START, "8.00")
    carol = on_site(
        world,
        factories.ExpertFactory(first_name="Carol"),
        status=Status.RELEASED,
        travel_arranged=True,
        released_at=datetime(2026, 12, 5, 1, 30, tzinfo=timezone.UTC),  # Dec 4, 17:30 in Seattle
    )
    dave = on_site(
        world,
        factories.ExpertFactory(first_name="Dave"),
        status=Status.ACCEPTED,
        planned_release=START + timedelta(days=6),
    )
    on_site(world, factories.ExpertFactory(first_name="Eve"), status=Status.PROPOSED)  # nobody's record yet
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave}


def test_each_person_is_listed_by_release_day_with_the_check_out_items(
    checkout: dict[str, Deployment],
) -> None:
    listed = rows()
    assert [r["name"].split(", ")[1] for r in listed] == ["Carol", "Dave", "Alice", "Bob"]  # type: ignore[union-attr]
    by_name = {r["name"].split(", ")[1]: r for r in listed}  # type: ignore[union-attr]
    carol, dave, alice, bob = (by_name[n] for n in ("Carol", "Dave", "Alice", "Bob"))
    assert carol["release_day"] == START + timedelta(days=3)  # released on Dec 4, local time
    assert carol["released_at"] == datetime(2026, 12, 4, 17, 30) and carol["blockers"] == ""
    assert dave["release_day"] == dave["planned_release"] == START + timedelta(days=6)
    assert alice["release_day"] == START + timedelta(days=13)  # no planned release: the last day
    assert (alice["equipment_out"], alice["items_out"], alice["time_not_approved"]) == (
        1,
        "2× N95 respirators",
        1,
    )
    assert alice["travel_arranged"] is False and alice["ready"] is False
    assert (bob["equipment_out"], bob["time_not_approved"], bob["blockers"], bob["ready"]) == (0, 0, "", True)


def test_blockers_read_in_bulk_say_what_release_itself_would_say(checkout: dict[str, Deployment]) -> None:
    by_name = {r["name"].split(", ")[1]: r for r in rows()}  # type: ignore[union-attr]
    for name in ("Alice", "Bob", "Dave"):
        assert by_name[name]["blockers"] == "; ".join(workflow.release_blockers(checkout[name.lower()]))


def test_the_dates_select_on_the_release_day(checkout: dict[str, Deployment]) -> None:
    week = rows(**{"from": str(START), "to": str(START + timedelta(days=6))})
    assert {r["name"].split(", ")[1] for r in week} == {"Carol", "Dave"}  # type: ignore[union-attr]
    released = rows(status=Status.RELEASED)
    assert [r["status"] for r in released] == ["Released"]


def test_the_workbook_and_page_show_the_list(
    checkout: dict[str, Deployment], world: World, client: Client
) -> None:
    frame = sheet(xlsx(build("demobilization", incident="WA-2026-01")), "Check-out")
    assert list(frame["Ready for release"]) == ["No", "No", "No", "Yes"]
    client.force_login(world.viewer)
    page = client.get(reverse("report", args=["demobilization"]), {"incident": "WA-2026-01"}).content.decode()
    assert (
        'id="count-ready">1<' in page and 'id="count-blocked">2<' in page and 'id="count-released">1<' in page
    )
    assert "1 equipment item(s) not returned; 1 time entry not approved; return travel not arranged" in page


@pytest.mark.parametrize("people", [5, 50])
def test_the_list_takes_the_same_queries_for_5_or_50_people(
    world: World, client: Client, people: int, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(people):
        d = on_site(world, factories.ExpertFactory())
        issue(d, "Radio")
        entry(world, d, START, "8.00", status=Approval.SUBMITTED)
    client.force_login(world.commander)
    # session, user, incident, facilities, agencies, incident (form), role, the list (one
    # query with its counts as subqueries), the incidents of the form's select ×2
    with django_assert_max_num_queries(10):
        page = client.get(reverse("report", args=["demobilization"]), {"incident": "WA-2026-01"})
    assert page.status_code == 200
    # the export: incident, facilities, agencies, incident (form), the list
    with django_assert_max_num_queries(5):
        xlsx(build("demobilization", incident="WA-2026-01"))
