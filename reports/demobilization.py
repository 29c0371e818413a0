"""Demobilization (ICS 221 check-out): who is released or due for release, and what still blocks it.

One row per deployment accepted, on site or released, dated by its release day: the day the
person was released (in the incident's time zone) or, until then, the planned release (the
deployment's planned release if set, else its last day). The date filter selects on that day.
Each row carries the check-out items — equipment returned, time approved, travel arranged —
and the blockers in the words `incidents.workflow.release_blockers` uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

from incidents.models import Deployment
from reports import deployments as d
from reports.filters import ReportFilterSet, scope
from reports.spec import Column, Kind, Layout, Report, Row, Sheet

if TYPE_CHECKING:
    from incidents.access import Actor

Status = Deployment.Status
CHUNK = 2000


class DemobilizationFilterSet(ReportFilterSet):
    """Deployments by release day (released, or planned release) and deployment status."""

    status_choices: ClassVar[list[tuple[str, str]]] = [
        (s.value, str(s.label)) for s in (Status.ACCEPTED, Status.ON_SITE, Status.RELEASED)
    ]
    default_status = (Status.ACCEPTED, Status.ON_SITE, Status.RELEASED)
    date_label = "release day"

    def filter_from(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        assert self.selected is not None
        narrowed: QuerySet[Any] = qs.alias(release_day=d.leaves_on(self.selected.tz))
        return narrowed.filter(release_day__gte=value)

    def filter_to(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        assert self.selected is not None
        narrowed: QuerySet[Any] = qs.alias(release_day=d.leaves_on(self.selected.tz))
        return narrowed.filter(release_day__lte=value)


COLUMNS = [
    Column("release_day", "Release day", Kind.DATE, 11),
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("name", "Name", Kind.TEXT, 24),
    Column("agency", "Agency", Kind.TEXT, 26),
    Column("role", "Role", Kind.TEXT, 22),
    Column("start", "Start", Kind.DATE, 11),
    Column("planned_release", "Planned release", Kind.DATE, 11),
    Column("status", "Status", Kind.TEXT, 10),
    Column("equipment_out", "Equipment not returned", Kind.INT, 10),
    Column("items_out", "Items not returned", Kind.TEXT, 30),
    Column("time_not_approved", "Time entries not approved", Kind.INT, 10),
    Column("travel_arranged", "Travel arranged", Kind.BOOL, 9),
    Column("blockers", "Still blocking release", Kind.TEXT, 40),
    Column("ready", "Ready for release", Kind.BOOL, 9),
    Column("released_at", "Released at", Kind.DATETIME, 16),
]
FIELDS = (
    "release_day",
    "request__facility__code",
    "expert__first_name",
    "expert__last_name",
    "expert__agency__name",
    "request__qualification__name",
    "start",
    "planned",
    "status",
    "n_equipment_out",
    "items",
    "n_not_approved",
    "travel_arranged",
    "released_at",
)


class Demobilization:
    """The check-out list: one query, streamed in chunks."""

    def __init__(self, filters: DemobilizationFilterSet, user: Actor | None) -> None:
        assert filters.selected is not None
        self.filters = filters
        self.incident = filters.selected
        self.deployments: QuerySet[Deployment] = filters.filter_queryset(
            scope(user, Deployment.objects.all())
        )

    def queryset(self) -> QuerySet[Deployment, tuple[Any, ...]]:
        return (
            self.deployments.annotate(
                release_day=d.leaves_on(self.incident.tz),
                planned=d.planned_release(),
                n_equipment_out=d.equipment_out(),
                items=d.items_out(),
                n_not_approved=d.time_not_approved(),
            )
            .order_by(
                "release_day", "request__facility__code", "expert__last_name", "expert__first_name", "pk"
            )
            .values_list(*FIELDS)
        )

    def rows(self, layout: Layout | None = None) -> Iterator[Row]:
        statuses = dict(Status.choices)
        for (
            release_day,
            facility,
            first,
            last,
            agency,
            role,
            start,
            planned,
            status,
            n_out,
            items,
            n_not_approved,
            travel,
            released_at,
        ) in self.queryset().iterator(chunk_size=CHUNK):
            released = status == Status.RELEASED
            blocking = [] if released else d.blockers(n_out, n_not_approved, travel)
            yield (
                release_day,
                facility,
                f"{last}, {first}",
                agency,
                role,
                start,
                planned,
                statuses[status],
                n_out,
                items or "",
                n_not_approved,
                travel,
                "; ".join(blocking),
                status == Status.ON_SITE and not blocking,
                self.incident.local(released_at).replace(tzinfo=None) if released_at else None,
            )

    def report(self, *, title: str, generated_at: datetime) -> Report:
        return Report(
            kind="demobilization",
            title=title,
            incident=self.incident,
            filters=self.filters.describe(),
            generated_at=generated_at,
            sheets=[
                Sheet(
                    "checkout",
                    "Check-out",
                    COLUMNS,
                    self.rows,
                    note="release day: the day released, else the planned release",
                )
            ],
        )
