"""The one way into a report for every door (page, API, command): check, then build.

`prepare` validates the parameters and the asker's right; `build` returns the `Report` the
writers write and the pages render. Who may read what:

- finance: superusers, the incident's commanders and finance officers (`can_approve_costs`);
- demobilization, logistics, roster: every member of the incident (commander, finance, viewer).

Someone who cannot see the incident (a responder, an outsider) is told it does not exist;
a member without the right is told why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.http import QueryDict
from django.utils import timezone

from deploy_tracker.errors import DomainError, InvalidInput, NotAllowed
from incidents import access
from incidents.models import Incident
from reports.demobilization import Demobilization, DemobilizationFilterSet
from reports.filters import ReportFilterSet
from reports.finance import Finance, FinanceFilterSet
from reports.logistics import Logistics, LogisticsFilterSet
from reports.roster import Roster, RosterFilterSet
from reports.spec import Report

if TYPE_CHECKING:
    from incidents.access import Actor


class ReportNotFound(DomainError):
    """No such report, or no such incident that the asker can see."""

    code = "not_found"
    http_status = 404
    exit_code = 2


@dataclass(frozen=True)
class ReportKind:
    """One report: its name, filters, builder, readers and sheets (the first is CSV's default)."""

    key: str
    title: str
    filterset: type[ReportFilterSet]
    build: Callable[[Any, Actor | None, datetime], Report]
    allowed: Callable[[Actor, Incident], bool]
    readers: str
    sheets: tuple[str, ...]


def _finance(filters: FinanceFilterSet, user: Actor | None, now: datetime) -> Report:
    approved_only = list(filters.cleaned.get("status") or ()) == ["approved"]
    title = "Force-account labor summary (FEMA)" + (", approved time and expenses" if approved_only else "")
    return Finance(filters, user).report(title=title, generated_at=now)


def _demobilization(filters: DemobilizationFilterSet, user: Actor | None, now: datetime) -> Report:
    return Demobilization(filters, user).report(title="Demobilization check-out (ICS 221)", generated_at=now)


def _logistics(filters: LogisticsFilterSet, user: Actor | None, now: datetime) -> Report:
    return Logistics(filters, user).report(title="Logistics (ICS 204/211)", generated_at=now)


def _roster(filters: RosterFilterSet, user: Actor | None, now: datetime) -> Report:
    return Roster(filters, user).report(title="Roster", generated_at=now)


KINDS: dict[str, ReportKind] = {
    kind.key: kind
    for kind in (
        ReportKind(
            "finance",
            "Finance",
            FinanceFilterSet,
            _finance,
            access.can_approve_costs,
            "finance officers and commanders",
            ("labor", "people", "expenses", "summary", "burn"),
        ),
        ReportKind(
            "demobilization",
            "Demobilization",
            DemobilizationFilterSet,
            _demobilization,
            access.can_view_incident,
            "members",
            ("checkout",),
        ),
        ReportKind(
            "logistics",
            "Logistics",
            LogisticsFilterSet,
            _logistics,
            access.can_view_incident,
            "members",
            ("people", "days", "facilities"),
        ),
        ReportKind(
            "roster", "Roster", RosterFilterSet, _roster, access.can_view_incident, "members", ("people",)
        ),
    )
}
FORMATS = ("xlsx", "csv")


def kind_of(key: str) -> ReportKind:
    try:
        return KINDS[key]
    except KeyError:
        raise ReportNotFound(f"No report {key!r}; there are {', '.join(KINDS)}.") from None


def filterset(key: str, data: QueryDict | None, *, user: Actor | None) -> ReportFilterSet:
    """The report's filters bound to `data` (the page renders it, errors and all)."""
    return kind_of(key).filterset(data, user=user)


def check(key: str, filters: ReportFilterSet, *, user: Actor | None) -> None:
    """Refuse bad parameters (naming the first one), unseen incidents and readers without the right."""
    kind = kind_of(key)
    if not filters.is_valid():
        errors = filters.errors
        number = filters.data.get("incident")
        if "incident" in errors and number and filters.selected is None:
            raise ReportNotFound(f"No incident {number!r} that you can see.")
        name, messages = next(iter(errors.items()))
        raise InvalidInput(f"{name}: {' '.join(messages)}", field=name)
    start, end = filters.date_range
    if start and end and end < start:
        raise InvalidInput(f"to: {end} is before from ({start}).", field="to")
    incident = filters.selected
    assert incident is not None  # a valid form found it
    if user is not None and not kind.allowed(user, incident):
        raise NotAllowed(f"The {kind.key} report of {incident.number} is for its {kind.readers}.")


def prepare(key: str, data: QueryDict | None, *, user: Actor | None) -> ReportFilterSet:
    filters = filterset(key, data, user=user)
    check(key, filters, user=user)
    return filters


def build(key: str, filters: ReportFilterSet, *, user: Actor | None, now: datetime | None = None) -> Report:
    """The report for checked filters; its rows are read as it is written."""
    return kind_of(key).build(filters, user, now or timezone.now())


def sheet_for(key: str, sheet: str | None) -> str:
    """The sheet a CSV file holds: the one asked for, else the report's main sheet."""
    sheets = kind_of(key).sheets
    if sheet is None or sheet == "":
        return sheets[0]
    if sheet not in sheets:
        raise InvalidInput(f"sheet: choose one of {', '.join(sheets)}.", field="sheet")
    return sheet
