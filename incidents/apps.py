from __future__ import annotations

from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Incidents, facilities, requests, deployments and their workflow, events."""

    name = "incidents"
