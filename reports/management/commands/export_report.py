"""`manage.py export_report KIND --incident NUMBER --format xlsx|csv --output FILE [--from D --to D]`."""

from __future__ import annotations

import os
import tempfile
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from deploy_tracker.errors import DomainError
from reports import files, service
from reports.service import FORMATS, KINDS
from reports.spec import Report


class Command(BaseCommand):
    help = (
        "Write a report of an incident to a file: finance (FEMA force-account labor, expenses, "
        "summary, daily burn), demobilization (ICS 221), logistics (ICS 204/211) or roster. xlsx "
        "holds every sheet; csv one (--sheet). Finance counts approved time and expenses unless "
        "--status says otherwise. Exit 0 when written, 1 on a bad argument, 2 for an unknown incident."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("kind", choices=list(KINDS), help="Which report.")
        parser.add_argument("--incident", required=True, help="Incident number, e.g. WA-2026-01.")
        parser.add_argument("--format", choices=FORMATS, help="xlsx or csv (default: the --output suffix).")
        parser.add_argument("--output", required=True, help="The file to write (replaced if it exists).")
        parser.add_argument("--from", dest="from_", metavar="DATE", help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", metavar="DATE", help="Last day, YYYY-MM-DD.")
        parser.add_argument("--facility", help="Facility code.")
        parser.add_argument("--agency", help="Agency code.")
        parser.add_argument(
            "--status",
            action="append",
            help="Repeatable; finance: approval status, others: deployment status.",
        )
        parser.add_argument("--sheet", help="CSV only: which sheet (default: the report's main one).")

    def handle(self, *args: Any, **options: Any) -> None:
        kind, output = options["kind"], Path(options["output"])
        fmt = options["format"] or output.suffix.lstrip(".").lower()
        if fmt not in FORMATS:
            raise CommandError("--format: choose xlsx or csv (or end --output with .xlsx or .csv).")
        if not output.parent.is_dir():
            raise CommandError(f"--output: the folder {str(output.parent)!r} does not exist.")
        try:
            sheet = service.sheet_for(kind, options["sheet"])
            filters = service.prepare(kind, self.query(options), user=None)
            report = service.build(kind, filters, user=None)
            rows = self.write(report, fmt, output, sheet)
        except DomainError as exc:
            message = exc.message
            field = getattr(exc, "field", None)
            if field:  # name the command's argument, not the API's parameter
                message = message.replace(f"{field}:", f"--{field}:", 1)
            raise CommandError(message, returncode=exc.exit_code) from exc
        what = f"sheet {sheet}" if fmt == "csv" else f"{len(report.sheets)} sheet(s)"
        self.stdout.write(
            f"Wrote the {kind} report of {report.incident.number} "
            f"({what}, {rows:,} row{'' if rows == 1 else 's'}) to {output}."
        )
        self.stdout.write(f"Filters: {report.filters}")

    def query(self, options: dict[str, Any]) -> QueryDict:
        query = QueryDict(mutable=True)
        for name, key in (
            ("incident", "incident"),
            ("from", "from_"),
            ("to", "to"),
            ("facility", "facility"),
            ("agency", "agency"),
        ):
            if options[key] is not None:
                query[name] = options[key]
        if options["status"]:
            query.setlist("status", options["status"])
        return query

    def write(self, report: Report, fmt: str, output: Path, sheet: str) -> int:
        """Write beside the target, then rename: a failed export never leaves half a file."""
        fd, partial = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as target:
                rows = files.write(report, fmt, target, sheet=sheet)
            os.replace(partial, output)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return rows
