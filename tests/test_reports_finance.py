"""Finance report: the workbook and CSV round-trip to the figures computed here from the raw rows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import openpyxl
import pandas as pd
import pytest
from django.test import Client
from django.urls import reverse

from incidents.models import Approval
from reports.finance import Finance, day_cost
from reports.spec import FIRST_ROW, HEADER_ROW
from tests import factories
from tests.conftest import World
from tests.test_reports_world import (
    START,
    FinanceWorld,
    build,
    csv_bytes,
    entry,
    expected_costs,
    fetch,
    on_site,
    sheet,
    xlsx,
)
from tests.test_reports_world import fw as fw  # the fixture

pytestmark = pytest.mark.django_db
D = Decimal
HEADER = HEADER_ROW  # pandas' header row (0-based)


def money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_labor_sheet_round_trips_to_the_figures_of_each_day(fw: FinanceWorld) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    frame = sheet(xlsx(build("finance", incident="WA-2026-01")), "Labor")
    assert len(frame) == len(fw.approved)  # the submitted entry is left out by default
    by_key = {
        (f"{e.deployment.expert.last_name}, {e.deployment.expert.first_name}", e.date): e for e in entries
    }
    for row in frame.itertuples(index=False):
        e = by_key[(row[1], row[0].date())]
        want = costs.labor[e.pk]
        assert D(str(row[6])) == want["regular_hours"] and D(str(row[7])) == want["overtime_hours"]
        assert money(row[8]) == want["hourly_rate"] and money(row[9]) == want["overtime_rate"]
        assert D(str(row[10])) == e.deployment.expert.agency.fringe_rate
        assert (money(row[11]), money(row[12]), money(row[13]), money(row[14])) == (
            want["regular"],
            want["overtime"],
            want["fringe"],
            want["total"],
        )
        assert row[15] == "Approved" and row[3] == "(none)"
    assert list(frame.columns) == [
        "Date",
        "Name",
        "Agency",
        "Cost code",
        "Job title",
        "Facility",
        "Regular hours",
        "Overtime hours",
        "Hourly rate",
        "Overtime rate",
        "Fringe rate",
        "Regular cost",
        "Overtime cost",
        "Fringe cost",
        "Total cost",
        "Status",
    ]


def test_summary_formulas_and_their_values_match_independent_totals(fw: FinanceWorld) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    book = xlsx(build("finance", incident="WA-2026-01"))
    values = openpyxl.load_workbook(book, data_only=True)["Summary"]
    book.seek(0)
    formulas = openpyxl.load_workbook(book)["Summary"]
    first = FIRST_ROW + 1
    header = [c.value for c in values[FIRST_ROW]]
    assert header[:3] == ["Agency", "Cost code", "People"]
    last_labor = first + len(fw.approved) - 1
    grand = {k: D(0) for k in ("regular", "overtime", "fringe", "total", "expenses")}
    for n, agency in enumerate(sorted(costs.by_agency), start=first):
        want = costs.by_agency[agency]
        spent = costs.expenses_by_agency.get(agency, D(0))
        row = [c.value for c in values[n]]
        assert row[0] == agency
        assert [money(v) for v in row[6:9]] == [want["regular"], want["overtime"], want["fringe"]]
        assert money(row[9]) == want["total"] and money(row[10]) == spent
        assert money(row[11]) == want["total"] + spent
        for k in ("regular", "overtime", "fringe", "total"):
            grand[k] += want[k]
        grand["expenses"] += spent
        # The formulas name the Labor sheet's exact data range and this row's keys.
        regular = formulas.cell(n, 7).value
        assert regular == (
            f"=SUMPRODUCT(('Labor'!$C${first}:$C${last_labor}=$A{n})*('Labor'!$D${first}:$D${last_labor}=$B{n})"
            f"*'Labor'!$L${first}:$L${last_labor})"
        )
        assert formulas.cell(n, 10).value == f"=G{n}+H{n}+I{n}"
        assert "'Expenses'!$I$" in formulas.cell(n, 11).value
    total_row = first + len(costs.by_agency)
    assert values.cell(total_row, 1).value == "All agencies"
    assert money(values.cell(total_row, 12).value) == grand["total"] + grand["expenses"]
    assert formulas.cell(total_row, 12).value == f"=SUM(L{first}:L{total_row - 1})"


def test_daily_burn_adds_labor_and_expenses_per_day_and_runs_a_total(fw: FinanceWorld) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    frame = sheet(xlsx(build("finance", incident="WA-2026-01")), "Daily burn")
    days = sorted(set(costs.by_day) | set(costs.expenses_by_day))
    running = D(0)
    assert [d.date() for d in frame["Date"]] == days
    for row, day in zip(frame.itertuples(index=False), days, strict=True):
        labor, spent = costs.by_day.get(day, D(0)), costs.expenses_by_day.get(day, D(0))
        running += labor + spent
        assert (money(row[1]), money(row[2]), money(row[3]), money(row[4])) == (
            labor,
            spent,
            labor + spent,
            running,
        )


def test_per_person_sheet_sums_the_rounded_days(fw: FinanceWorld) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    frame = sheet(xlsx(build("finance", incident="WA-2026-01")), "By person")
    alice = frame[frame["Name"] == "Lee, Alice"].iloc[0]
    mine = [costs.labor[e.pk] for e in entries if e.deployment.expert_id == fw.world.alice.pk]
    assert money(alice["Total cost"]) == sum(m["total"] for m in mine)
    assert alice["Days"] == 2 and alice["First day"].date() == START
    assert money(frame["Total cost"].sum()) == sum(c["total"] for c in costs.labor.values())


def test_costs_round_half_up_per_row_and_fringe_is_a_share_of_regular_pay() -> None:
    cost = day_cost(D("0.50"), D("1.00"), D("52.01"), D("78.02"), D("0.3250"))
    assert cost.regular == D("26.01")  # 26.005
    assert cost.fringe == D("8.45")  # 26.01 × 0.325 = 8.45325
    assert cost.total == D("26.01") + D("78.02") + D("8.45")


def test_submitted_time_is_in_only_when_asked_for_and_the_title_says_which(fw: FinanceWorld) -> None:
    default = build("finance", incident="WA-2026-01")
    assert "approved time and expenses" in default.title
    assert "approval Approved" in default.filters
    report = build("finance", incident="WA-2026-01", status=[Approval.APPROVED, Approval.SUBMITTED])
    frame = sheet(xlsx(report), "Labor")
    assert len(frame) == len(fw.approved) + len(fw.submitted)
    assert set(frame["Status"]) == {"Approved", "Submitted"}
    assert "approved time" not in report.title


def test_facility_agency_and_dates_narrow_every_sheet(fw: FinanceWorld) -> None:
    by_facility = sheet(xlsx(build("finance", incident="WA-2026-01", facility="LTC-NORTH")), "Labor")
    assert set(by_facility["Facility"]) == {"LTC-NORTH"}
    by_agency = build("finance", incident="WA-2026-01", agency="wa-doh")
    frame = sheet(xlsx(by_agency), "Labor")
    assert set(frame["Agency"]) == {"WA Department of Health"}
    spent = sheet(xlsx(build("finance", incident="WA-2026-01", agency="wa-doh")), "Expenses")
    assert list(spent["Category"]) == ["Mileage"]
    one_day = build("finance", **{"incident": "WA-2026-01", "from": str(START), "to": str(START)})
    frame = sheet(xlsx(one_day), "Labor")
    assert {d.date() for d in frame["Date"]} == {START}


def test_csv_is_utf8_with_bom_and_round_trips(fw: FinanceWorld) -> None:
    fw.world.alice.first_name = "Alicía"
    fw.world.alice.save()
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    data = csv_bytes(build("finance", incident="WA-2026-01"), "labor")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    frame = pd.read_csv(StringIO(data.decode("utf-8-sig")), dtype=str)
    assert frame.columns[0] == "Date" and len(frame) == len(fw.approved)
    assert "Lee, Alicía" in set(frame["Name"])
    assert sum(D(v) for v in frame["Total cost"]) == sum(c["total"] for c in costs.labor.values())
    summary = pd.read_csv(
        StringIO(csv_bytes(build("finance", incident="WA-2026-01"), "summary").decode("utf-8-sig"))
    )
    total = summary[summary["Agency"] == "All agencies"].iloc[0]
    assert money(total["Total"]) == sum(c["total"] for c in costs.labor.values()) + sum(
        costs.expenses_by_agency.values()
    )


def test_the_page_shows_the_same_totals_as_the_workbook(fw: FinanceWorld, client: Client) -> None:
    entries, expenses = fetch(fw.approved, fw.expenses)
    costs = expected_costs(entries, expenses)
    labor = sum(c["total"] for c in costs.labor.values())
    spent = sum(costs.expenses_by_agency.values())
    client.force_login(fw.world.finance)
    page = client.get(reverse("report", args=["finance"]), {"incident": "WA-2026-01"})
    assert page.status_code == 200
    html = page.content.decode()
    assert re.search(rf'id="total-cost"><strong>\${labor + spent:,.2f}</strong>', html)
    assert f"${labor:,.2f}" in html
    assert '<svg class="burn"' in html and '<title id="burn-title">Daily cost burn</title>' in html
    assert 'id="burn-table"' in html  # the table fallback
    assert "/api/reports/finance/?incident=WA-2026-01&amp;format=xlsx" in html
    assert "sheet=expenses" in html


def _grow(world: World, people: int) -> None:
    facility = world.request.facility
    for i in range(people):
        expert = factories.ExpertFactory(
            agency=factories.AgencyFactory(code=f"ag-{i % 7}", name=f"Agency {i % 7}")
        )
        d = on_site(world, expert, facility=facility if i % 2 else None)
        for day in range(3):
            entry(world, d, START + timedelta(days=day), "8.00", "1.00")


@pytest.mark.parametrize("people", [5, 50])
def test_the_export_takes_the_same_queries_for_5_or_50_people(
    world: World, people: int, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    _grow(world, people)
    # incident, facilities, agencies (the form's choices), incident (form validation), the
    # asker's role, the deployments (names, roles, rates), labor rows, expense rows
    with django_assert_max_num_queries(8):
        report = build("finance", world.finance, incident="WA-2026-01")
        xlsx(report)
    frame = sheet(xlsx(build("finance", world.finance, incident="WA-2026-01")), "Labor")
    assert len(frame) == people * 3


@pytest.mark.parametrize("people", [5, 50])
def test_the_page_takes_the_same_queries_for_5_or_50_people(
    world: World, client: Client, people: int, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    _grow(world, people)
    client.force_login(world.finance)
    # session, user, incident, facilities, agencies, incident (form validation), role, the
    # deployments, labor rows, expense rows, and the incidents of the form's select (twice)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("report", args=["finance"]), {"incident": "WA-2026-01"}).status_code == 200


def test_finance_reads_only_what_the_asker_may_see(fw: FinanceWorld) -> None:
    # A responder never gets this far (the API and page refuse them), but the queries are
    # scoped anyway: through visible(), Alice would only ever see her own rows.
    from reports.finance import FinanceFilterSet
    from tests.test_reports_world import query

    filters = FinanceFilterSet(query(incident="WA-2026-01"), user=fw.world.superuser)
    assert filters.is_valid()
    as_alice = Finance(filters, fw.world.alice_user)
    assert {row[1] for row in as_alice.labor_rows()} == {"Lee, Alice"}
    everyone = Finance(filters, fw.world.superuser)
    assert len(list(everyone.labor_rows())) == len(fw.approved)


def test_an_empty_selection_still_writes_a_finished_workbook(world: World) -> None:
    book = xlsx(build("finance", incident="WA-2026-01"))
    summary = openpyxl.load_workbook(book, data_only=True)["Summary"]
    assert summary.cell(FIRST_ROW + 1, 1).value == "All agencies"
    assert summary.cell(FIRST_ROW + 1, 12).value == 0
    book.seek(0)
    assert openpyxl.load_workbook(book).sheetnames == [
        "Summary",
        "Labor",
        "By person",
        "Expenses",
        "Daily burn",
    ]
