"""Helpers both importers share: checks across rows, comparing with the database, timing."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection, models
from django.utils import timezone

from resources.importing.cells import show
from resources.importing.problems import Problems
from resources.importing.reading import Table

# Keys per `IN (...)` query: under SQLite's 32,766 parameters, and few queries for big files.
CHUNK = 10_000
# Rows per INSERT/UPDATE statement.
BATCH = 2_000


class Clock:
    """Seconds spent in each stage of an import."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def chunks[T](items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rows_of(
    queryset: models.QuerySet[Any], lookup: str, keys: Sequence[Any], *fields: str
) -> list[tuple[Any, ...]]:
    """`values_list(*fields)` of the rows whose `lookup` is one of `keys`: one query per 10,000 keys.

    For more keys than that it reads the whole table in one query instead (cheaper than many IN
    lists of 10,000 parameters); callers keep only the rows they asked for.
    """
    if len(keys) > CHUNK:
        return list(queryset.values_list(*fields))
    rows: list[tuple[Any, ...]] = []
    for part in chunks(keys):
        rows += queryset.filter(**{f"{lookup}__in": part}).values_list(*fields)
    return rows


@contextlib.contextmanager
def big_cache() -> Iterator[None]:
    """On SQLite, a 128 MB page cache while writing: index pages of a 100,000-row table stay in
    memory (about twice as fast as the default 2 MB); the connection's own size is restored after."""
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (before,) = cursor.fetchone()
        cursor.execute("PRAGMA cache_size = -131072")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


def row_numbers(table: Table) -> pd.Series:
    return pd.Series(table.rows, index=table.data.index)


def all_ok(table: Table, *columns: str) -> pd.Series:
    """Rows whose cells in `columns` are all fine (so later checks do not pile onto one mistake)."""
    return table.ok[list(columns)].all(axis=1)


def duplicates(
    table: Table,
    keys: pd.DataFrame,
    usable: pd.Series,
    column: str,
    what: Callable[[int], str],
    problems: Problems,
) -> pd.Series:
    """Report each row whose key an earlier row already has; returns the mask of those rows.

    `what(i)` names the thing at row index i in the message ("email a@b.org").
    """
    rows = row_numbers(table)
    usable_keys = keys[usable]
    again = usable_keys.duplicated(keep="first")
    found = pd.Series(False, index=table.data.index)
    if not again.any():
        return found
    first = rows[usable].groupby([usable_keys[c] for c in usable_keys.columns]).transform("first")
    repeated = again[again].index
    problems.add_many(
        table.sheet.name,
        column,
        rows[repeated],
        [f"{what(i)} appears again on row {rows[i]} (first on row {first[i]})" for i in repeated],
    )
    found[repeated] = True
    return found


def report(
    table: Table, mask: pd.Series, column: str, message: Callable[[int], str], problems: Problems
) -> None:
    """A problem on `column` for each row in `mask`; `message(i)` says what is wrong at row index i."""
    if not mask.any():
        return
    rows = row_numbers(table)
    where = mask[mask].index
    problems.add_many(table.sheet.name, column, rows[where], [message(i) for i in where])


def differs(new: pd.Series, old: pd.Series) -> pd.Series:
    """Element-wise "changed", with blank equal to blank."""
    same = (new == old) | (new.isna() & old.isna())
    return ~same.astype(bool)


def to_dates(values: pd.Series) -> list[date | None]:
    """datetime64 values as the dates a DateField takes (NaT → None)."""
    days = np.array(values.dt.date, dtype=object)
    days[values.isna().to_numpy()] = None
    return list(days)


def from_dates(values: Sequence[Any]) -> pd.Series:
    """Dates from the database in the form the tables hold them (datetime64, NaT for None)."""
    return pd.to_datetime(pd.Series(list(values), dtype=object)).astype("datetime64[s]")


def units(values: pd.Series, decimals: int) -> pd.Series:
    """Decimal amounts from the database as whole units of their smallest fraction (cents)."""
    return (values.astype("float64") * 10**decimals).round()


def unknown_code(value: Any, codes: Sequence[str]) -> str:
    return f"unknown qualification code {show(value)}; known codes: {known_codes(codes)}"


def known_codes(codes: Sequence[str], limit: int = 40) -> str:
    shown = sorted(codes)
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more if shown else "none (the catalog is empty)"


