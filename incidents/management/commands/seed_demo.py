"""`manage.py seed_demo`: load the demo response (idempotent)."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fixtures.demo import DEFAULT_EXPERTS, INCIDENT_NUMBER, load_demo


class Command(BaseCommand):
    help = (
        "Load the demo response: a statewide COVID-19-style surge in Washington with its roster, "
        "facilities, requests, deployments in every state and the demo logins. Safe to run again."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--experts",
            type=int,
            default=DEFAULT_EXPERTS,
            help=f"Roster size (default {DEFAULT_EXPERTS}); raise it for benchmarks, e.g. 100000.",
        )
        parser.add_argument("--reset", action="store_true", help="Delete the demo data first.")
        parser.add_argument("--password", default="demo", help="Password of every demo login.")

    def handle(self, *args: Any, experts: int, reset: bool, password: str, **options: Any) -> None:
        started = time.perf_counter()
        try:
            summary = load_demo(experts=experts, password=password, reset=reset)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"Roster: {summary.experts_total} demo experts ({summary.experts_created} new), {seconds:.1f} s."
        )
        if summary.incident_created:
            self.stdout.write(f"Incident {INCIDENT_NUMBER} created.")
        else:
            self.stdout.write(f"Incident {INCIDENT_NUMBER} already loaded; left as it is.")
        states = ", ".join(f"{status} {n}" for status, n in summary.deployments.items())
        self.stdout.write(f"Deployments: {states}.")
        self.stdout.write("Demo logins:")
        for username, what in summary.logins:
            self.stdout.write(f"  {username:<12} {what}")
        self.stdout.write(
            self.style.WARNING(
                f"Every demo login has the password {password!r}. Never load the demo on a real system."
            )
        )
