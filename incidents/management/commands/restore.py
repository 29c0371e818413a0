"""`manage.py restore FILE`: a backup into an empty database (deploy_tracker/backups.py)."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from deploy_tracker import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into this database, which must be empty: a "
        ".dump into a new PostgreSQL database (createdb NAME first), a .xml into any new database "
        "(it is migrated first). Then migrates it to the code's version. Exit 1 if refused."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path, help="The backup: a .dump (pg_dump) or .xml (data) file.")

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            kind = backups.restore(file)
        except backups.BackupError as exc:
            raise CommandError(str(exc)) from exc
        how = "pg_restore" if kind == "pg" else "loaddata"
        self.stdout.write(f"Restored {file} into {connection.settings_dict['NAME']} ({how}).")
