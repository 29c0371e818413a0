"""Finance: the FEMA Public Assistance force-account labor summary, expenses and cost burn.

The math (one rule, used by the export, the page and every total):

- regular cost  = regular hours × the expert's hourly rate
- overtime rate = hourly rate × overtime multiplier, to the cent (`Expert.overtime_rate`)
- overtime cost = overtime hours × overtime rate
- fringe        = regular cost × the agency's fringe rate (a fraction of regular pay)
- total         = regular + overtime + fringe

FEMA claims each day worked, so each time entry (one person, one day) is costed and rounded to
the cent (half up, as Excel's ROUND) on its own row of the Labor sheet. Every figure above a row
— per person, per agency and cost code, per day, the grand total — is the sum of those rounded
rows, so the Summary and Daily burn sheets' formulas (SUMPRODUCT/SUMIFS over the Labor and
Expenses sheets) recalculate in Excel and LibreOffice to exactly what the app shows.

By default only approved time and expenses are included (what FEMA reimburses); the status
filter adds submitted or rejected ones, and the title lines say which are in. Rates are the
experts' current rates: the roster keeps no history of rate changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

from incidents.models import Approval, Deployment, Expense, TimeEntry
from reports.filters import ReportFilterSet, scope
from reports.spec import Column, Formula, Kind, Layout, Report, Row, Sheet, excel_row
from resources.models import Expert

if TYPE_CHECKING:
    from incidents.access import Actor

CENT = Decimal("0.01")
ZERO = Decimal("0")
CHUNK = 2000
NO_COST_CODE = "(none)"


def cents(amount: Decimal) -> Decimal:
    """Round money to the cent, half up (what Excel's ROUND and a payroll clerk do)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def overtime_rate(hourly_rate: Decimal, multiplier: Decimal) -> Decimal:
    """The expert's overtime rate, exactly as the roster defines it (`Expert.overtime_rate`)."""
    return Expert(hourly_rate=hourly_rate, overtime_multiplier=multiplier).overtime_rate


@dataclass(frozen=True, slots=True)
class DayCost:
    """The cost of one time entry, each part rounded to the cent; the total is their sum."""

    regular: Decimal
    overtime: Decimal
    fringe: Decimal
    total: Decimal


def day_cost(
    regular_hours: Decimal, overtime_hours: Decimal, hourly: Decimal, overtime: Decimal, fringe_rate: Decimal
) -> DayCost:
    regular = cents(regular_hours * hourly)
    overtime_cost = cents(overtime_hours * overtime)
    fringe = cents(regular * fringe_rate)
    return DayCost(regular, overtime_cost, fringe, regular + overtime_cost + fringe)


@dataclass
class Tally:
    """Hours and money added up over rounded rows."""

    days: int = 0
    regular_hours: Decimal = ZERO
    overtime_hours: Decimal = ZERO
    regular: Decimal = ZERO
    overtime: Decimal = ZERO
    fringe: Decimal = ZERO
    expenses: Decimal = ZERO
    people: set[int] = field(default_factory=set)

    def add(self, regular_hours: Decimal, overtime_hours: Decimal, cost: DayCost) -> None:
        self.days += 1
        self.regular_hours += regular_hours
        self.overtime_hours += overtime_hours
        self.regular += cost.regular
        self.overtime += cost.overtime
        self.fringe += cost.fringe

    def merge(self, other: Tally) -> None:
        """Add another tally's labor (not its expenses) to this one."""
        self.days += other.days
        self.regular_hours += other.regular_hours
        self.overtime_hours += other.overtime_hours
        self.regular += other.regular
        self.overtime += other.overtime
        self.fringe += other.fringe
        self.people |= other.people

    @property
    def labor(self) -> Decimal:
        return self.regular + self.overtime + self.fringe

    @property
    def total(self) -> Decimal:
        return self.labor + self.expenses


@dataclass(frozen=True)
class Who:
    """What every row of one deployment shares: the person, their agency, role, place and rates."""

    expert_id: int
    name: str
    agency: str
    job_title: str
    facility: str
    hourly: Decimal
    overtime_rate: Decimal
    fringe_rate: Decimal


@dataclass
class Person:
    """One deployment's line of the per-person sheet (a person at a facility in a role)."""

    who: Who
    first: date
    last: date
    tally: Tally = field(default_factory=Tally)


class FinanceFilterSet(ReportFilterSet):
    """Time entries and expenses: dates are the days worked or spent; status is their approval."""

    deployment = "deployment__"
    status_choices: ClassVar[list[tuple[str, str]]] = list(Approval.choices)
    default_status = (Approval.APPROVED,)
    date_label = "days"
    status_label = "approval"

    def filter_from(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return qs.filter(date__gte=value)

    def filter_to(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        return qs.filter(date__lte=value)


# Who worked (each labor row and each person row starts with them) and what it cost.
_WHO = [
    Column("name", "Name", Kind.TEXT, 24),
    Column("agency", "Agency", Kind.TEXT, 28),
    Column("cost_code", "Cost code", Kind.TEXT, 16),
    Column("job_title", "Job title", Kind.TEXT, 24),
    Column("facility", "Facility", Kind.TEXT, 14),
]
_PAY = [
    Column("regular_hours", "Regular hours", Kind.HOURS, 9),
    Column("overtime_hours", "Overtime hours", Kind.HOURS, 9),
    Column("hourly_rate", "Hourly rate", Kind.MONEY, 10),
    Column("overtime_rate", "Overtime rate", Kind.MONEY, 10),
    Column("fringe_rate", "Fringe rate", Kind.PERCENT, 9),
    Column("regular_cost", "Regular cost", Kind.MONEY, 12),
    Column("overtime_cost", "Overtime cost", Kind.MONEY, 12),
    Column("fringe_cost", "Fringe cost", Kind.MONEY, 12),
    Column("total_cost", "Total cost", Kind.MONEY, 13),
]
LABOR = [Column("date", "Date", Kind.DATE, 11), *_WHO, *_PAY, Column("status", "Status", Kind.TEXT, 10)]
PEOPLE = [
    *_WHO,
    Column("first_day", "First day", Kind.DATE, 11),
    Column("last_day", "Last day", Kind.DATE, 11),
    Column("days", "Days", Kind.INT, 6),
    *_PAY,
]
EXPENSES = [
    Column("date", "Date", Kind.DATE, 11),
    Column("name", "Name", Kind.TEXT, 24),
    Column("agency", "Agency", Kind.TEXT, 28),
    Column("cost_code", "Cost code", Kind.TEXT, 16),
    Column("facility", "Facility", Kind.TEXT, 14),
    Column("category", "Category", Kind.TEXT, 12),
    Column("description", "Description", Kind.TEXT, 32),
    Column("distance_km", "Distance km", Kind.KM, 10),
    Column("amount", "Amount", Kind.MONEY, 12),
    Column("status", "Status", Kind.TEXT, 10),
]
SUMMARY = [
    Column("agency", "Agency", Kind.TEXT, 28),
    Column("cost_code", "Cost code", Kind.TEXT, 16),
    Column("people", "People", Kind.INT, 8),
    Column("person_days", "Person-days", Kind.INT, 9),
    Column("regular_hours", "Regular hours", Kind.HOURS, 11),
    Column("overtime_hours", "Overtime hours", Kind.HOURS, 11),
    Column("regular_cost", "Regular cost", Kind.MONEY, 14),
    Column("overtime_cost", "Overtime cost", Kind.MONEY, 14),
    Column("fringe_cost", "Fringe cost", Kind.MONEY, 14),
    Column("labor_cost", "Labor cost", Kind.MONEY, 15),
    Column("expenses", "Expenses", Kind.MONEY, 14),
    Column("total", "Total", Kind.MONEY, 15),
]
BURN = [
    Column("date", "Date", Kind.DATE, 11),
    Column("labor_cost", "Labor cost", Kind.MONEY, 14),
    Column("expenses", "Expenses", Kind.MONEY, 14),
    Column("day_total", "Day total", Kind.MONEY, 14),
    Column("cumulative", "Cumulative", Kind.MONEY, 15),
]

# The detail rows carry only their own columns; who, where, in which role and at what rates
# come once per deployment (`_deployments`), not once per row: most of a 100,000-row export's
# database time was Python building the same names and rates again for every row.
LABOR_FIELDS = ("date", "deployment_id", "regular_hours", "overtime_hours", "status")
EXPENSE_FIELDS = ("date", "deployment_id", "category", "description", "distance_km", "amount", "status")
DEPLOYMENT_FIELDS = (
    "pk",
    "expert_id",
    "expert__first_name",
    "expert__last_name",
    "expert__agency__name",
    "expert__agency__fringe_rate",
    "expert__hourly_rate",
    "expert__overtime_multiplier",
    "request__qualification__name",
    "request__facility__code",
)
PERSON_ORDER = ("deployment__expert__last_name", "deployment__expert__first_name", "deployment_id")


class Finance:
    """One pass over the filtered time entries and expenses, tallying as the rows stream out.

    The Labor and Expenses sheets stream from the database in chunks; the other sheets (and the
    page) read the tallies that pass left, so every figure comes from the same rounded rows.
    """

    def __init__(self, filters: FinanceFilterSet, user: Actor | None) -> None:
        self.filters = filters
        assert filters.selected is not None
        self.incident = filters.selected
        self.cost_code = self.incident.cost_code or NO_COST_CODE
        self.entries: QuerySet[TimeEntry] = filters.filter_queryset(scope(user, TimeEntry.objects.all()))
        self.expenses: QuerySet[Expense] = filters.filter_queryset(scope(user, Expense.objects.all()))
        self.user = user
        self._who: dict[int, Who] | None = None
        self.people: dict[int, Person] = {}
        self.agencies: dict[str, Tally] = defaultdict(Tally)
        self.labor_by_day: dict[date, Decimal] = defaultdict(Decimal)
        self.expenses_by_day: dict[date, Decimal] = defaultdict(Decimal)
        self.expenses_by_category: dict[str, Decimal] = defaultdict(Decimal)
        self.expense_count = 0
        self._labor_done = self._expenses_done = False

    # --- the streamed sheets --------------------------------------------------------------------

    def _deployments(self) -> dict[int, Who]:
        """Each deployment of the incident once, with its person's rates (one query)."""
        if self._who is None:
            rows = scope(
                self.user,
                Deployment.objects.filter(
                    request__facility__incident=self.incident, status__in=self.filters.deployment_states
                ),
            ).values_list(*DEPLOYMENT_FIELDS)
            self._who = {}
            for (
                pk,
                expert_id,
                first,
                last,
                agency,
                fringe,
                hourly,
                multiplier,
                title,
                facility,
            ) in rows.iterator(chunk_size=CHUNK):
                ot_rate = overtime_rate(hourly, multiplier)
                self._who[pk] = Who(
                    expert_id, f"{last}, {first}", agency, title, facility, hourly, ot_rate, fringe
                )
        return self._who

    def labor_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        """One row per time entry: the person, the day, the hours and what they cost."""
        if self._labor_done:
            raise RuntimeError("The labor rows are tallied once; build a new Finance to read them again.")
        self._labor_done = True
        who = self._deployments()
        statuses = dict(Approval.choices)
        cost_code = self.cost_code
        people, by_day = self.people, self.labor_by_day
        rows = self.entries.order_by(*PERSON_ORDER, "date").values_list(*LABOR_FIELDS)
        # Rows come person by person, so who they are and their few distinct days' costs are
        # looked up once per person, not once per row. The money is Decimal, rounded to the cent;
        # the row carries it as float (what a spreadsheet cell holds, exact at two decimals), made
        # once per distinct value here rather than once per cell in the writer.
        current: int | None = None
        costs: dict[tuple[Decimal, Decimal], tuple[DayCost, tuple[float, ...]]] = {}
        for day, deployment_id, regular_hours, overtime_hours, status in rows.iterator(chunk_size=CHUNK):
            if deployment_id != current:
                current, costs = deployment_id, {}
                w = who[deployment_id]
                rates = (float(w.hourly), float(w.overtime_rate), float(w.fringe_rate))
                if deployment_id not in people:
                    people[deployment_id] = Person(w, day, day)
                person = people[deployment_id]
                tally = person.tally
            known = costs.get((regular_hours, overtime_hours))
            if known is None:
                cost = day_cost(regular_hours, overtime_hours, w.hourly, w.overtime_rate, w.fringe_rate)
                shown: tuple[float, ...] = (
                    float(regular_hours),
                    float(overtime_hours),
                    *rates,
                    float(cost.regular),
                    float(cost.overtime),
                    float(cost.fringe),
                    float(cost.total),
                )
                known = costs[regular_hours, overtime_hours] = (cost, shown)
            cost, shown = known
            if day < person.first:
                person.first = day
            if day > person.last:
                person.last = day
            tally.add(regular_hours, overtime_hours, cost)
            by_day[day] += cost.total
            yield (day, w.name, w.agency, cost_code, w.job_title, w.facility, *shown, statuses[status])
        for person in people.values():
            agency = self.agencies[person.who.agency]
            agency.merge(person.tally)
            agency.people.add(person.who.expert_id)

    def expense_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        """One row per expense claim."""
        if self._expenses_done:
            raise RuntimeError("The expense rows are tallied once; build a new Finance to read them again.")
        self._expenses_done = True
        who = self._deployments()
        statuses = dict(Approval.choices)
        categories = dict(Expense.Category.choices)
        cost_code = self.cost_code
        rows = self.expenses.order_by(*PERSON_ORDER, "date", "pk").values_list(*EXPENSE_FIELDS)
        for day, deployment_id, category, description, km, amount, status in rows.iterator(chunk_size=CHUNK):
            w = who[deployment_id]
            self.agencies[w.agency].expenses += amount
            self.expenses_by_day[day] += amount
            self.expenses_by_category[categories[category]] += amount
            self.expense_count += 1
            yield (
                day,
                w.name,
                w.agency,
                cost_code,
                w.facility,
                categories[category],
                description,
                km,
                amount,
                statuses[status],
            )

    def run(self) -> Finance:
        """Tally everything without writing it anywhere (the page)."""
        if not self._labor_done:
            for _ in self.labor_rows():
                pass
        if not self._expenses_done:
            for _ in self.expense_rows():
                pass
        return self

    # --- what the tallies add up to -----------------------------------------------------------------

    @property
    def total(self) -> Tally:
        grand = Tally()
        for tally in self.agencies.values():
            grand.days += tally.days
            grand.regular_hours += tally.regular_hours
            grand.overtime_hours += tally.overtime_hours
            grand.regular += tally.regular
            grand.overtime += tally.overtime
            grand.fringe += tally.fringe
            grand.expenses += tally.expenses
            grand.people |= tally.people
        return grand

    def burn(self) -> list[tuple[date, Decimal, Decimal, Decimal, Decimal]]:
        """Per day: labor, expenses, the day's total and the running total."""
        days = sorted(set(self.labor_by_day) | set(self.expenses_by_day))
        running = ZERO
        out = []
        for day in days:
            labor, spent = self.labor_by_day.get(day, ZERO), self.expenses_by_day.get(day, ZERO)
            running += labor + spent
            out.append((day, labor, spent, labor + spent, running))
        return out

    def people_rows(self, layout: Layout | None = None) -> Iterator[Row]:
        people = sorted(self.people.values(), key=lambda p: (p.who.name, p.who.facility, p.first))
        for p in people:
            t, w = p.tally, p.who
            yield (
                w.name,
                w.agency,
                self.cost_code,
                w.job_title,
                w.facility,
                p.first,
                p.last,
                t.days,
                t.regular_hours,
                t.overtime_hours,
                w.hourly,
                w.overtime_rate,
                w.fringe_rate,
                t.regular,
                t.overtime,
                t.fringe,
                t.labor,
            )

    def summary_rows(self, layout: Layout) -> Iterator[Row]:
        """Per agency and cost code, as formulas over the Labor and Expenses sheets."""

        def labor(column: str) -> str:
            return layout.range("labor", column)

        def spent(column: str) -> str:
            return layout.range("expenses", column)

        agencies = sorted(self.agencies.items())
        for i, (agency, t) in enumerate(agencies):
            n = excel_row(i)
            # SUMPRODUCT compares exactly (SUMIFS would read * ? ~ < > = in a name as patterns).
            match = f"({labor('agency')}=$A{n})*({labor('cost_code')}=$B{n})"
            match_spent = f"({spent('agency')}=$A{n})*({spent('cost_code')}=$B{n})"
            yield (
                agency,
                self.cost_code,
                len(t.people),
                Formula(f"=SUMPRODUCT({match})", t.days),
                Formula(f"=SUMPRODUCT({match}*{labor('regular_hours')})", t.regular_hours),
                Formula(f"=SUMPRODUCT({match}*{labor('overtime_hours')})", t.overtime_hours),
                Formula(f"=SUMPRODUCT({match}*{labor('regular_cost')})", t.regular),
                Formula(f"=SUMPRODUCT({match}*{labor('overtime_cost')})", t.overtime),
                Formula(f"=SUMPRODUCT({match}*{labor('fringe_cost')})", t.fringe),
                Formula(f"=G{n}+H{n}+I{n}", t.labor),
                Formula(f"=SUMPRODUCT({match_spent}*{spent('amount')})", t.expenses),
                Formula(f"=J{n}+K{n}", t.total),
            )
        grand = self.total
        first, last = excel_row(0), excel_row(max(len(agencies), 1) - 1)

        def column_sum(letter: str, value: Decimal | int) -> Formula:
            return Formula(f"=SUM({letter}{first}:{letter}{last})", value)

        yield (
            "All agencies",
            self.cost_code,
            column_sum("C", len(grand.people)),
            column_sum("D", grand.days),
            column_sum("E", grand.regular_hours),
            column_sum("F", grand.overtime_hours),
            column_sum("G", grand.regular),
            column_sum("H", grand.overtime),
            column_sum("I", grand.fringe),
            column_sum("J", grand.labor),
            column_sum("K", grand.expenses),
            column_sum("L", grand.total),
        )

    def burn_rows(self, layout: Layout) -> Iterator[Row]:
        """Per day, as SUMIFS over the two detail sheets, a day total and a running total."""
        labor_total, labor_date = layout.range("labor", "total_cost"), layout.range("labor", "date")
        amount, spent_date = layout.range("expenses", "amount"), layout.range("expenses", "date")
        for i, (day, labor, spent, day_total, running) in enumerate(self.burn()):
            n = excel_row(i)
            yield (
                day,
                Formula(f"=SUMIFS({labor_total},{labor_date},$A{n})", labor),
                Formula(f"=SUMIFS({amount},{spent_date},$A{n})", spent),
                Formula(f"=B{n}+C{n}", day_total),
                Formula(f"=D{n}" if i == 0 else f"=E{n - 1}+D{n}", running),
            )

    # --- the report -------------------------------------------------------------------------------------

    def report(self, *, title: str, generated_at: datetime) -> Report:
        return Report(
            kind="finance",
            title=title,
            incident=self.incident,
            filters=self.filters.describe(),
            generated_at=generated_at,
            sheets=[
                Sheet(
                    "summary",
                    "Summary",
                    SUMMARY,
                    self.summary_rows,
                    after=("labor", "expenses"),
                    note="formulas over the Labor and Expenses sheets",
                ),
                Sheet(
                    "labor",
                    "Labor",
                    LABOR,
                    self.labor_rows,
                    note="one row per person per day; costs rounded to the cent per row",
                ),
                Sheet("people", "By person", PEOPLE, self.people_rows, after=("labor",)),
                Sheet("expenses", "Expenses", EXPENSES, self.expense_rows),
                Sheet("burn", "Daily burn", BURN, self.burn_rows, after=("labor", "expenses")),
            ],
        )
