"""Logistics (ICS 204/211): arrivals, departures, people on site and beds per facility per day."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import Deployment, EquipmentIssue
from reports.logistics import BY_DAY, FACILITIES, PEOPLE, Stay, suggested_travel
from tests import factories
from tests.conftest import World
from tests.test_reports_world import START, build, on_site, sheet, xlsx

pytestmark = pytest.mark.django_db
Status = Deployment.Status


def day(n: int) -> date:
    return START + timedelta(days=n)


def table(kind_sheet: str, columns: list, **params: str) -> list[dict[str, object]]:  # type: ignore[type-arg]
    report = build("logistics", incident="WA-2026-01", **params)
    keys = [c.key for c in columns]
    return [dict(zip(keys, row, strict=True)) for row in report.sheet(kind_sheet).rows(None)]  # type: ignore[arg-type]


@pytest.fixture
def stays(world: World) -> World:
    north = factories.FacilityFactory(incident=world.incident, code="LTC-NORTH", name="Northgate Care")
    # Alice commutes (41.7 km): Dec 1–4.
    alice = on_site(world, world.alice, start=day(0), end=day(3))
    EquipmentIssue.objects.create(deployment=alice, item="Radio", issued_at=timezone.now())
    EquipmentIssue.objects.create(
        deployment=alice, item="N95", quantity=2, issued_at=timezone.now(), returned_at=timezone.now()
    )
    # Bob lives 120 km away: a bed the nights of Dec 2, 3 and 4; he leaves Dec 5.
    on_site(world, world.bob, start=day(1), end=day(4), distance_km=120.0, status=Status.ACCEPTED)
    # Carol flies in (600 km) to Northgate and was released on Dec 3 (local), before her end.
    on_site(
        world,
        factories.ExpertFactory(first_name="Carol"),
        facility=north,
        start=day(0),
        end=day(13),
        distance_km=600.0,
        status=Status.RELEASED,
        released_at=datetime(2026, 12, 3, 20, 0, tzinfo=timezone.UTC),
    )
    on_site(world, factories.ExpertFactory(first_name="Zed"), status=Status.DECLINED)  # not coming
    return world


def test_arrivals_departures_on_site_and_beds_per_facility_per_day(stays: World) -> None:
    days = {(r["date"], r["facility"]): r for r in table("days", BY_DAY)}
    seattle = stays.request.facility.code

    def counts(n: int, code: str) -> tuple[object, ...]:
        r = days.get((day(n), code))
        return (r["arrivals"], r["departures"], r["on_site"], r["beds"]) if r else (0, 0, 0, 0)

    assert counts(0, seattle) == (1, 0, 1, 0)
    assert counts(1, seattle) == (1, 0, 2, 1)
    assert counts(3, seattle) == (0, 1, 2, 1)  # Alice leaves, Bob sleeps over
    assert counts(4, seattle) == (0, 1, 1, 0)  # Bob leaves: no bed that night
    assert counts(0, "LTC-NORTH") == (1, 0, 1, 1)
    assert counts(2, "LTC-NORTH") == (0, 1, 1, 0)  # released Dec 3 at noon local
    assert (day(5), seattle) not in days


def test_facilities_add_up_people_on_site_movements_and_beds(stays: World) -> None:
    by_code = {r["facility"]: r for r in table("facilities", FACILITIES)}
    seattle = by_code[stays.request.facility.code]
    assert (
        seattle["people"],
        seattle["on_site_now"],
        seattle["lodging_nights"],
        seattle["equipment_out"],
    ) == (
        2,
        1,
        3,
        1,
    )
    north = by_code["LTC-NORTH"]
    assert (north["people"], north["on_site_now"], north["arrivals"], north["departures"]) == (1, 0, 1, 1)
    assert north["lodging_nights"] == 2


def test_people_carry_travel_lodging_and_equipment(stays: World) -> None:
    people = {r["name"].split(", ")[1]: r for r in table("people", PEOPLE)}  # type: ignore[union-attr]
    assert set(people) == {"Alice", "Bob", "Carol"}
    alice, bob, carol = people["Alice"], people["Bob"], people["Carol"]
    assert (alice["equipment_issued"], alice["equipment_out"], alice["items_out"]) == (2, 1, "1× Radio")
    assert (alice["lodging"], alice["lodging_nights"], alice["suggested_travel"]) == (False, 0, "Drive")
    assert (bob["lodging"], bob["lodging_nights"], bob["departure"]) == (True, 3, day(4))
    assert (carol["suggested_travel"], carol["travel_method"], carol["departure"]) == (
        "Fly",
        "Personal vehicle",
        day(2),
    )


def test_the_dates_keep_overlapping_stays_and_clip_the_days(stays: World) -> None:
    params = {"from": str(day(3)), "to": str(day(4))}
    people = {r["name"].split(", ")[1] for r in table("people", PEOPLE, **params)}  # type: ignore[union-attr]
    assert people == {"Alice", "Bob"}  # Carol left on Dec 3, before the range
    assert {r["date"] for r in table("days", BY_DAY, **params)} == {day(3), day(4)}


def test_the_travel_rule_and_lodging_nights() -> None:
    assert suggested_travel(500) == "Drive" and suggested_travel(500.1) == "Fly"
    stay = Stay("F", "F", "n", "a", "", "r", "On site", day(0), day(3), None, 81.0, "", False, 0, 0, "")
    assert stay.nights(day(0), day(10)) == [day(0), day(1), day(2)]
    assert stay.nights(day(2), day(10)) == [day(2)]


def test_the_workbook_has_the_three_sheets_and_the_page_renders(stays: World, client: Client) -> None:
    book = xlsx(build("logistics", incident="WA-2026-01"))
    assert list(sheet(book, "People")["Suggested travel"]) == ["Drive", "Drive", "Fly"]
    assert list(sheet(book, "Facilities")["Facility"]) == [stays.request.facility.code, "LTC-NORTH"]
    client.force_login(stays.viewer)
    page = client.get(reverse("report", args=["logistics"]), {"incident": "WA-2026-01"})
    assert page.status_code == 200
    assert "more than 80 km away" in page.content.decode()


@pytest.mark.parametrize("people", [5, 50])
def test_logistics_takes_the_same_queries_for_5_or_50_people(
    world: World, client: Client, people: int, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for _ in range(people):
        d = on_site(world, factories.ExpertFactory(), distance_km=150.0)
        EquipmentIssue.objects.create(deployment=d, item="Radio", issued_at=timezone.now())
    client.force_login(world.commander)
    # session, user, incident, facilities, agencies, incident (form), role, the stays (one query
    # with equipment counts as subqueries), the incidents of the form's select ×2
    with django_assert_max_num_queries(10):
        assert (
            client.get(reverse("report", args=["logistics"]), {"incident": "WA-2026-01"}).status_code == 200
        )
