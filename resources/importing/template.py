"""Template workbooks: the headers, one example row, drop-down lists and an instructions sheet.

Written from the same column descriptions the import reads with (specs.py), so a template filled
in with its own example rows imports cleanly.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import IO, Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from resources.importing.reading import max_bytes, max_rows, megabytes
from resources.importing.specs import Column, Kind, Sheet, Workbook

DATE_FORMAT = "yyyy-mm-dd"


def write_template(workbook: Workbook, target: str | os.PathLike[str] | IO[bytes]) -> None:
    """Write `workbook`'s template to a path or a binary file object."""
    book = xlsxwriter.Workbook(target if not isinstance(target, os.PathLike) else os.fspath(target))
    formats = {
        "required": book.add_format({"bold": True, "bg_color": "#FCE4D6", "border": 1}),
        "optional": book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1}),
        "date": book.add_format({"num_format": DATE_FORMAT}),
        "wrap": book.add_format({"text_wrap": True, "valign": "top"}),
        "title": book.add_format({"bold": True, "font_size": 14}),
        "bold": book.add_format({"bold": True}),
    }
    instructions = book.add_worksheet("instructions")
    for sheet in workbook.sheets:
        _data_sheet(book.add_worksheet(sheet.name), sheet, formats)
    _instructions(instructions, workbook, formats)
    instructions.activate()
    book.close()


def _data_sheet(ws: Worksheet, sheet: Sheet, formats: dict[str, Any]) -> None:
    last = max_rows()
    ws.freeze_panes(1, 0)
    for col, column in enumerate(sheet.columns):
        ws.write_string(0, col, column.name, formats["required" if column.required else "optional"])
        ws.write_comment(0, col, _note(column), {"x_scale": 2, "y_scale": 1.5})
        width = max(len(column.name) + 4, min(len(str(column.example_value)) + 2, 40), 12)
        ws.set_column(col, col, width, formats["date"] if column.kind == Kind.DATE else None)
        _example(ws, col, column.example_value, formats)
        _validation(ws, col, column, last)


def _note(column: Column) -> str:
    required = "Required." if column.required else f"Optional; blank means {column.blank_means or 'empty'}."
    return f"{column.help}\n{column.describe().capitalize()}. {required}"


def _example(ws: Worksheet, col: int, value: object, formats: dict[str, Any]) -> None:
    if isinstance(value, date | datetime):
        ws.write_datetime(1, col, datetime(value.year, value.month, value.day), formats["date"])
    elif isinstance(value, bool) or value == "":
        ws.write_string(1, col, str(value))
    elif isinstance(value, int | float):
        ws.write_number(1, col, value)
    else:
        ws.write_string(1, col, str(value))


def _validation(ws: Worksheet, col: int, column: Column, last: int) -> None:
    """Drop-down lists and range checks Excel applies while people type (the import checks again)."""
    options: dict[str, Any] = {"ignore_blank": not column.required}
    if column.kind in (Kind.YESNO, Kind.CHOICE):
        options |= {
            "validate": "list",
            "source": column.choice_values,
            "error_title": column.name,
            "error_message": f"Choose one of: {', '.join(column.choice_values)}.",
        }
    elif column.kind == Kind.DATE:
        options |= {
            "validate": "date",
            "criteria": "between",
            "minimum": datetime(1900, 1, 1),
            "maximum": datetime(2199, 12, 31),
            "input_title": column.name,
            "input_message": "A date, e.g. 2026-03-01.",
        }
    elif column.kind in (Kind.NUMBER, Kind.INTEGER, Kind.MONEY) and column.minimum is not None:
        options |= {
            "validate": "integer" if column.kind == Kind.INTEGER else "decimal",
            "criteria": "between" if column.maximum is not None else ">=",
            "error_title": column.name,
            "error_message": f"{column.describe().capitalize()}.",
        }
        if column.maximum is not None:
            options |= {"minimum": column.minimum, "maximum": column.maximum}
        else:
            options["value"] = column.minimum
    else:
        return
    ws.data_validation(1, col, last, col, options)


def _instructions(ws: Worksheet, workbook: Workbook, formats: dict[str, Any]) -> None:
    ws.set_column(0, 0, 16)
    ws.set_column(1, 1, 20)
    ws.set_column(2, 2, 10)
    ws.set_column(3, 4, 34, formats["wrap"])
    ws.set_column(5, 5, 70, formats["wrap"])
    ws.write(0, 0, f"How to fill in this {workbook.name} workbook", formats["title"])
    notes = [
        workbook.help,
        "Row 1 of each sheet holds the column names: keep them as they are (their order does not "
        "matter). Replace the example in row 2 with your rows; blank rows are skipped. Dates are "
        "date cells or text like 2026-03-01; yes/no columns take yes or no.",
        "Every cell is checked before anything is written: if one is wrong, nothing is imported and "
        "each problem is listed as sheet:row:column: message, with the row numbers Excel shows. "
        "A dry run shows what would be created, updated and left unchanged, and writes nothing. "
        "Importing the same file again changes nothing.",
        f"Limits: {megabytes(max_bytes())} per file, {max_rows():,} rows per sheet.",
    ]
    row = 2
    for note in notes:
        ws.merge_range(row, 0, row, 5, note, formats["wrap"])
        ws.set_row(row, 15 * (1 + len(note) // 150))
        row += 1
    for sheet in workbook.sheets:
        row += 1
        required = "required sheet" if sheet.required else "optional sheet"
        ws.write(row, 0, f"{sheet.name} ({required})", formats["bold"])
        row += 1
        ws.merge_range(row, 0, row, 5, sheet.help, formats["wrap"])
        ws.set_row(row, 15 * (1 + len(sheet.help) // 150))
        row += 1
        for col, title in enumerate(("sheet", "column", "required", "format", "blank means", "what it is")):
            ws.write(row, col, title, formats["bold"])
        row += 1
        for column in sheet.columns:
            blank = "—" if column.required else (column.blank_means or "empty")
            values = (
                sheet.name,
                column.name,
                "yes" if column.required else "no",
                column.describe(),
                blank,
                column.help,
            )
            for col, value in enumerate(values):
                ws.write_string(row, col, value)
            row += 1
