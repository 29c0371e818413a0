from __future__ import annotations

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Read-only reporting: demobilization, logistics, finance."""

    name = "reports"
