"""Opening an uploaded file and reading its sheets into checked, typed tables.

Workbooks are read with python-calamine (Rust; an order of magnitude faster than openpyxl on
big sheets) straight into pandas. We call calamine ourselves rather than through
`pandas.read_excel(engine="calamine")` for two reasons: read_excel drops blank rows, so its row
index stops matching the row numbers Excel shows, which every problem must quote; and we can
refuse an oversized sheet from its dimensions before turning millions of cells into objects.

What a file is comes from its bytes, and a workbook is checked before calamine opens it
(`sniffing.py`: zip bombs, lying headers, XML entities). Calamine reads a formula cell's last
computed value, never the formula, and evaluates nothing; a text cell starting with "=" stays
text, and the exports neutralise it (reports/writers.py).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from django.conf import settings
from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum

from resources.importing import cells as cells_
from resources.importing.problems import Problems, UnusableFile
from resources.importing.sniffing import decode_text, kind_of, not_a_spreadsheet
from resources.importing.sniffing import max_bytes as max_bytes  # the import pages quote the limits
from resources.importing.sniffing import megabytes as megabytes
from resources.importing.specs import Sheet, Workbook

Source = str | os.PathLike[str] | bytes | IO[bytes]

# Columns a sheet may have (cells = rows × columns are allocated at once).
MAX_COLUMNS = 100
# The template's own sheet of instructions is not data.
_IGNORED_SHEETS = {"instructions"}


def max_rows() -> int:
    """The most data rows a sheet may have (setting IMPORT_MAX_ROWS)."""
    limit: int = settings.IMPORT_MAX_ROWS
    return limit


def too_big(name: str, size: int) -> UnusableFile:
    return UnusableFile(
        f"{name} is {megabytes(size)}; an import takes files of at most {megabytes(max_bytes())}. "
        "Split it into several files."
    )


@dataclass
class Book:
    """The sheets of one file: a workbook's, or a CSV file's single sheet."""

    name: str
    sheet_names: list[str]
    _rows: Callable[[str], list[list[Any]]]
    is_csv: bool = False

    def find(self, sheet: str) -> str | None:
        """The file's own name for `sheet` (names match whatever their case and spacing)."""
        return next((n for n in self.sheet_names if n.strip().lower() == sheet), None)

    def rows(self, sheet: str) -> list[list[Any]]:
        """Every row from row 1, so that list index + 1 is the row number Excel shows."""
        return self._rows(sheet)


def open_book(source: Source, *, name: str | None = None, csv_sheet: str | None = None) -> Book:
    """Open a workbook, or a CSV file read as the sheet `csv_sheet` (when CSV is allowed)."""
    name, data = _load(source, name)
    if not data.strip():
        raise UnusableFile(f"{name} is empty.")
    if kind_of(name, data) == "xlsx":
        return _workbook(name, data)
    if csv_sheet is None:
        raise UnusableFile(f"{name} is a CSV file; this import needs an xlsx workbook with several sheets.")
    rows = _csv_rows(decode_text(name, data))
    return Book(name, [csv_sheet], lambda sheet: rows, is_csv=True)


def _load(source: Source, name: str | None) -> tuple[str, bytes]:
    limit = max_bytes()
    if isinstance(source, bytes):
        data = source
        name = name or "the file"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = name or path.name
        try:
            size = path.stat().st_size
            if size > limit:
                raise too_big(name, size)
            data = path.read_bytes()
        except IsADirectoryError:
            raise UnusableFile(f"{path} is a folder, not a file.") from None
        except FileNotFoundError:
            raise UnusableFile(f"{path}: no such file.") from None
        except OSError as exc:
            raise UnusableFile(f"{path} cannot be read: {exc.strerror}.") from None
    else:
        name = name or str(getattr(source, "name", "") or "the file")
        data = source.read(limit + 1)
    if len(data) > limit:
        raise too_big(name, len(data))
    return name, data


def _workbook(name: str, data: bytes) -> Book:
    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise UnusableFile(f"{name} is protected by a password; save a copy without one.") from None
    except Exception as exc:  # untrusted bytes: calamine may fail in any way; say so, no traceback
        raise not_a_spreadsheet(name, _why(exc)) from None
    names = [m.name for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]

    def rows(sheet: str) -> list[list[Any]]:
        try:
            found = book.get_sheet_by_name(sheet)
            data_rows = max(0, found.height - 1)
            if data_rows > max_rows():
                raise UnusableFile(
                    f"{name}: the {sheet} sheet has {data_rows:,} rows; an import takes at most "
                    f"{max_rows():,} rows per sheet. Split it into several files."
                )
            if found.total_width > MAX_COLUMNS:
                raise UnusableFile(
                    f"{name}: the {sheet} sheet has {found.total_width:,} columns; "
                    f"an import reads at most {MAX_COLUMNS}."
                )
            return list(found.to_python(skip_empty_area=False))
        except CalamineError as exc:
            raise UnusableFile(f"{name}: the {sheet} sheet cannot be read ({_why(exc)}).") from None

    return Book(name, names, rows)


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _csv_rows(text: str) -> list[list[Any]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)  # Excel writes ";" in some locales
    rows: list[list[Any]] = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    width = max((len(row) for row in rows), default=0)
    for row in rows:  # a workbook's rows all have the sheet's width; make a CSV's so too
        row.extend([""] * (width - len(row)))
    if len(rows) - 1 > max_rows():
        raise UnusableFile(
            f"The file has {len(rows) - 1:,} rows; an import takes at most {max_rows():,} rows per sheet. "
            "Split it into several files."
        )
    return rows


