"""The two writers every report shares: a finished xlsx workbook and a UTF-8 CSV file.

Workbook (XlsxWriter in constant-memory mode: each row goes to disk as it is written, so memory
stays flat whatever the size): on every sheet a title row naming the incident, a line with the
filters applied, the generation time in the incident's time zone, then a bold header that stays
frozen with an autofilter, column widths, and date, hour, percent and currency formats.

CSV: one sheet of the report, header first and rows after it (no title lines, so any tool
reads it as a table), UTF-8 with a byte-order mark so Excel opens accents correctly, CRLF lines.

Both pass every text cell through `neutralise` (spreadsheet formula injection), and both take
an optional `progress(sheet key, rows written)`, told every PROGRESS_ROWS rows and at the end of
each sheet (a background export reports through it). Without it the row loops are as they were.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from typing import IO, Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from reports.spec import FIRST_ROW, HEADER_ROW, Cell, Formula, Kind, Layout, Report, Row, Sheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# How often a writer tells its `progress` how far it got, in rows: often enough for a bar that
# moves, rarely enough to cost nothing (the callback runs between blocks, not in the row loop).
PROGRESS_ROWS = 1_000

Progress = Callable[[str, int], None]  # (sheet key, rows of that sheet written so far)


def _blocks(rows: Iterable[Row], progress: Progress | None) -> Iterator[Iterable[Row]]:
    """The rows in one piece without `progress`, else an empty block (the sheet begins) and then
    blocks of PROGRESS_ROWS."""
    if progress is None:
        yield rows
        return
    yield []
    them = iter(rows)
    while block := list(islice(them, PROGRESS_ROWS)):
        yield block


def neutralise(text: str) -> str:
    """Make text a spreadsheet could run as a formula inert, by prefixing a single quote.

    OWASP, "CSV Injection": a cell that begins with = + - @, a tab or a carriage return may be
    taken for a formula (`=HYPERLINK(…)`, `=cmd|' /C calc'!A0`) when a person opens the file or
    re-saves it. Names, descriptions and notes are typed by people, so every text cell of every
    export — data, headers and title lines, in the workbook and in CSV — goes through here. The
    quote stays visible: the cell shows the text as typed, and nothing runs. Numbers, dates and
    the report's own formulas are not text cells and are left alone.
    """
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


# --- Workbook --------------------------------------------------------------------------------

NUMBER_FORMATS = {
    Kind.INT: "#,##0",
    Kind.HOURS: "#,##0.00",
    Kind.KM: "#,##0.0",
    Kind.MONEY: "$#,##0.00",
    Kind.PERCENT: "0.00%",
    Kind.DATE: "yyyy-mm-dd",
    Kind.DATETIME: "yyyy-mm-dd hh:mm",
}

Put = Callable[[int, int, Any], object]


def _putter(ws: Worksheet, kind: Kind, fmt: Format | None) -> Put:
    """The fastest correct call for one column's cells (write() would guess, and run `=` text)."""
    if kind is Kind.TEXT:
        return lambda r, c, v: ws.write_string(r, c, neutralise(v), fmt)
    if kind is Kind.BOOL:
        return lambda r, c, v: ws.write_string(r, c, "Yes" if v else "No", fmt)
    if kind in (Kind.DATE, Kind.DATETIME):
        return lambda r, c, v: ws.write_datetime(r, c, v, fmt)

    def number(r: int, c: int, v: Any) -> object:
        if type(v) is float:  # the common case first: big sheets hand over floats
            return ws.write_number(r, c, v, fmt)
        if type(v) is Formula:
            return ws.write_formula(r, c, v.text, fmt, float(v.value))
        return ws.write_number(r, c, float(v), fmt)

    return number


def write_xlsx(
    report: Report, target: str | IO[bytes], *, progress: Progress | None = None
) -> dict[str, int]:
    """Write every sheet of `report` to `target` (a path or a binary file); rows per sheet."""
    workbook = xlsxwriter.Workbook(target, {"constant_memory": True})
    workbook.set_properties(
        {
            "title": f"{report.incident.number} {report.title}",
            "subject": report.filters,
            "author": "Deploy Tracker",
            "created": report.generated_at.replace(tzinfo=None),
        }
    )
    title = workbook.add_format({"bold": True, "font_size": 14})
    muted = workbook.add_format({"font_color": "#5b6470"})
    header = workbook.add_format(
        {"bold": True, "bg_color": "#e8edf3", "bottom": 1, "text_wrap": True, "valign": "top"}
    )
    formats: dict[Kind, Format | None] = {kind: None for kind in Kind}
    for kind, code in NUMBER_FORMATS.items():
        formats[kind] = workbook.add_format({"num_format": code})
    # Worksheets are added in the report's order (the tabs), then written in dependency order.
    sheets = {sheet.key: workbook.add_worksheet(sheet.name) for sheet in report.sheets}
    layout = Layout()
    counts: dict[str, int] = {}
    for sheet in _in_dependency_order(report):
        counts[sheet.key] = _write_sheet(
            report, sheet, sheets[sheet.key], layout, title, muted, header, formats, progress
        )
    workbook.close()
    return counts


