"""`manage.py expire_offers`: expire offers past their response deadline; their slots reopen."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from incidents import workflow


class Command(BaseCommand):
    help = (
        "Expire every offer whose response deadline has passed, so its slot reopens for matching. "
        "Safe to run often (e.g. every minute from cron or a scheduler); offers are also expired "
        "when someone tries to answer them late."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        expired = workflow.expire_due_offers()
        for d in expired:
            self.stdout.write(f"expired: deployment #{d.pk} ({d.expert} → {d.request.facility.code})")
        self.stdout.write(f"{len(expired)} offer(s) expired.")