# --- Sheets into tables ---------------------------------------------------------------------------


@dataclass
class Table:
    """One sheet's data rows, typed: `data` holds a column per spec column (blank → default),
    `ok` whether each cell was fine, `rows` the row numbers Excel shows."""

    sheet: Sheet
    rows: np.ndarray
    data: pd.DataFrame
    ok: pd.DataFrame
    present: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.rows)


def sheets(book: Book, workbook: Workbook, warnings: list[str]) -> dict[str, str]:
    """Spec sheet name → the file's name for it. A missing required sheet makes the file unusable."""
    found = {s.name: book.find(s.name) for s in workbook.sheets}
    missing = [s.name for s in workbook.sheets if s.required and found[s.name] is None]
    if missing:
        listed = ", ".join(repr(n) for n in book.sheet_names) or "none"
        needed = ", ".join(f"{s.name}{'' if s.required else ' (optional)'}" for s in workbook.sheets)
        raise UnusableFile(
            f"{book.name} has no sheet named {', '.join(repr(m) for m in missing)} (sheets found: {listed}). "
            f"A {workbook.name} workbook has the sheets {needed}."
        )
    known = {n for n in found.values() if n is not None}
    for extra in book.sheet_names:
        if extra not in known and extra.strip().lower() not in _IGNORED_SHEETS:
            warnings.append(f"{extra}: sheet ignored (not part of a {workbook.name} workbook)")
    return {spec: actual for spec, actual in found.items() if actual is not None}


def _normal(header: Any) -> str:
    """A header as we compare it: "First name *" → "first_name"."""
    text = cells_.show_plain(header).lower().rstrip("* ").strip()
    return re.sub(r"[\s\-]+", "_", text)


def _letter(index: int) -> str:
    """Excel's column letter: 0 → A, 27 → AB."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value != value  # NaN


def read_table(rows: list[list[Any]], sheet: Sheet, problems: Problems, warnings: list[str]) -> Table | None:
    """Check the header, read every column of the data rows, and record each bad cell.

    The header is the first row with anything in it; blank rows are skipped but keep their
    numbers. Returns None for a sheet with nothing at all in it (an optional one is then left out).
    """
    problems.order_columns(sheet.name, sheet.names)
    header_at = next((i for i, row in enumerate(rows) if not all(_is_blank(v) for v in row)), None)
    if header_at is None:
        if sheet.required:
            problems.add(
                sheet.name,
                1,
                "",
                f"the sheet is empty; its first row should hold the headers {sheet.header_text}",
            )
        else:
            warnings.append(f"{sheet.name}: the sheet is empty; left out")
        return None
    positions = _header(rows[header_at], sheet, header_at + 1, problems, warnings)
    body = rows[header_at + 1 :]
    frame = pd.DataFrame(body, dtype=object) if body else pd.DataFrame()
    raw = {
        name: (frame[pos] if pos < frame.shape[1] else pd.Series(None, index=frame.index, dtype=object))
        for name, pos in positions.items()
    }
    columns = {name: cells_.Cells.of(series) for name, series in raw.items()}
    row_numbers = np.arange(header_at + 2, header_at + 2 + len(body))
    if columns:
        filled = ~np.logical_and.reduce([c.blank.to_numpy() for c in columns.values()])
        if not filled.all():
            columns = {name: c.take(filled) for name, c in columns.items()}
            row_numbers = row_numbers[filled]
    count = len(row_numbers)
    data: dict[str, pd.Series] = {}
    ok: dict[str, pd.Series] = {}
    for column in sheet.columns:
        if column.name in columns:
            values, errors = cells_.parse(columns[column.name], column)
            bad = errors.notna()
            if bad.any():
                problems.add_many(sheet.name, column.name, row_numbers[bad.to_numpy()], errors[bad])
            data[column.name], ok[column.name] = values, ~bad
        else:  # an optional column left out: every cell blank
            empty = cells_.Cells.of(pd.Series([None] * count, dtype=object))
            values, _ = cells_.parse(empty, column)
            data[column.name] = values
            ok[column.name] = pd.Series(not column.required, index=values.index)
    return Table(sheet, row_numbers, pd.DataFrame(data), pd.DataFrame(ok), set(positions))


def _header(
    row: list[Any], sheet: Sheet, number: int, problems: Problems, warnings: list[str]
) -> dict[str, int]:
    """Spec column name → position in the row; problems for missing and repeated columns."""
    known = set(sheet.names)
    positions: dict[str, int] = {}
    for position, value in enumerate(row):
        if _is_blank(value):
            continue
        name = _normal(value)
        if name in positions:
            problems.add(
                sheet.name,
                number,
                name,
                f"column {name} appears twice (columns {_letter(positions[name])} and {_letter(position)})",
            )
        elif name in known:
            positions[name] = position
        else:
            warnings.append(
                f"{sheet.name}:{number}:{cells_.show_plain(value)}: unknown column ignored "
                f"(the {sheet.name} sheet has the columns {sheet.header_text})"
            )
    for column in sheet.columns:
        if column.required and column.name not in positions:
            problems.add(
                sheet.name,
                number,
                column.name,
                f"required column {column.name} is missing; the {sheet.name} sheet has the columns "
                f"{sheet.header_text} (* required)",
            )
    return positions
