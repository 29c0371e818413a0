"""Reading a column of cells into typed values, a whole column at a time (pandas, not a loop per cell).

Each parser returns the values and, aligned with them, the problem of each bad cell (None where
the cell is fine). Messages quote what the person typed and say what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from resources.importing.specs import Column, Kind

# What a cell holds. Workbooks give str, float/int, bool, date/datetime, time/timedelta; CSV only str.
STR, NUM, BOOL, DATE, TIME, NONE, OTHER = range(7)
_TYPE_CODES: dict[type, int] = {
    str: STR,
    float: NUM,
    int: NUM,
    np.float64: NUM,
    np.int64: NUM,
    bool: BOOL,
    np.bool_: BOOL,
    date: DATE,
    datetime: DATE,
    pd.Timestamp: DATE,
    time: TIME,
    timedelta: TIME,
    type(None): NONE,
}
_EMAIL = r"[^@\s]+@[^@\s]+\.[^@\s]+"
_STATE = r"[A-Z]{2}"
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
# A date outside these years is a typo (0026 for 2026), whatever the database would accept.
_FIRST_YEAR, _LAST_YEAR = 1900, 2199


@dataclass
class Cells:
    """One column's raw cells, classified once: what each holds, its text if it is text, and
    whether it is blank."""

    raw: pd.Series
    code: pd.Series
    text: pd.Series
    blank: pd.Series

    @classmethod
    def of(cls, raw: pd.Series) -> Cells:
        raw = raw.reset_index(drop=True).astype(object)
        code = raw.map(type).map(_TYPE_CODES).fillna(OTHER).astype("int8")
        code[raw.isna().to_numpy()] = NONE
        strings = (code == STR).to_numpy()
        if strings.all():  # a text column, or any CSV column: strip in one pass
            text = pd.Series([v.strip() for v in raw.tolist()], dtype=object)
        else:
            text = pd.Series("", index=raw.index, dtype=object)
            if strings.any():
                text[strings] = [v.strip() for v in raw[strings].tolist()]
        blank = (code == NONE) | (code == STR) & (text == "")
        return cls(raw, code, text, blank)

    def take(self, keep: pd.Series | np.ndarray) -> Cells:
        keep = np.asarray(keep)
        return Cells(
            *(part[keep].reset_index(drop=True) for part in (self.raw, self.code, self.text, self.blank))
        )

    def as_text(self) -> pd.Series:
        """Every cell as text: numbers without a spurious .0, dates as YYYY-MM-DD; blank is ""."""
        out = self.text.copy()
        others = (self.code != STR) & (self.code != NONE)
        if others.any():
            out[others] = self.raw[others].map(show_plain)
        return out


def show_plain(value: Any) -> str:
    """A cell's value as the person would write it."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else f"{value:.15g}"
    if isinstance(value, datetime | pd.Timestamp):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def show(value: Any) -> str:
    """A cell's value in a message: text quoted (shortened), numbers and dates bare."""
    if isinstance(value, str):
        value = value.strip()
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return show_plain(value)


def day(value: Any) -> str:
    """A date as YYYY-MM-DD, four-digit years included (strftime writes the year 26 as "26")."""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def number(value: float) -> str:
    return f"{value:.15g}"


def parse(cells: Cells, column: Column) -> tuple[pd.Series, pd.Series]:
    """The column's typed values and each cell's problem (None where the cell is fine).

    Blank cells take the column's default; a blank required cell is a problem.
    """
    errors = pd.Series(None, index=cells.raw.index, dtype=object)
    blank = cells.blank
    values = _PARSERS[column.kind](cells, column, errors, blank)
    if column.required and blank.any():
        errors[blank] = f"{column.name} is required"
    return values, errors


def _fail(
    errors: pd.Series, mask: pd.Series, message: str | Callable[[Any], str], source: pd.Series | None = None
) -> None:
    """Record a problem for each cell in `mask` that has none yet (the first problem counts).

    `message` is one text for all, or a function of the cell's value in `source`; it runs only
    for the bad cells, so a clean column costs no loop.
    """
    mask = mask & errors.isna()
    if not mask.any():
        return
    if isinstance(message, str):
        errors[mask] = message
    else:
        assert source is not None
        errors[mask] = [message(v) for v in source[mask]]


