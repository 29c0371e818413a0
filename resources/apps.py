from __future__ import annotations

from django.apps import AppConfig


class ResourcesConfig(AppConfig):
    """The roster: agencies, qualifications, experts, credentials, availability."""

    name = "resources"
