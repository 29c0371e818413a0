"""What a report is, whatever it is written to: titled sheets of typed columns and lazy rows.

A report module (finance, demobilization, logistics, roster) describes its sheets here; the
writers (reports/writers.py) turn them into a workbook or a CSV file, and the pages render the
same rows. Rows are produced lazily, in order, so an export of 100,000 rows never holds them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from incidents.models import Incident

# Every sheet starts with the same block, so readers (people, pandas, tests) find the data:
# row 1 the title naming the incident, row 2 the filters, row 3 the generation time, row 4 blank,
# row 5 the header; data from row 6 (Excel's 1-based numbering).
TITLE_ROWS = 4
HEADER_ROW = TITLE_ROWS  # 0-based index of the header row
FIRST_ROW = HEADER_ROW + 1  # 0-based index of the first data row


class Kind(StrEnum):
    """How a column's values are typed and shown."""

    TEXT = "text"
    INT = "int"
    HOURS = "hours"  # 0.00
    KM = "km"  # 0.0
    MONEY = "money"  # $#,##0.00
    PERCENT = "percent"  # a fraction shown as 32.50 %
    DATE = "date"
    DATETIME = "datetime"  # already in the incident's time zone, without tzinfo
    BOOL = "bool"  # written as the text Yes / No


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its key (for formulas and tests), header, type and width."""

    key: str
    header: str
    kind: Kind = Kind.TEXT
    width: float = 12


@dataclass(frozen=True)
class Formula:
    """A spreadsheet formula and the value the app computed for it.

    The workbook stores both: Excel and LibreOffice recalculate the formula, readers that do not
    calculate (pandas, openpyxl) see the value, and a CSV file carries the value alone.
    """

    text: str
    value: Decimal | int | float


Cell = str | int | float | Decimal | date | datetime | bool | Formula | None
Row = Sequence[Cell]


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def excel_row(i: int) -> int:
    """The Excel (1-based) row number of a sheet's i-th data row (0-based)."""
    return FIRST_ROW + i + 1


class Layout:
    """Where each written sheet's data landed, so later sheets' formulas name exact ranges."""

    def __init__(self) -> None:
        self._sheets: dict[str, tuple[Sheet, int]] = {}

    def done(self, sheet: Sheet, rows: int) -> None:
        self._sheets[sheet.key] = (sheet, rows)

    def rows(self, key: str) -> int:
        return self._sheets[key][1]

    def range(self, key: str, column: str) -> str:
        """e.g. 'Labor'!$P$6:$P$105 — one blank row when the sheet has no data, so it sums to 0."""
        sheet, rows = self._sheets[key]
        letter = column_letter(sheet.index(column))
        first = excel_row(0)
        last = excel_row(max(rows, 1) - 1)
        return f"'{sheet.name}'!${letter}${first}:${letter}${last}"


@dataclass
class Sheet:
    """A table of the report: one worksheet of the workbook, or the whole of a CSV file.

    `rows` is called once, with the layout of the sheets already written (those named in
    `after` come first), and yields the rows in order.
    """

    key: str
    name: str  # the worksheet's name: at most 31 characters, none of []:*?/\
    columns: list[Column]
    rows: Callable[[Layout], Iterable[Row]]
    after: tuple[str, ...] = ()
    note: str = ""  # one line under the filters, e.g. how a figure is computed

    def index(self, key: str) -> int:
        for i, column in enumerate(self.columns):
            if column.key == key:
                return i
        raise KeyError(f"Sheet {self.key!r} has no column {key!r}.")


@dataclass
class Report:
    """A report ready to write: what it is, for which incident and filters, and its sheets."""

    kind: str
    title: str
    incident: Incident
    filters: str
    generated_at: datetime
    sheets: list[Sheet] = field(default_factory=list)

    def sheet(self, key: str) -> Sheet:
        for sheet in self.sheets:
            if sheet.key == key:
                return sheet
        raise KeyError(f"The {self.kind} report has no sheet {key!r}.")

    def title_lines(self, sheet: Sheet) -> list[str]:
        """The three lines above every sheet's header."""
        incident = self.incident
        local = incident.local(self.generated_at)
        generated = f"Generated {local:%Y-%m-%d %H:%M} {local.tzname()} ({incident.timezone})"
        if sheet.note:
            generated += f" · {sheet.note}"
        return [
            f"{incident.number} {incident.name} — {self.title}: {sheet.name}",
            f"Filters: {self.filters}",
            generated,
        ]

    def filename(self, extension: str, sheet: str | None = None) -> str:
        stamp = self.incident.local(self.generated_at).strftime("%Y%m%d-%H%M")
        part = f"-{sheet}" if sheet else ""
        safe_number = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.incident.number)
        return f"{safe_number}-{self.kind}{part}-{stamp}.{extension}"
