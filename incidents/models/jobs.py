"""Long work done outside the request (matching a national roster, big exports and imports)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from incidents.models.incident import Incident


class Job(models.Model):
    """One piece of background work: what was asked, by whom, how far it got, its result.

    Most jobs belong to an incident (matching, exports): progress while they run also travels on
    the incident's live channel (incidents/live.py), and their end is an Event in its log. A roster
    or incident-workbook import belongs to none: its row alone records it, and its page polls it.
    """

    class Kind(models.TextChoices):
        MATCHING = "matching", "Matching"
        EXPORT = "export", "Export"
        IMPORT = "import", "Import"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    incident = models.ForeignKey(
        Incident, on_delete=models.PROTECT, related_name="jobs", null=True, blank=True
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    options = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(
        default=dict,
        blank=True,
        help_text="How far it got, {stage, done, total}: what pages polling the job show.",
    )
    result = models.JSONField(null=True, blank=True, help_text="What the work produced, when done.")
    error = models.TextField(blank=True, help_text="Why it failed, in the user's terms.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["incident", "-created_at"], name="job_incident_recent")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job #{self.pk} ({self.status})"
