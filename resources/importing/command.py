"""What the two import commands share: arguments, exit codes and how results are printed."""

from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deploy_tracker.errors import DomainError
from resources.importing.problems import ImportResult, InvalidRows
from resources.importing.specs import Workbook
from resources.importing.template import write_template

Importer = Callable[..., ImportResult]


class ImportCommand(BaseCommand):
    """`FILE [--dry-run]` imports; `--template FILE` writes the template. Exit codes: 0 done,
    1 invalid rows (each printed as sheet:row:column: message on stderr), 2 unusable file."""

    workbook: Workbook
    file_help: str

    def importer(self) -> Importer:
        raise NotImplementedError

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", nargs="?", type=Path, help=self.file_help)
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and show what would change; write nothing."
        )
        parser.add_argument(
            "--template",
            type=Path,
            metavar="FILE",
            help=(
                "Write a template workbook (headers, an example row, drop-down lists, instructions) to FILE."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["template"]:
            self.write_template(options["template"])
            return
        if options["file"] is None:
            raise CommandError(
                "Name the file to import, or write a template with --template FILE.", returncode=2
            )
        try:
            result = self.importer()(options["file"], dry_run=options["dry_run"])
        except InvalidRows as exc:
            for line in exc.lines:
                self.stderr.write(line)
            if exc.more:
                self.stderr.write(f"… and {exc.more:,} more problems.")
            self.warn(exc.warnings)
            raise CommandError(exc.message, returncode=exc.exit_code) from exc
        except DomainError as exc:
            raise CommandError(exc.message, returncode=exc.exit_code) from exc
        self.report(result, verbosity=options["verbosity"])

    def write_template(self, path: Path) -> None:
        if not path.parent.is_dir():
            raise CommandError(f"No folder {path.parent} to write the template in.", returncode=2)
        write_template(self.workbook, path)
        self.stdout.write(f"Wrote the {self.workbook.name} template to {path}.")

    def warn(self, warnings: list[str]) -> None:
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")

    def report(self, result: ImportResult, *, verbosity: int) -> None:
        self.warn(result.warnings)
        if result.dry_run:
            self.stdout.write(f"{result.file}: dry run — nothing was written. It would change:")
        elif result.changed:
            self.stdout.write(self.style.SUCCESS(f"{result.file}: imported."))
        else:
            self.stdout.write(f"{result.file}: nothing to change; the database already matches the file.")
        for sheet, counts in result.counts.items():
            self.stdout.write(f"  {sheet:<15} {counts}")
        if verbosity > 1:
            timings = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.seconds.items())
            self.stdout.write(f"  ({timings})")
