"""What finance, logistics and demobilization need: hours, expenses, equipment."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from incidents.models.deployment import Deployment
from resources.models import money_field


class Approval(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Approvable(models.Model):
    """A record a commander or finance officer approves before it is paid."""

    status = models.CharField(max_length=10, choices=Approval.choices, default=Approval.SUBMITTED)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        constraints = [
            # Approved rows say who approved them and when; other rows carry no approval time.
            models.CheckConstraint(
                condition=Q(status=Approval.APPROVED, approved_at__isnull=False, approved_by__isnull=False)
                | (~Q(status=Approval.APPROVED) & Q(approved_at__isnull=True)),
                name="%(class)s_approval_matches_status",
            ),
        ]


class TimeEntry(Approvable):
    """Hours worked on one day of a deployment, regular and overtime apart (FEMA force account)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="time_entries")
    date = models.DateField()
    regular_hours = models.DecimalField(max_digits=4, decimal_places=2)
    overtime_hours = models.DecimalField(max_digits=4, decimal_places=2, default=0)
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "time entries"
        ordering = ["deployment", "date"]
        constraints = [
            *Approvable.Meta.constraints,
            models.UniqueConstraint(fields=["deployment", "date"], name="time_entry_one_per_day"),
            models.CheckConstraint(
                condition=Q(regular_hours__gte=0) & Q(overtime_hours__gte=0),
                name="time_entry_hours_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(regular_hours__lte=24 - F("overtime_hours")),
                name="time_entry_at_most_24_hours",
            ),
        ]
        indexes = [models.Index(fields=["date"], name="time_entry_date")]

    def __str__(self) -> str:
        return f"{self.date}: {self.regular_hours} h + {self.overtime_hours} h OT"


class Expense(Approvable):
    """A reimbursable cost of a deployment: lodging, per diem, mileage, travel."""

    class Category(models.TextChoices):
        LODGING = "lodging", "Lodging"
        PER_DIEM = "per_diem", "Per diem"
        MILEAGE = "mileage", "Mileage"
        AIRFARE = "airfare", "Airfare"
        RENTAL_CAR = "rental_car", "Rental car"
        OTHER = "other", "Other"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="expenses")
    date = models.DateField()
    category = models.CharField(max_length=20, choices=Category.choices)
    amount = money_field()
    distance_km = models.FloatField(null=True, blank=True, help_text="Mileage claims only.")
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["deployment", "date", "pk"]
        constraints = [
            *Approvable.Meta.constraints,
            models.CheckConstraint(condition=Q(amount__gte=0), name="expense_amount_gte_0"),
            models.CheckConstraint(
                condition=Q(distance_km__isnull=True) | Q(distance_km__gte=0),
                name="expense_distance_gte_0",
            ),
            models.CheckConstraint(
                condition=~Q(category="mileage") | Q(distance_km__isnull=False),
                name="expense_mileage_has_distance",
            ),
        ]
        indexes = [models.Index(fields=["date", "category"], name="expense_date_category")]

    def __str__(self) -> str:
        return f"{self.date} {self.get_category_display()} {self.amount}"


class EquipmentIssue(models.Model):
    """Equipment handed to a responder; demobilization waits until it comes back."""

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="equipment")
    item = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    issued_at = models.DateTimeField()
    returned_at = models.DateTimeField(null=True, blank=True)
    notes = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["deployment", "issued_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="equipment_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(returned_at__isnull=True) | Q(returned_at__gte=F("issued_at")),
                name="equipment_returned_after_issued",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity}× {self.item}"
