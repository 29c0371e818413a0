"""Logistics (ICS 204 assignment list, ICS 211 check-in list): who is where, coming and going.

Definitions (shown on the page and in the workbook):

- A stay runs from the deployment's first day (arrival) to the day the person left (released,
  in the incident's time zone) or is due to leave (planned release, else the last day).
- On site on a day: the day lies within the stay, both ends included.
- Lodging: a person who lives more than `LODGING_KM` from the facility (one way, beyond a
  daily commute) needs a bed near it each night of the stay, from the arrival day to the night
  before departure — hotel nights, check-in to check-out.
- Suggested travel method: drive up to `DRIVE_MAX_KM` (about a day's drive), fly beyond. It is a
  suggestion beside the method recorded on the deployment, for the travel desk to compare.

The date filter keeps stays that overlap the range, and the per-day figures cover the range
(by default, from the first arrival to the last departure).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet
from django.utils import timezone

from incidents.models import Deployment
from reports import deployments as d
from reports.filters import ReportFilterSet, scope
from reports.spec import Column, Kind, Layout, Report, Row, Sheet

if TYPE_CHECKING:
    from incidents.access import Actor

Status = Deployment.Status
LODGING_KM = 80
DRIVE_MAX_KM = 500
CHUNK = 2000


def suggested_travel(distance_km: float) -> str:
    return "Drive" if distance_km <= DRIVE_MAX_KM else "Fly"


def needs_lodging(distance_km: float) -> bool:
    return distance_km > LODGING_KM


class LogisticsFilterSet(ReportFilterSet):
    """Deployments whose stay overlaps the dates, by deployment status."""

    status_choices: ClassVar[list[tuple[str, str]]] = [
        (s.value, str(s.label)) for s in (Status.ACCEPTED, Status.ON_SITE, Status.RELEASED)
    ]
    default_status = (Status.ACCEPTED, Status.ON_SITE, Status.RELEASED)
    date_label = "stays overlapping"

    def filter_from(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        assert self.selected is not None
        narrowed: QuerySet[Any] = qs.alias(stay_end=d.leaves_on(self.selected.tz))
        return narrowed.filter(stay_end__gte=value)

    def filter_to(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return qs.filter(start__lte=value)


@dataclass(frozen=True)
class Stay:
    """One person's deployment as logistics sees it."""

    facility: str
    facility_name: str
    name: str
    agency: str
    phone: str
    role: str
    status: str
    arrival: date
    departure: date
    checked_in_at: datetime | None
    distance_km: float
    travel_method: str
    travel_arranged: bool
    equipment_issued: int
    equipment_out: int
    items_out: str

    @property
    def lodging(self) -> bool:
        return needs_lodging(self.distance_km)

    def nights(self, start: date, end: date) -> list[date]:
        """The nights (by their evening's date) this stay needs a bed, within [start, end]."""
        if not self.lodging:
            return []
        first, last = max(self.arrival, start), min(self.departure - timedelta(days=1), end)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass
class FacilityDay:
    arrivals: int = 0
    departures: int = 0
    on_site: int = 0
    beds: int = 0


@dataclass
class FacilityTotals:
    name: str
    county: str
    people: int = 0
    on_site_now: int = 0
    arrivals: int = 0
    departures: int = 0
    lodging_nights: int = 0
    equipment_out: int = 0
    days: dict[date, FacilityDay] = field(default_factory=lambda: defaultdict(FacilityDay))


FIELDS = (
    "request__facility__code",
    "request__facility__name",
    "request__facility__county",
    "expert__first_name",
    "expert__last_name",
    "expert__agency__name",
    "expert__phone",
    "request__qualification__name",
    "status",
    "start",
    "departure",
    "checked_in_at",
    "distance_km",
    "travel_method",
    "travel_arranged",
    "n_issued",
    "n_out",
    "items",
)
PEOPLE = [
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("name", "Name", Kind.TEXT, 24),
    Column("agency", "Home agency", Kind.TEXT, 26),
    Column("phone", "Phone", Kind.TEXT, 15),
    Column("role", "Role", Kind.TEXT, 22),
    Column("status", "Status", Kind.TEXT, 10),
    Column("arrival", "Arrival", Kind.DATE, 11),
    Column("departure", "Departure", Kind.DATE, 11),
    Column("checked_in_at", "Checked in at", Kind.DATETIME, 16),
    Column("distance_km", "Distance km", Kind.KM, 10),
    Column("travel_method", "Travel method", Kind.TEXT, 15),
    Column("suggested_travel", "Suggested travel", Kind.TEXT, 10),
    Column("travel_arranged", "Travel arranged", Kind.BOOL, 9),
    Column("lodging", "Needs lodging", Kind.BOOL, 9),
    Column("lodging_nights", "Lodging nights", Kind.INT, 9),
    Column("equipment_issued", "Equipment issued", Kind.INT, 9),
    Column("equipment_out", "Equipment not returned", Kind.INT, 10),
    Column("items_out", "Items not returned", Kind.TEXT, 30),
]
BY_DAY = [
    Column("date", "Date", Kind.DATE, 11),
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("facility_name", "Facility name", Kind.TEXT, 30),
    Column("arrivals", "Arrivals", Kind.INT, 9),
    Column("departures", "Departures", Kind.INT, 10),
    Column("on_site", "On site", Kind.INT, 8),
    Column("beds", "Lodging (beds that night)", Kind.INT, 12),
]
FACILITIES = [
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("facility_name", "Facility name", Kind.TEXT, 30),
    Column("county", "County", Kind.TEXT, 14),
    Column("people", "People", Kind.INT, 8),
    Column("on_site_now", "On site now", Kind.INT, 9),
    Column("arrivals", "Arrivals", Kind.INT, 9),
    Column("departures", "Departures", Kind.INT, 10),
    Column("lodging_nights", "Lodging nights", Kind.INT, 10),
    Column("equipment_out", "Equipment not returned", Kind.INT, 10),
]