def _text(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = cells.as_text()
    if column.max_length:
        lengths = values.map(len)
        long = lengths > column.max_length
        if long.any():
            _fail(
                errors,
                long,
                lambda n: f"{column.name} is {n} characters long; at most {column.max_length}",
                lengths,
            )
    if column.default is not None:
        values[blank] = column.default
    return values


def _email(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = _text(cells, column, errors, blank)
    well_formed = re.compile(_EMAIL).fullmatch
    bad = ~blank & pd.Series([well_formed(v) is None for v in values.tolist()], index=values.index)
    _fail(errors, bad, lambda v: f"{column.name} {show(v)} is not an email address", cells.raw)
    return values


def _state(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = cells.as_text().str.upper()
    bad = ~blank & ~values.str.fullmatch(_STATE)
    _fail(
        errors, bad, lambda v: f"{column.name} {show(v)} is not a two-letter state code (e.g. WA)", cells.raw
    )
    return values


def _numbers(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series, what: str) -> pd.Series:
    """Numbers from number cells and from text that reads as a number; NaN where blank or bad."""
    values = pd.Series(np.nan, index=cells.raw.index, dtype="float64")
    numeric = cells.code == NUM
    if numeric.any():
        values[numeric] = cells.raw[numeric].astype("float64")
    typed = (cells.code == STR) & ~blank
    if typed.any():
        text = cells.text[typed]
        if column.kind == Kind.MONEY:  # "$1,250.00" as Excel shows a currency cell in a CSV
            text = text.str.replace(r"^\$|,", "", regex=True)
        values[typed] = pd.to_numeric(text, errors="coerce")
    bad = ~blank & ~np.isfinite(values)
    _fail(errors, bad, lambda v: f"{column.name} {show(v)} is not {what}", cells.raw)
    values[bad] = np.nan
    return values


def _check_range(column: Column, values: pd.Series, errors: pd.Series) -> None:
    low, high = column.minimum, column.maximum
    out = pd.Series(False, index=values.index)
    if low is not None:
        out |= values < low
    if high is not None:
        out |= values > high
    if not out.any():
        return
    if low is not None and high is not None:
        rule = f"is outside {number(low)}…{number(high)}"
        if low == 0 and column.kind == Kind.MONEY:
            rule = f"must be from 0 to {number(high)}"
    elif low is not None:
        rule = f"must be at least {number(low)}"
    else:
        rule = f"must be at most {number(high or 0)}"
    _fail(errors, out, lambda v: f"{column.name} {number(v)} {rule}", values)


def _number(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = _numbers(cells, column, errors, blank, "a number")
    _check_range(column, values, errors)
    return _default(values, column, blank)


def _integer(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = _numbers(cells, column, errors, blank, "a whole number")
    fraction = values.notna() & (values % 1 != 0)
    _fail(errors, fraction, lambda v: f"{column.name} {number(v)} is not a whole number", values)
    _check_range(column, values, errors)
    return _default(values, column, blank)


def _money(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    """Amounts as whole units of the smallest fraction (cents): exact, comparable, no float drift."""
    values = _numbers(cells, column, errors, blank, "an amount")
    scale = 10**column.decimals
    units = (values * scale).round()
    # Excel arithmetic leaves noise (55.000000000000007); a real third decimal is a problem.
    fraction = values.notna() & ((values * scale - units).abs() > 1e-6 * np.maximum(1, units.abs()))
    _fail(
        errors,
        fraction,
        lambda v: f"{column.name} {number(v)} has more than {column.decimals} decimals",
        values,
    )
    _check_range(column, values, errors)
    if column.default is not None:
        units[blank] = round(float(column.default) * scale)  # type: ignore[arg-type]
    return units


def _default(values: pd.Series, column: Column, blank: pd.Series) -> pd.Series:
    if column.default is not None:
        values[blank] = column.default
    return values


def _date(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = pd.Series(pd.NaT, index=cells.raw.index, dtype="datetime64[s]")
    dated = cells.code == DATE
    if dated.any():
        values[dated] = pd.to_datetime(cells.raw[dated]).dt.normalize().astype("datetime64[s]")
    typed = (cells.code == STR) & ~blank
    if typed.any():
        first_word = cells.text[typed].str.split(r"[ T]", n=1, regex=True).str[0]
        parsed = pd.to_datetime(first_word, format="%Y-%m-%d", errors="coerce")
        values[typed] = parsed.astype("datetime64[s]")
    bad = ~blank & values.isna()
    _fail(errors, bad, lambda v: f"{column.name} {show(v)} is not a date (use YYYY-MM-DD)", cells.raw)
    years = values.dt.year
    odd = values.notna() & ((years < _FIRST_YEAR) | (years > _LAST_YEAR))
    _fail(
        errors,
        odd,
        lambda v: f"{column.name} {day(v)} is not between {_FIRST_YEAR} and {_LAST_YEAR}",
        values,
    )
    values[odd] = pd.NaT
    return values


def _yes_no(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    values = pd.Series(None, index=cells.raw.index, dtype=object)
    flags = cells.code == BOOL
    values[flags] = cells.raw[flags].astype(bool)
    words = cells.as_text().str.lower()
    values[~flags & words.isin(_YES)] = True
    values[~flags & words.isin(_NO)] = False
    bad = ~blank & values.isna()
    _fail(errors, bad, lambda v: f"{column.name} {show(v)} is not yes or no", cells.raw)
    if column.default is not None:
        values[blank] = column.default
    return values


def _choice(cells: Cells, column: Column, errors: pd.Series, blank: pd.Series) -> pd.Series:
    """One of the column's values; its label is understood too ("Long-term care")."""
    known = {label.lower(): value for value, label in column.choices}
    known |= {value.lower(): value for value, _ in column.choices}
    values = cells.as_text().str.lower().map(known)
    bad = ~blank & values.isna()
    allowed = ", ".join(column.choice_values)
    _fail(errors, bad, lambda v: f"{column.name} {show(v)} is not one of {allowed}", cells.raw)
    values = values.astype(object)
    values[blank] = column.default
    return values


_PARSERS = {
    Kind.TEXT: _text,
    Kind.EMAIL: _email,
    Kind.STATE: _state,
    Kind.NUMBER: _number,
    Kind.INTEGER: _integer,
    Kind.MONEY: _money,
    Kind.DATE: _date,
    Kind.YESNO: _yes_no,
    Kind.CHOICE: _choice,
}
