"""Time and money: responders log hours and expenses; commanders and finance officers approve.

FEMA force-account practice: hours per day with regular and overtime apart; expenses by
category; mileage at the incident's rate on the home ↔ facility distance (one way per claim:
the trip out and the trip home are two claims). A record is submitted, then approved or
rejected; an approved record is what finance pays and no longer changes. A rejected one can be
corrected and submitted again. Every submission and review is an Event of the deployment, so
it is in the activity log and on the incident's screens.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from deploy_tracker.errors import IllegalTransition, InvalidInput, NotAllowed
from incidents import access, events
from incidents.models import Approval, Deployment, Expense, TimeEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = Deployment.Status
CENT = Decimal("0.01")
# Time is worked on site; a released responder may still log their last days.
WORKING = (Status.ON_SITE, Status.RELEASED)
# How long after the deployment's end its people may still submit records.
LATE_SUBMISSION_DAYS = 30


def _decimal(value: Decimal | float | str | None, field: str, what: str) -> Decimal:
    if value is None or str(value).strip() == "":
        return Decimal(0)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{what} {value!r} is not a number.", field=field) from None
    if not number.is_finite() or number < 0:
        raise InvalidInput(f"{what} must be zero or more.", field=field)
    return number


def _day(value: date | str, field: str = "date") -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidInput(f"{value!r} is not a date (YYYY-MM-DD).", field=field) from None


def _may_submit(by: User, deployment: Deployment) -> None:
    incident = deployment.request.facility.incident
    if not (access.is_own(by, deployment) or access.can_approve_costs(by, incident)):
        raise NotAllowed(
            "Only the responder, or a commander or finance officer of the incident, can do this."
        )
    if deployment.status not in WORKING:
        raise IllegalTransition(
            f"Deployment #{deployment.pk} is {deployment.status}; time and expenses are recorded "
            "once the responder is checked in."
        )


def _within_deployment(deployment: Deployment, day: date) -> None:
    today = timezone.localdate(timezone=deployment.request.facility.incident.tz)
    if day > today:
        raise InvalidInput(f"{day} is in the future; record a day once it is worked.", field="date")
    if not deployment.start <= day <= deployment.end:
        raise InvalidInput(
            f"{day} is outside the deployment ({deployment.start} – {deployment.end}).", field="date"
        )
    if today > deployment.end + timedelta(days=LATE_SUBMISSION_DAYS):
        raise InvalidInput(
            f"The deployment ended more than {LATE_SUBMISSION_DAYS} days ago; ask finance to enter it.",
            field="date",
        )


def _deployment(deployment: Deployment | int) -> Deployment:
    pk = deployment if isinstance(deployment, int) else deployment.pk
    return Deployment.objects.select_related(
        "request__facility__incident", "request__qualification", "expert"
    ).get(pk=pk)


def _record_event(deployment: Deployment, type: str, *, by: User, **data: Any) -> None:
    events.write(
        [
            events.deployment_event(
                deployment,
                type,
                actor=by,
                at=timezone.now(),
                previous=None,
                for_responder=True,
                **data,
            )
        ]
    )


def log_time(
    deployment: Deployment | int,
    *,
    by: User,
    day: date | str,
    regular_hours: Decimal | float | str,
    overtime_hours: Decimal | float | str | None = 0,
    notes: str = "",
) -> TimeEntry:
    """Record (or correct, until approved) the hours of one day of a deployment."""
    deployment = _deployment(deployment)
    _may_submit(by, deployment)
    worked = _day(day)
    _within_deployment(deployment, worked)
    regular = _decimal(regular_hours, "regular_hours", "Regular hours")
    overtime = _decimal(overtime_hours, "overtime_hours", "Overtime hours")
    if regular + overtime > 24:
        raise InvalidInput(f"{regular + overtime} hours in one day is more than 24.", field="overtime_hours")
    if regular + overtime == 0:
        raise InvalidInput("Enter the hours worked that day.", field="regular_hours")
    with transaction.atomic():
        entry = TimeEntry.objects.select_for_update().filter(deployment=deployment, date=worked).first()
        if entry is not None and entry.status == Approval.APPROVED:
            raise IllegalTransition(
                f"The hours of {worked} are already approved; ask finance to change them."
            )
        entry = entry or TimeEntry(deployment=deployment, date=worked)
        entry.regular_hours, entry.overtime_hours = regular, overtime
        entry.notes = notes.strip()[:300]
        entry.status = Approval.SUBMITTED
        entry.save()
        _record_event(
            deployment,
            "time.submitted",
            by=by,
            day=worked.isoformat(),
            regular_hours=str(regular),
            overtime_hours=str(overtime),
        )
    return entry


def add_expense(
    deployment: Deployment | int,
    *,
    by: User,
    day: date | str,
    category: str,
    amount: Decimal | float | str | None = None,
    description: str = "",
) -> Expense:
    """Claim an expense; mileage is computed (distance home ↔ facility × the incident's rate)."""
    deployment = _deployment(deployment)
    _may_submit(by, deployment)
    spent = _day(day)
    _within_deployment(deployment, spent)
    if category not in Expense.Category.values:
        raise InvalidInput(
            f"Unknown category {category!r}; use one of {', '.join(Expense.Category.values)}.",
            field="category",
        )
    distance_km: float | None = None
    if category == Expense.Category.MILEAGE:
        if amount not in (None, ""):
            raise InvalidInput(
                "Mileage is computed from the distance home ↔ facility at the incident's rate; "
                "leave the amount empty.",
                field="amount",
            )
        distance_km = deployment.distance_km
        rate = deployment.request.facility.incident.mileage_rate
        value = (Decimal(str(distance_km)) * rate).quantize(CENT, ROUND_HALF_UP)
    else:
        value = _decimal(amount, "amount", "Amount").quantize(CENT, ROUND_HALF_UP)
        if value == 0:
            raise InvalidInput("Enter the amount spent.", field="amount")
    with transaction.atomic():
        expense = Expense.objects.create(
            deployment=deployment,
            date=spent,
            category=category,
            amount=value,
            distance_km=distance_km,
            description=description.strip()[:300],
        )
        _record_event(
            deployment, "expense.submitted", by=by, expense=expense.pk, category=category, amount=str(value)
        )
    return expense


def review(
    records: Sequence[TimeEntry | Expense],
    *,
    by: User,
    approve: bool,
    reason: str = "",
    at: datetime | None = None,
) -> int:
    """Approve or reject submitted records (one incident's commanders or finance officers).

    Records already reviewed are left as they are. Returns how many changed.
    """
    if not records:
        return 0
    if not approve and not reason.strip():
        raise InvalidInput(
            "Say why the records are rejected, so the responder can correct them.", field="reason"
        )
    now = at or timezone.now()
    model: type[TimeEntry] | type[Expense] = TimeEntry if isinstance(records[0], TimeEntry) else Expense
    ids = [r.pk for r in records]
    rows: list[TimeEntry | Expense] = list(
        model.objects.filter(pk__in=ids).select_related(
            "deployment__request__facility__incident",
            "deployment__request__qualification",
            "deployment__expert",
        )
    )
    for incident in {r.deployment.request.facility.incident for r in rows}:
        if not access.can_approve_costs(by, incident):
            raise NotAllowed(
                f"Only commanders and finance officers of incident {incident.number} approve costs."
            )
    kind = "time" if model is TimeEntry else "expense"
    with transaction.atomic():
        pending = model.objects.filter(pk__in=ids, status=Approval.SUBMITTED)
        changed = set(pending.values_list("pk", flat=True))
        if approve:
            pending.update(status=Approval.APPROVED, approved_by=by, approved_at=now)
        else:
            pending.update(status=Approval.REJECTED)
        events.write(
            [
                events.deployment_event(
                    r.deployment,
                    f"{kind}.{'approved' if approve else 'rejected'}",
                    actor=by,
                    at=now,
                    previous=None,
                    for_responder=True,
                    record=r.pk,
                    day=r.date.isoformat(),
                    **({"amount": str(r.amount)} if isinstance(r, Expense) else {}),
                    **({} if approve else {"reason": reason.strip()}),
                )
                for r in rows
                if r.pk in changed
            ]
        )
    return len(changed)
