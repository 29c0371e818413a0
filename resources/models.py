"""The roster: who can be deployed, with what qualifications, when."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower


def money_field(**kwargs: Any) -> models.DecimalField[Decimal, Decimal]:
    """An amount of money: Decimal, cents, never negative (the table adds a check constraint)."""
    return models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))], **kwargs
    )


LATITUDE_VALIDATORS = [MinValueValidator(-90.0), MaxValueValidator(90.0)]
LONGITUDE_VALIDATORS = [MinValueValidator(-180.0), MaxValueValidator(180.0)]


def coordinate_checks(prefix: str) -> list[models.CheckConstraint]:
    """Database checks that keep latitude and longitude on the globe."""
    return [
        models.CheckConstraint(
            condition=Q(latitude__gte=-90) & Q(latitude__lte=90), name=f"{prefix}_latitude_range"
        ),
        models.CheckConstraint(
            condition=Q(longitude__gte=-180) & Q(longitude__lte=180),
            name=f"{prefix}_longitude_range",
        ),
    ]


class Agency(models.Model):
    """An employer or sponsor of experts: who pays, and at what fringe rate."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200, unique=True)
    fringe_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Fringe/benefit rate as a fraction of regular pay (0.3250 = 32.5 %).",
    )
    contact_email = models.EmailField(blank=True)

    class Meta:
        verbose_name_plural = "agencies"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(fringe_rate__gte=0), name="agency_fringe_rate_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name


class Qualification(models.Model):
    """A catalog entry: a license, certification or skill a role request can ask for."""

    class Kind(models.TextChoices):
        LICENSE = "license", "License"
        CERTIFICATION = "certification", "Certification"
        SKILL = "skill", "Skill"

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SKILL)
    jurisdictional = models.BooleanField(
        default=False,
        help_text="The credential must be issued by the state the facility is in.",
    )

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class Expert(models.Model):
    """A rostered person who can be deployed."""

    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    phone = models.CharField(max_length=40, blank=True)
    agency = models.ForeignKey(Agency, on_delete=models.PROTECT, related_name="experts")
    home_place = models.CharField(max_length=200, blank=True)
    latitude = models.FloatField(validators=LATITUDE_VALIDATORS)
    longitude = models.FloatField(validators=LONGITUDE_VALIDATORS)
    max_travel_km = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    hourly_rate = money_field()
    overtime_multiplier = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        default=Decimal("1.50"),
        validators=[MinValueValidator(Decimal("1"))],
    )
    active = models.BooleanField(default=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="expert",
        help_text="The login of this person, when they use the app as a responder.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            # The column is unique too; this one also rejects A.Lee@x vs a.lee@x.
            models.UniqueConstraint(Lower("email"), name="expert_email_ci_unique"),
            models.CheckConstraint(condition=Q(hourly_rate__gte=0), name="expert_hourly_rate_gte_0"),
            models.CheckConstraint(
                condition=Q(overtime_multiplier__gte=1), name="expert_overtime_multiplier_gte_1"
            ),
            models.CheckConstraint(condition=Q(max_travel_km__gt=0), name="expert_max_travel_gt_0"),
            *coordinate_checks("expert"),
        ]
        indexes = [
            # Matching filters the active roster by a latitude band first.
            models.Index(fields=["active", "latitude", "longitude"], name="expert_active_location"),
            models.Index(fields=["last_name", "first_name"], name="expert_name_order"),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def overtime_rate(self) -> Decimal:
        return Decimal(self.hourly_rate * self.overtime_multiplier).quantize(Decimal("0.01"))


class Credential(models.Model):
    """An expert's proof of a qualification: number, issuing state, verification, expiry."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="credentials")
    qualification = models.ForeignKey(Qualification, on_delete=models.PROTECT, related_name="credentials")
    number = models.CharField(max_length=60, blank=True)
    jurisdiction = models.CharField(
        max_length=2, blank=True, help_text="Two-letter state code of the issuing authority."
    )
    verified = models.BooleanField(default=False)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    expires_on = models.DateField(null=True, blank=True, help_text="Blank: does not expire.")

    class Meta:
        ordering = ["expert", "qualification"]
        constraints = [
            models.UniqueConstraint(
                fields=["expert", "qualification", "jurisdiction"],
                name="credential_unique_per_jurisdiction",
            ),
            models.CheckConstraint(
                condition=Q(verified=True) | (Q(verified_at__isnull=True) & Q(verified_by__isnull=True)),
                name="credential_unverified_has_no_verified_at",
            ),
            models.CheckConstraint(
                condition=Q(jurisdiction="") | Q(jurisdiction__regex=r"^[A-Z]{2}$"),
                name="credential_jurisdiction_two_letters",
            ),
        ]
        indexes = [
            models.Index(fields=["qualification", "verified", "expires_on"], name="credential_match_lookup"),
        ]

    def __str__(self) -> str:
        where = f" ({self.jurisdiction})" if self.jurisdiction else ""
        return f"{self.qualification.code}{where} — {self.expert}"


class Availability(models.Model):
    """A window (inclusive dates) in which an expert can deploy."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="availability")
    start = models.DateField()
    end = models.DateField()

    class Meta:
        verbose_name_plural = "availability"
        ordering = ["expert", "start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gte=F("start")), name="availability_end_gte_start"),
        ]
        indexes = [models.Index(fields=["expert", "start", "end"], name="availability_window")]

    def __str__(self) -> str:
        return f"{self.expert}: {self.start} – {self.end}"
