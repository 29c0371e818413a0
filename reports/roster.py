"""Roster of an incident: everyone deployed to it, with contact details, agency, role and dates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

from incidents.models import Deployment
from reports.filters import ReportFilterSet, scope
from reports.spec import Column, Kind, Layout, Report, Row, Sheet

if TYPE_CHECKING:
    from incidents.access import Actor

Status = Deployment.Status
CHUNK = 2000


class RosterFilterSet(ReportFilterSet):
    """Deployments whose dates overlap the range, in any state (default: offered to released)."""

    deployment_states = tuple(Status.values)
    status_choices: ClassVar[list[tuple[str, str]]] = list(Status.choices)
    default_status = (Status.OFFERED, Status.ACCEPTED, Status.ON_SITE, Status.RELEASED)
    date_label = "deployments overlapping"

    def filter_from(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return qs.filter(end__gte=value)

    def filter_to(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return qs.filter(start__lte=value)


COLUMNS = [
    Column("name", "Name", Kind.TEXT, 24),
    Column("email", "Email", Kind.TEXT, 28),
    Column("phone", "Phone", Kind.TEXT, 15),
    Column("agency", "Agency", Kind.TEXT, 26),
    Column("home", "Home", Kind.TEXT, 16),
    Column("role", "Role", Kind.TEXT, 22),
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("start", "Start", Kind.DATE, 11),
    Column("end", "End", Kind.DATE, 11),
    Column("status", "Status", Kind.TEXT, 10),
    Column("distance_km", "Distance km", Kind.KM, 10),
]
FIELDS = (
    "expert__first_name",
    "expert__last_name",
    "expert__email",
    "expert__phone",
    "expert__agency__name",
    "expert__home_place",
    "request__qualification__name",
    "request__facility__code",
    "start",
    "end",
    "status",
    "distance_km",
)


class Roster:
    """Who is (or was, or is offered to be) deployed, one row per deployment."""

    def __init__(self, filters: RosterFilterSet, user: Actor | None) -> None:
        assert filters.selected is not None
        self.filters = filters
        self.incident = filters.selected
        self.deployments: QuerySet[Deployment] = filters.filter_queryset(
            scope(user, Deployment.objects.all())
        )

    def rows(self, layout: Layout | None = None) -> Iterator[Row]:
        statuses = dict(Status.choices)
        rows = self.deployments.order_by(
            "expert__last_name", "expert__first_name", "start", "pk"
        ).values_list(*FIELDS)
        for first, last, email, phone, agency, home, role, facility, start, end, status, km in rows.iterator(
            chunk_size=CHUNK
        ):
            yield (
                f"{last}, {first}",
                email,
                phone,
                agency,
                home,
                role,
                facility,
                start,
                end,
                statuses[status],
                km,
            )

    def report(self, *, title: str, generated_at: datetime) -> Report:
        return Report(
            kind="roster",
            title=title,
            incident=self.incident,
            filters=self.filters.describe(),
            generated_at=generated_at,
            sheets=[Sheet("people", "People", COLUMNS, self.rows)],
        )
