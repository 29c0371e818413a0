"""An incident, its people (memberships), its facilities and their role requests."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone as dj_timezone

from resources.models import LATITUDE_VALIDATORS, LONGITUDE_VALIDATORS, Qualification, coordinate_checks


@functools.cache
def _known_zones() -> frozenset[str]:
    """The IANA names, read from disk once (the call scans the whole zoneinfo tree)."""
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    """Reject names the IANA database does not know."""
    if value not in _known_zones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. America/Los_Angeles).")


class Incident(models.Model):
    """An emergency response, with the work/rest and cost policy its deployments follow."""

    class Kind(models.TextChoices):
        PANDEMIC = "pandemic", "Pandemic / public health"
        WILDFIRE = "wildfire", "Wildfire"
        FLOOD = "flood", "Flood"
        EARTHQUAKE = "earthquake", "Earthquake"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEMOBILIZING = "demobilizing", "Demobilizing"
        CLOSED = "closed", "Closed"

    number = models.CharField(max_length=40, unique=True, help_text="e.g. WA-2026-01")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    timezone = models.CharField(max_length=64, default="America/Los_Angeles", validators=[validate_timezone])
    cost_code = models.CharField(max_length=60, blank=True)
    start = models.DateField(default=dj_timezone.localdate)
    end = models.DateField(null=True, blank=True)
    max_deployment_days = models.PositiveIntegerField(
        default=14, help_text="Longest assignment without an approved extension (NWCG: 14)."
    )
    max_extended_days = models.PositiveIntegerField(
        default=30, help_text="Longest assignment even with an approved extension (NWCG: 30)."
    )
    rest_days = models.PositiveIntegerField(
        default=2, help_text="Days off required before a person's next assignment."
    )
    default_radius_km = models.PositiveIntegerField(default=300)
    mileage_rate = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("0.435"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Reimbursed per km of home ↔ facility travel.",
    )
    offer_response_hours = models.PositiveIntegerField(
        default=24, help_text="How long a responder has to answer an offer."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start", "number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=F("start")), name="incident_end_gte_start"
            ),
            models.CheckConstraint(
                condition=Q(max_deployment_days__gt=0), name="incident_max_deployment_days_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(max_extended_days__gte=F("max_deployment_days")),
                name="incident_extension_gte_max_days",
            ),
            models.CheckConstraint(condition=Q(default_radius_km__gt=0), name="incident_radius_gt_0"),
            models.CheckConstraint(condition=Q(mileage_rate__gte=0), name="incident_mileage_rate_gte_0"),
            models.CheckConstraint(condition=Q(offer_response_hours__gt=0), name="incident_offer_hours_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def local(self, moment: datetime) -> datetime:
        """A stored (UTC) moment as the incident's people read it."""
        return dj_timezone.localtime(moment, self.tz)


class IncidentMembership(models.Model):
    """A user's role in one incident; the source of every read and write right there."""

    class Role(models.TextChoices):
        COMMANDER = "commander", "Incident commander / section chief"
        FINANCE = "finance", "Finance officer"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        ordering = ["incident", "role", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "incident"], name="membership_one_role_per_incident"),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.incident.number}"


class Facility(models.Model):
    """A place people are sent to: hospital, long-term care, alternate care or vaccination site."""

    class Kind(models.TextChoices):
        HOSPITAL = "hospital", "Hospital"
        LONG_TERM_CARE = "long_term_care", "Long-term care"
        ALTERNATE_CARE_SITE = "alternate_care_site", "Alternate care site"
        VACCINATION_SITE = "vaccination_site", "Vaccination site"
        TESTING_SITE = "testing_site", "Testing site"
        OTHER = "other", "Other"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="facilities")
    code = models.CharField(max_length=40, help_text="Unique within the incident, e.g. HOSP-SPK-01")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices, default=Kind.OTHER)
    address = models.CharField(max_length=300, blank=True)
    county = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=2, help_text="Two-letter state code.")
    latitude = models.FloatField(validators=LATITUDE_VALIDATORS)
    longitude = models.FloatField(validators=LONGITUDE_VALIDATORS)
    contact_name = models.CharField(max_length=200, blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)
    contact_email = models.EmailField(blank=True)
    reporting_instructions = models.TextField(
        blank=True, help_text="Where and to whom an arriving responder reports."
    )

    class Meta:
        verbose_name_plural = "facilities"
        ordering = ["incident", "code"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "code"], name="facility_code_unique_per_incident"),
            # Matched against credentials' jurisdictions, which are two capital letters too.
            models.CheckConstraint(
                condition=Q(state__regex=r"^[A-Z]{2}$"), name="facility_state_two_letters"
            ),
            *coordinate_checks("facility"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class RoleRequest(models.Model):
    """An ICS-213RR resource request: N people with a qualification at a facility for dates."""

    class Priority(models.TextChoices):
        CRITICAL = "critical", "Critical"
        HIGH = "high", "High"
        NORMAL = "normal", "Normal"

    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="requests")
    qualification = models.ForeignKey(Qualification, on_delete=models.PROTECT, related_name="requests")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    start = models.DateField()
    end = models.DateField()
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    max_travel_km = models.PositiveIntegerField(
        null=True, blank=True, help_text="Blank: the incident's default radius."
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["facility", "start", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="request_quantity_gt_0"),
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="request_end_gte_start"),
            models.CheckConstraint(
                condition=Q(max_travel_km__isnull=True) | Q(max_travel_km__gt=0),
                name="request_max_travel_gt_0",
            ),
        ]
        indexes = [
            models.Index(fields=["qualification", "start", "end"], name="request_match_lookup"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.quantity}× {self.qualification.code} at {self.facility.code}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1