def _write_sheet(
    report: Report,
    sheet: Sheet,
    ws: Worksheet,
    layout: Layout,
    title: Format,
    muted: Format,
    header: Format,
    formats: dict[Kind, Format | None],
    progress: Progress | None = None,
) -> int:
    columns = sheet.columns
    for c, column in enumerate(columns):
        ws.set_column(c, c, column.width, formats[column.kind])
    ws.set_row(0, 20)
    for r, line in enumerate(report.title_lines(sheet)):
        ws.write_string(r, 0, neutralise(line), title if r == 0 else muted)
    ws.set_row(HEADER_ROW, 30)
    for c, column in enumerate(columns):
        ws.write_string(HEADER_ROW, c, neutralise(column.header), header)
    ws.freeze_panes(FIRST_ROW, 0)
    ws.repeat_rows(HEADER_ROW)
    ws.set_landscape()
    ws.fit_to_pages(1, 0)
    put = [_putter(ws, column.kind, formats[column.kind]) for column in columns]
    r = FIRST_ROW
    for block in _blocks(sheet.rows(layout), progress):
        for row in block:
            for c, value in enumerate(row):
                if value is not None:
                    put[c](r, c, value)
            r += 1
        if progress is not None:
            progress(sheet.key, r - FIRST_ROW)
    rows = r - FIRST_ROW
    ws.autofilter(HEADER_ROW, 0, max(HEADER_ROW, r - 1), len(columns) - 1)
    layout.done(sheet, rows)
    return rows


def _in_dependency_order(report: Report) -> list[Sheet]:
    ordered: list[Sheet] = []

    def visit(sheet: Sheet) -> None:
        if sheet in ordered:
            return
        for key in sheet.after:
            visit(report.sheet(key))
        ordered.append(sheet)

    for sheet in report.sheets:
        visit(sheet)
    return ordered


# --- CSV -----------------------------------------------------------------------------------------


def _csv_text(kind: Kind) -> Callable[[Cell], str]:
    """How one column's values read in CSV: the same figures the workbook holds."""
    if kind is Kind.TEXT:
        return lambda v: neutralise(str(v))
    if kind is Kind.BOOL:
        return lambda v: "Yes" if v else "No"
    if kind is Kind.DATE:
        return lambda v: v.isoformat() if isinstance(v, date) else str(v)
    if kind is Kind.DATETIME:
        return lambda v: v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else str(v)
    places = {Kind.INT: 0, Kind.HOURS: 2, Kind.KM: 1, Kind.MONEY: 2, Kind.PERCENT: 4}[kind]

    def number(v: Cell) -> str:
        if isinstance(v, Formula):
            v = v.value
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v) if kind is Kind.INT else f"{Decimal(v):.{places}f}"
        if isinstance(v, (Decimal, float)):
            return f"{v:.{places}f}"
        return str(v)

    return number


def write_csv(report: Report, key: str, target: IO[bytes], *, progress: Progress | None = None) -> int:
    """Write one sheet of `report` as CSV (UTF-8 with BOM) to a binary file; the row count."""
    sheet = report.sheet(key)
    layout = Layout()
    for dependency in _in_dependency_order(report):
        if dependency is sheet:
            break
        if dependency.key in _needs(report, sheet):
            # Later sheets add up what earlier ones stream (finance totals): run them, write nothing.
            layout.done(dependency, sum(1 for _ in dependency.rows(layout)))
    text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)  # RFC 4180: CRLF, quotes where needed
    writer.writerow([neutralise(column.header) for column in sheet.columns])
    show = [_csv_text(column.kind) for column in sheet.columns]
    rows = 0
    for block in _blocks(sheet.rows(layout), progress):
        for row in block:
            writer.writerow(["" if v is None else show[c](v) for c, v in enumerate(row)])
            rows += 1
        if progress is not None:
            progress(sheet.key, rows)
    text.flush()
    text.detach()  # leave `target` open for the caller
    return rows


def _needs(report: Report, sheet: Sheet) -> set[str]:
    keys: set[str] = set()
    for key in sheet.after:
        keys.add(key)
        keys |= _needs(report, report.sheet(key))
    return keys
