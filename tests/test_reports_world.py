"""The reports' fixture world: people on site with hours, expenses and equipment, made with the ORM.

Other tests_reports_* modules import `Costs`, `build_costs` and the helpers below; the tests
here pin the world itself, so a change to it shows up as a failure of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import BytesIO
from typing import Any

import pandas as pd
import pytest
from django.contrib.auth.models import User
from django.http import QueryDict
from django.utils import timezone

from incidents.models import Approval, Deployment, Expense, Facility, TimeEntry
from reports import service
from reports.spec import HEADER_ROW, Report
from reports.writers import write_csv, write_xlsx
from resources.models import Agency, Expert
from tests import factories
from tests.conftest import World

Status = Deployment.Status
START = factories.START
D = Decimal


def on_site(world: World, expert: Expert, *, facility: Facility | None = None, **kwargs: Any) -> Deployment:
    request = (
        world.request
        if facility is None
        else factories.RoleRequestFactory(facility=facility, qualification=world.request.qualification)
    )
    kwargs.setdefault("status", Status.ON_SITE)
    return factories.DeploymentFactory(request=request, expert=expert, **kwargs)


def entry(
    world: World,
    deployment: Deployment,
    day: date,
    regular: str,
    overtime: str = "0",
    status: str = Approval.APPROVED,
) -> TimeEntry:
    approved = status == Approval.APPROVED
    return TimeEntry.objects.create(
        deployment=deployment,
        date=day,
        regular_hours=D(regular),
        overtime_hours=D(overtime),
        status=status,
        approved_by=world.finance if approved else None,
        approved_at=timezone.now() if approved else None,
    )


def expense(
    world: World,
    deployment: Deployment,
    day: date,
    category: str,
    amount: str,
    *,
    status: str = Approval.APPROVED,
    km: float | None = None,
    description: str = "",
) -> Expense:
    approved = status == Approval.APPROVED
    return Expense.objects.create(
        deployment=deployment,
        date=day,
        category=category,
        amount=D(amount),
        distance_km=km,
        description=description,
        status=status,
        approved_by=world.finance if approved else None,
        approved_at=timezone.now() if approved else None,
    )


def query(**params: str | list[str]) -> QueryDict:
    q = QueryDict(mutable=True)
    for name, value in params.items():
        if isinstance(value, list):
            q.setlist(name, value)
        else:
            q[name] = value
    return q


def build(kind: str, user: User | None = None, **params: str | list[str]) -> Report:
    filters = service.prepare(kind, query(**params), user=user)
    return service.build(kind, filters, user=user, now=datetime(2026, 12, 20, 22, 30, tzinfo=timezone.UTC))


def xlsx(report: Report) -> BytesIO:
    out = BytesIO()
    write_xlsx(report, out)
    out.seek(0)
    return out


def sheet(book: BytesIO, name: str) -> pd.DataFrame:
    """One sheet of a workbook as pandas reads it: the header is on row 5, under the title lines."""
    book.seek(0)
    return pd.read_excel(book, sheet_name=name, header=HEADER_ROW, engine="openpyxl")


def csv_bytes(report: Report, sheet: str) -> bytes:
    out = BytesIO()
    write_csv(report, sheet, out)
    return out.getvalue()


# --- The finance world, and its figures computed here, apart from the code under test ------------


def cents(x: Decimal) -> Decimal:
    return x.quantize(D("0.01"), rounding=ROUND_HALF_UP)


@dataclass
class Costs:
    """Expected figures, from the raw rows with the documented formulas."""

    labor: dict[int, dict[str, Decimal]] = field(default_factory=dict)  # time entry id → figures
    by_agency: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    by_day: dict[date, Decimal] = field(default_factory=dict)
    expenses_by_agency: dict[str, Decimal] = field(default_factory=dict)
    expenses_by_day: dict[date, Decimal] = field(default_factory=dict)


def expected_costs(entries: list[TimeEntry], expenses: list[Expense]) -> Costs:
    costs = Costs()
    for e in entries:
        expert = e.deployment.expert
        ot_rate = (expert.hourly_rate * expert.overtime_multiplier).quantize(D("0.01"))
        regular = cents(e.regular_hours * expert.hourly_rate)
        overtime = cents(e.overtime_hours * ot_rate)
        fringe = cents(regular * expert.agency.fringe_rate)
        figures = {
            "regular_hours": e.regular_hours,
            "overtime_hours": e.overtime_hours,
            "hourly_rate": expert.hourly_rate,
            "overtime_rate": ot_rate,
            "regular": regular,
            "overtime": overtime,
            "fringe": fringe,
            "total": regular + overtime + fringe,
        }
        costs.labor[e.pk] = figures
        agency = costs.by_agency.setdefault(expert.agency.name, {k: D(0) for k in figures})
        for k, v in figures.items():
            agency[k] += v
        costs.by_day[e.date] = costs.by_day.get(e.date, D(0)) + figures["total"]
    for x in expenses:
        name = x.deployment.expert.agency.name
        costs.expenses_by_agency[name] = costs.expenses_by_agency.get(name, D(0)) + x.amount
        costs.expenses_by_day[x.date] = costs.expenses_by_day.get(x.date, D(0)) + x.amount
    return costs


@dataclass
class FinanceWorld:
    world: World
    county: Agency
    state: Agency
    carol: Expert
    dave: Expert
    north: Facility
    deployments: list[Deployment]
    approved: list[TimeEntry]
    submitted: list[TimeEntry]
    expenses: list[Expense]
    pending_expense: Expense


def build_finance_world(world: World) -> FinanceWorld:
    """Four people, two agencies, two facilities, rates chosen to hit the rounding edges."""
    county = factories.AgencyFactory(
        code="king-county", name="King County Public Health", fringe_rate=D("0.3250")
    )
    state = factories.AgencyFactory(code="wa-doh", name="WA Department of Health", fringe_rate=D("0.2875"))
    world.alice.agency, world.alice.hourly_rate = county, D("52.01")
    world.alice.save()
    world.bob.agency, world.bob.hourly_rate, world.bob.overtime_multiplier = state, D("47.37"), D("1.75")
    world.bob.save()
    carol = factories.ExpertFactory(
        first_name="Carol", last_name="Diaz", agency=county, hourly_rate=D("61.15")
    )
    dave = factories.ExpertFactory(
        first_name="Dave", last_name="Okafor", agency=state, hourly_rate=D("38.33")
    )
    north = factories.FacilityFactory(incident=world.incident, code="LTC-NORTH", name="Northgate Care")
    a = on_site(world, world.alice)
    b = on_site(world, world.bob)
    c = on_site(world, carol, facility=north)
    d = on_site(world, dave, facility=north, status=Status.RELEASED, travel_arranged=True)
    approved = [
        entry(world, a, START, "0.50"),  # 26.005 → 26.01: half up, not half even
        entry(world, a, START + timedelta(days=1), "10.00", "2.25"),
        entry(world, b, START, "7.75", "3.50"),  # OT rate 47.37 × 1.75 = 82.8975 → 82.90
        entry(world, b, START + timedelta(days=2), "12.00", "0"),
        entry(world, c, START + timedelta(days=1), "8.00", "4.00"),
        entry(world, d, START, "9.25", "1.25"),
    ]
    submitted = [entry(world, c, START + timedelta(days=2), "8.00", "0", status=Approval.SUBMITTED)]
    expenses = [
        expense(world, a, START, Expense.Category.LODGING, "134.00", description="Hotel near facility"),
        expense(world, b, START, Expense.Category.MILEAGE, "36.28", km=83.4, description="Round trip"),
        expense(world, c, START + timedelta(days=1), Expense.Category.PER_DIEM, "69.00"),
    ]
    pending = expense(world, d, START, Expense.Category.OTHER, "12.00", status=Approval.SUBMITTED)
    return FinanceWorld(
        world, county, state, carol, dave, north, [a, b, c, d], approved, submitted, expenses, pending
    )


@pytest.fixture
def fw(world: World) -> FinanceWorld:
    return build_finance_world(world)


def fetch(entries: list[TimeEntry], expenses: list[Expense]) -> tuple[list[TimeEntry], list[Expense]]:
    """The rows as stored, with their people, read fresh."""
    return (
        list(
            TimeEntry.objects.filter(pk__in=[e.pk for e in entries]).select_related(
                "deployment__expert__agency"
            )
        ),
        list(
            Expense.objects.filter(pk__in=[x.pk for x in expenses]).select_related(
                "deployment__expert__agency"
            )
        ),
    )


pytestmark = pytest.mark.django_db


def test_the_world_hits_the_rounding_edges(fw: FinanceWorld) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    half = costs.labor[fw.approved[0].pk]
    assert half["regular"] == D("26.01")  # 0.50 × 52.01 = 26.005, rounded half up
    assert costs.labor[fw.approved[2].pk]["overtime_rate"] == D("82.90")
    assert sum(costs.by_day.values()) == sum(a["total"] for a in costs.by_agency.values())
