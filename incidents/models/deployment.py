"""A deployment (expert × request) and what happens to it: screening and the event log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from incidents.models.incident import Incident, RoleRequest
from resources.models import Expert


class DeploymentStatus(models.TextChoices):
    """Where a deployment is on its path (DESIGN.md, "Deployment workflow")."""

    PROPOSED = "proposed", "Proposed"
    OFFERED = "offered", "Offered"
    ACCEPTED = "accepted", "Accepted"
    ON_SITE = "on_site", "On site"
    RELEASED = "released", "Released"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# An expert holds these: they block every overlapping deployment (rest days included).
HOLDING = (DeploymentStatus.OFFERED, DeploymentStatus.ACCEPTED, DeploymentStatus.ON_SITE)
# These count against a request's quantity.
FILLING = (
    DeploymentStatus.PROPOSED,
    DeploymentStatus.OFFERED,
    DeploymentStatus.ACCEPTED,
    DeploymentStatus.ON_SITE,
)
FINAL = (
    DeploymentStatus.RELEASED,
    DeploymentStatus.DECLINED,
    DeploymentStatus.EXPIRED,
    DeploymentStatus.CANCELLED,
)


class Deployment(models.Model):
    """One expert sent (or proposed to be sent) to fill one slot of a role request."""

    Status = DeploymentStatus
    HOLDING = HOLDING
    FILLING = FILLING
    FINAL = FINAL

    class TravelMethod(models.TextChoices):
        DRIVE = "drive", "Personal vehicle"
        RENTAL = "rental", "Rental car"
        AIR = "air", "Air"
        AGENCY = "agency", "Agency vehicle"

    request = models.ForeignKey(RoleRequest, on_delete=models.PROTECT, related_name="deployments")
    expert = models.ForeignKey(Expert, on_delete=models.PROTECT, related_name="deployments")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    start = models.DateField()
    end = models.DateField()
    rest_until = models.DateField(
        help_text="Last day of the rest period after `end` (incident policy at proposal time)."
    )
    distance_km = models.FloatField(help_text="Great-circle km from home to the facility.")
    why = models.TextField(blank=True, help_text="Why matching chose this person.")
    locked = models.BooleanField(default=False, help_text="Kept by the commander when re-matching.")
    extension_approved = models.BooleanField(
        default=False, help_text="Approved to run past the incident's maximum deployment days."
    )
    travel_method = models.CharField(max_length=10, choices=TravelMethod.choices, default=TravelMethod.DRIVE)
    travel_arranged = models.BooleanField(default=False)
    planned_release = models.DateField(null=True, blank=True)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was declined or cancelled.")
    proposed_at = models.DateTimeField(default=timezone.now)
    offered_at = models.DateTimeField(null=True, blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["start", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="deployment_end_gte_start"),
            models.CheckConstraint(
                condition=Q(rest_until__gte=F("end")), name="deployment_rest_until_gte_end"
            ),
            models.CheckConstraint(condition=Q(distance_km__gte=0), name="deployment_distance_gte_0"),
            models.CheckConstraint(
                condition=Q(status__in=DeploymentStatus.values), name="deployment_status_valid"
            ),
            # An offer without a deadline would never expire.
            models.CheckConstraint(
                condition=~Q(status=DeploymentStatus.OFFERED) | Q(offer_expires_at__isnull=False),
                name="deployment_offer_has_deadline",
            ),
            # One live deployment per person per request (a decline may be followed by a new offer).
            models.UniqueConstraint(
                fields=["request", "expert"],
                condition=Q(status__in=FILLING),
                name="deployment_one_live_per_request_expert",
            ),
            # "No overlapping holding deployments per expert" is a PostgreSQL exclusion
            # constraint added in migration 0002 (btree_gist); SQLite has no such constraint,
            # so incidents/workflow.py checks it inside its IMMEDIATE transaction.
        ]
        indexes = [
            models.Index(fields=["expert", "status", "start"], name="deployment_expert_status"),
            models.Index(fields=["request", "status"], name="deployment_request_status"),
            models.Index(
                fields=["offer_expires_at"],
                condition=Q(status="offered"),
                name="deployment_open_offers",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.expert} → {self.request} ({self.status})"

    @property
    def is_holding(self) -> bool:
        return self.status in self.HOLDING


class HealthScreening(models.Model):
    """A fitness-for-duty check at check-in; every result is kept, pass or fail."""

    class Result(models.TextChoices):
        PASS = "pass", "Pass"
        FAIL = "fail", "Fail"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="screenings")
    screened_at = models.DateTimeField()
    screener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    temperature_c = models.DecimalField(max_digits=4, decimal_places=1)
    spo2 = models.PositiveSmallIntegerField(help_text="Oxygen saturation, %.")
    symptoms = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    result = models.CharField(max_length=4, choices=Result.choices)
    reasons = models.JSONField(default=list, blank=True, help_text="Why it failed, if it did.")
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-screened_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature_c__gte=30) & Q(temperature_c__lte=45),
                name="screening_temperature_range",
            ),
            models.CheckConstraint(condition=Q(spo2__gte=50) & Q(spo2__lte=100), name="screening_spo2_range"),
        ]

    def __str__(self) -> str:
        return f"{self.get_result_display()} — {self.deployment.expert} at {self.screened_at:%Y-%m-%d %H:%M}"


class EventQuerySet(models.QuerySet["Event"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Events are append-only; they are never updated.")


class Event(models.Model):
    """Append-only log of everything that happened: audit trail, live updates, replay source."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="events")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    # Kept so a responder's own events are one indexed lookup, not a join through deployments.
    expert = models.ForeignKey(Expert, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Blank: the system (e.g. an offer expiring).",
    )
    type = models.CharField(max_length=60, help_text="e.g. deployment.accepted")
    at = models.DateTimeField()
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["incident", "id"], name="event_incident_replay"),
            models.Index(fields=["expert", "id"], name="event_expert_replay"),
            models.Index(fields=["deployment", "id"], name="event_deployment_log"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise TypeError("Events are append-only; they are never updated.")
        super().save(*args, **kwargs)