# --- Bulk writes ------------------------------------------------------------------------------------
# bulk_create and bulk_update compile every value of every row through the ORM (about 30 µs a
# row); for 350,000 roster rows that alone would blow the import's 30 s budget. These write the
# same rows with the engine's own bulk path: COPY on PostgreSQL, one prepared statement run for
# all rows (executemany) on SQLite.


def _adapter(field: models.Field[Any, Any]) -> Callable[[Any], Any]:
    """How a value travels to the database driver: as is, except datetimes (naive UTC on SQLite)."""
    if isinstance(field, models.DateTimeField):
        return functools.cache(lambda value: field.get_db_prep_save(value, connection))
    return lambda value: value


def _quoted(field: models.Field[Any, Any]) -> str:
    assert field.column is not None
    return connection.ops.quote_name(field.column)


def _pg_type(field: models.Field[Any, Any]) -> str:
    """The column's PostgreSQL type name as psycopg knows it: varchar(254) → varchar."""
    return str(field.db_type(connection)).split("(")[0].strip()


def insert(model: type[models.Model], columns: dict[str, list[Any]]) -> None:
    """INSERT one row per position of `columns` (field name → values; plain str, int, float, bool,
    Decimal, date, datetime or None). Fields not given take their defaults, as bulk_create would
    write them: auto_now(_add) fields the current time, others `field.get_default()`."""
    rows = len(next(iter(columns.values()), []))
    if not rows:
        return
    now = timezone.now()
    names, values, fields = [], [], []
    for field in model._meta.concrete_fields:
        given = columns.get(field.name, columns.get(field.attname))
        if given is None and field.primary_key:
            continue  # the database numbers the rows
        adapt = _adapter(field)
        if given is not None:
            values.append([adapt(v) for v in given] if isinstance(field, models.DateTimeField) else given)
        else:
            stamped = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
            values.append([adapt(now if stamped else field.get_default())] * rows)
        names.append(_quoted(field))
        fields.append(field)
    table = connection.ops.quote_name(model._meta.db_table)
    rows_ = list(zip(*values, strict=True))
    if connection.vendor == "postgresql":
        # COPY streams the rows: about four times faster than INSERT statements on PostgreSQL;
        # the binary format spares both sides turning every value into text and back.
        sql = f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
        with connection.cursor() as cursor, cursor.copy(sql) as copy:
            copy.set_types([_pg_type(field) for field in fields])
            for row in rows_:
                copy.write_row(row)
        return
    _run(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})", rows_)


def update(model: type[models.Model], pks: list[int], columns: dict[str, list[Any]]) -> None:
    """UPDATE the rows `pks`, setting each field of `columns` to its value at the same position."""
    if not pks:
        return
    fields = [model._meta.get_field(name) for name in columns]
    values = []
    for field, given in zip(fields, columns.values(), strict=True):
        assert isinstance(field, models.Field)
        adapt = _adapter(field)
        values.append([adapt(v) for v in given] if isinstance(field, models.DateTimeField) else given)
    names = [_quoted(f) for f in fields if isinstance(f, models.Field)]
    table = connection.ops.quote_name(model._meta.db_table)
    assert model._meta.pk is not None
    pk = _quoted(model._meta.pk)
    if connection.vendor == "postgresql":
        # One UPDATE … FROM a temporary table filled by COPY: PostgreSQL pays per statement, and an
        # UPDATE per row costs twenty times more.
        temp = connection.ops.quote_name(f"import_{model._meta.db_table}")
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {temp} AS SELECT {pk}, {', '.join(names)} FROM {table} WITH NO DATA"
            )
            with cursor.copy(f"COPY {temp} ({pk}, {', '.join(names)}) FROM STDIN") as copy:
                for row in zip(pks, *values, strict=True):
                    copy.write_row(row)
            sets = ", ".join(f"{name} = {temp}.{name}" for name in names)
            cursor.execute(f"UPDATE {table} SET {sets} FROM {temp} WHERE {table}.{pk} = {temp}.{pk}")
            cursor.execute(f"DROP TABLE {temp}")
        return
    sets = ", ".join(f"{name} = %s" for name in names)
    _run(f"UPDATE {table} SET {sets} WHERE {pk} = %s", list(zip(*values, pks, strict=True)))


def _run(sql: str, rows: list[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor:
        for part in chunks(rows, CHUNK):
            cursor.executemany(sql, part)
