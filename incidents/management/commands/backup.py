"""`manage.py backup`: the whole database to one file (deploy_tracker/backups.py)."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deploy_tracker import backups


class Command(BaseCommand):
    help = (
        "Back up the whole database to one file: pg_dump's custom format on PostgreSQL (.dump), "
        "Django's data dump (.xml) on SQLite or with --format data (any engine; also the way from "
        "SQLite to PostgreSQL). Restore with `manage.py restore FILE` into an empty database."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            help="File to write (default: backups/deploy-tracker-<UTC time>.dump or .xml).",
        )
        parser.add_argument(
            "--format",
            choices=["auto", "pg", "data"],
            default="auto",
            help="pg: pg_dump -Fc (PostgreSQL only); data: dumpdata as XML; auto (default): pg on "
            "PostgreSQL, data elsewhere.",
        )

    def handle(self, *args: Any, output: Path | None, format: str, **options: Any) -> None:
        kind: backups.Kind = (
            backups.default_kind() if format == "auto" else "pg" if format == "pg" else "data"
        )
        try:
            path = backups.backup(output or backups.default_path(kind), kind=kind)
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Backup written to {path} ({path.stat().st_size:,} bytes).")
