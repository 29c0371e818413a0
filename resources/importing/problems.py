"""What an import reports: problems in `sheet:row:column: message` form, counts, and its errors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from deploy_tracker.errors import DomainError

# Problems kept per (sheet, column) check and shown at most; the total is always counted.
KEEP = 1_000
SHOW = 200


@dataclass(frozen=True, order=True)
class Problem:
    """One bad cell (or row, or column) in the user's terms: Excel's row number, the header name."""

    sheet_order: int
    row: int
    column_order: int
    sheet: str
    column: str
    message: str

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.sheet, self.row or "", self.column) if part != "")
        return f"{where}: {self.message}"


class Problems:
    """Collects every problem of a file, keeping the first `KEEP` of each check but counting all."""

    def __init__(self, sheet_order: Sequence[str]) -> None:
        self._sheets = {name: i for i, name in enumerate(sheet_order)}
        self._columns: dict[tuple[str, str], int] = {}
        self.kept: list[Problem] = []
        self.total = 0

    def order_columns(self, sheet: str, columns: Iterable[str]) -> None:
        for i, name in enumerate(columns):
            self._columns[(sheet, name)] = i

    def add(self, sheet: str, row: int, column: str, message: str) -> None:
        self.add_many(sheet, column, [row], [message])

    def add_many(self, sheet: str, column: str, rows: Iterable[int], messages: Iterable[str]) -> None:
        """One check's failures, in row order: rows and messages are parallel."""
        sheet_order = self._sheets.get(sheet, len(self._sheets))
        column_order = self._columns.get((sheet, column), -1)
        kept = 0
        for row, message in zip(rows, messages, strict=True):
            self.total += 1
            if kept < KEEP:
                self.kept.append(Problem(sheet_order, int(row), column_order, sheet, column, message))
                kept += 1

    def __bool__(self) -> bool:
        return self.total > 0

    def first(self, limit: int = SHOW) -> list[Problem]:
        return sorted(self.kept)[:limit]


@dataclass
class Counts:
    """What an import did (or would do) to the rows of one sheet."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def __str__(self) -> str:
        parts = [f"{self.created} created", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.removed:
            parts.append(f"{self.removed} removed")
        return ", ".join(parts)

    @property
    def changes(self) -> int:
        return self.created + self.updated + self.removed


@dataclass
class ImportResult:
    """Counts per sheet (in workbook order), warnings, and how long each stage took."""

    file: str
    dry_run: bool
    counts: dict[str, Counts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(c.changes for c in self.counts.values())


class UnusableFile(DomainError):
    """The file cannot be imported at all: not a workbook, empty, too big, a sheet missing."""

    code = "unusable_file"
    http_status = 400
    exit_code = 2


class InvalidRows(DomainError):
    """Some cells are invalid; nothing was written. `problems` lists every one."""

    code = "invalid_rows"
    http_status = 400
    exit_code = 1

    def __init__(self, file: str, problems: Problems, warnings: list[str]) -> None:
        noun = "problem" if problems.total == 1 else "problems"
        super().__init__(f"{file}: {problems.total:,} {noun}; nothing was imported.")
        self.problems = problems
        self.warnings = warnings

    @property
    def lines(self) -> list[str]:
        return [str(p) for p in self.problems.first()]

    @property
    def more(self) -> int:
        """How many problems the first `SHOW` leave out."""
        return max(0, self.problems.total - SHOW)


class ImportConflict(DomainError):
    """The database refused the checked rows: someone changed the same records meanwhile."""

    code = "import_conflict"
    exit_code = 1
