"""`manage.py match INCIDENT`: propose the optimal assignment for every open slot."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deploy_tracker.errors import DomainError
from incidents.matching.loader import Options, run
from incidents.models import Incident


class Command(BaseCommand):
    help = (
        "Propose the optimal assignment of experts to every open slot of an incident (critical "
        "before high before normal, then least travel). Without --dry-run the incident's unlocked "
        "proposals are replaced by the new ones."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("incident", help="Incident number, e.g. WA-2026-01.")
        parser.add_argument("--dry-run", action="store_true", help="Show the answer; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print the JSON document of CONTRACTS.md.")
        parser.add_argument(
            "--radius-km",
            type=float,
            help="What-if: use this radius for every request (each expert's own limit still applies).",
        )
        parser.add_argument(
            "--include-unverified", action="store_true", help="What-if: count unverified credentials too."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        incident = Incident.objects.filter(number=options["incident"]).first()
        if incident is None:
            raise CommandError(f"No incident numbered {options['incident']!r}.", returncode=2)
        if options["radius_km"] is not None and options["radius_km"] <= 0:
            raise CommandError("--radius-km must be more than 0.")
        try:
            doc = run(
                incident,
                by=None,
                options=Options(
                    dry_run=options["dry_run"],
                    radius_km=options["radius_km"],
                    include_unverified=options["include_unverified"],
                ),
            )
        except DomainError as exc:
            raise CommandError(exc.message, returncode=exc.exit_code) from exc
        if options["json"]:
            self.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False))
            return
        self.report(doc, dry_run=options["dry_run"])

    def report(self, doc: dict[str, Any], *, dry_run: bool) -> None:
        summary = doc["summary"]
        verb = "would propose" if dry_run else "proposed"
        self.stdout.write(
            f"{doc['incident']}: {verb} {summary['proposed']} deployment(s), "
            f"{summary['total_distance_km']:.1f} km of travel in all, in {summary['seconds']:.2f} s."
        )
        for priority in ("critical", "high", "normal"):
            filled, still_open = summary["filled"][priority], summary["open"][priority]
            self.stdout.write(f"  {priority:<8} filled {filled:>5}   open {still_open:>5}")
        gain = summary.get("compared_to_plain")
        if gain:
            more = ", ".join(f"{n:+d} {p}" for p, n in gain["filled"].items())
            self.stdout.write(
                f"  what-if against a plain run: {more} slots filled, "
                f"{gain['total_distance_km']:+.1f} km of travel"
            )
        for row in doc["unfilled"]:
            reasons = ", ".join(
                f"{name} {n}" for name, n in sorted(row["reasons"].items(), key=lambda kv: -kv[1])
            )
            self.stdout.write(
                f"  open: request {row['request']} {row['qualification']} at {row['facility']} "
                f"({row['priority']}), {row['missing']} missing — {reasons}"
            )
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
