"""`manage.py prune_exports [--hours N]`: remove background exports' files past their retention."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from reports import jobs


class Command(BaseCommand):
    help = (
        "Remove the files background exports wrote (and uploads no import job took) once they are "
        "older than EXPORT_RETENTION_HOURS (default 24), from the default storage. The jobs stay on "
        "record; their download answers 410 Gone. Run it hourly from cron. Exit 0."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--hours",
            type=int,
            default=None,
            help="Remove files older than this many hours (default: EXPORT_RETENTION_HOURS).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hours = options["hours"] if options["hours"] is not None else settings.EXPORT_RETENTION_HOURS
        removed = jobs.prune(older_than=timedelta(hours=max(0, hours)))
        for name in removed:
            self.stdout.write(f"removed {name}", style_func=None)
        self.stdout.write(f"{len(removed)} file(s) older than {hours} hour(s) removed.")