class Logistics:
    """Stays of the selected deployments and what they add up to per facility and day."""

    def __init__(self, filters: LogisticsFilterSet, user: Actor | None) -> None:
        assert filters.selected is not None
        self.filters = filters
        self.incident = filters.selected
        self.deployments: QuerySet[Deployment] = filters.filter_queryset(
            scope(user, Deployment.objects.all())
        )
        methods = dict(Deployment.TravelMethod.choices)
        statuses = dict(Status.choices)
        rows = (
            self.deployments.annotate(
                departure=d.leaves_on(self.incident.tz),
                n_issued=d.equipment_issued(),
                n_out=d.equipment_out(),
                items=d.items_out(),
            )
            .order_by("request__facility__code", "start", "expert__last_name", "expert__first_name", "pk")
            .values_list(*FIELDS)
        )
        self.stays: list[Stay] = []
        names: dict[str, tuple[str, str]] = {}
        for (
            facility,
            facility_name,
            county,
            first,
            last,
            agency,
            phone,
            role,
            status,
            start,
            departure,
            checked_in_at,
            distance,
            method,
            arranged,
            issued,
            out,
            items,
        ) in rows.iterator(chunk_size=CHUNK):
            names[facility] = (facility_name, county)
            self.stays.append(
                Stay(
                    facility,
                    facility_name,
                    f"{last}, {first}",
                    agency,
                    phone,
                    role,
                    statuses[status],
                    start,
                    max(departure, start),
                    self.incident.local(checked_in_at).replace(tzinfo=None) if checked_in_at else None,
                    distance,
                    methods.get(method, method),
                    arranged,
                    issued,
                    out,
                    items or "",
                )
            )
        start, end = filters.date_range
        today = timezone.localdate(timezone=self.incident.tz)
        self.start = start or min((s.arrival for s in self.stays), default=today)
        self.end = end or max((s.departure for s in self.stays), default=self.start)
        self.facilities = self._tally(names)

    def _tally(self, names: dict[str, tuple[str, str]]) -> dict[str, FacilityTotals]:
        totals: dict[str, FacilityTotals] = {}
        lo, hi = self.start, self.end
        for stay in self.stays:
            name, county = names.get(stay.facility, (stay.facility_name, ""))
            t = totals.setdefault(stay.facility, FacilityTotals(name, county))
            t.people += 1
            t.on_site_now += stay.status == Status.ON_SITE.label
            t.equipment_out += stay.equipment_out
            if lo <= stay.arrival <= hi:
                t.arrivals += 1
                t.days[stay.arrival].arrivals += 1
            if lo <= stay.departure <= hi:
                t.departures += 1
                t.days[stay.departure].departures += 1
            first, last = max(stay.arrival, lo), min(stay.departure, hi)
            for i in range((last - first).days + 1):
                t.days[first + timedelta(days=i)].on_site += 1
            nights = stay.nights(lo, hi)
            t.lodging_nights += len(nights)
            for night in nights:
                t.days[night].beds += 1
        return dict(sorted(totals.items()))

    def people_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        for s in self.stays:
            yield (
                s.facility,
                s.name,
                s.agency,
                s.phone,
                s.role,
                s.status,
                s.arrival,
                s.departure,
                s.checked_in_at,
                s.distance_km,
                s.travel_method,
                suggested_travel(s.distance_km),
                s.travel_arranged,
                s.lodging,
                len(s.nights(self.start, self.end)),
                s.equipment_issued,
                s.equipment_out,
                s.items_out,
            )

    def day_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        cells = [
            (day, code, t.name, counts)
            for code, t in self.facilities.items()
            for day, counts in t.days.items()
        ]
        for day, code, name, c in sorted(cells, key=lambda cell: (cell[0], cell[1])):
            yield (day, code, name, c.arrivals, c.departures, c.on_site, c.beds)

    def facility_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        for code, t in self.facilities.items():
            yield (
                code,
                t.name,
                t.county,
                t.people,
                t.on_site_now,
                t.arrivals,
                t.departures,
                t.lodging_nights,
                t.equipment_out,
            )

    def report(self, *, title: str, generated_at: datetime) -> Report:
        span = f"days {self.start:%Y-%m-%d} – {self.end:%Y-%m-%d}"
        return Report(
            kind="logistics",
            title=title,
            incident=self.incident,
            filters=self.filters.describe(),
            generated_at=generated_at,
            sheets=[
                Sheet(
                    "facilities",
                    "Facilities",
                    FACILITIES,
                    self.facility_rows,
                    note=f"{span}; lodging beyond {LODGING_KM} km, nights arrival to departure eve",
                ),
                Sheet("days", "By day", BY_DAY, self.day_rows, note=span),
                Sheet(
                    "people",
                    "People",
                    PEOPLE,
                    self.people_rows,
                    note=f"suggested travel: drive up to {DRIVE_MAX_KM} km, fly beyond",
                ),
            ],
        )
