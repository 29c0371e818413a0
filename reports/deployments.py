"""Reads about deployments that demobilization and logistics share, each in one query.

Counts of what hangs off a deployment (equipment out, time not approved) are correlated
subqueries, so listing 5 or 5,000 people is the same single statement — never a query per row.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.db.models import (
    Case,
    CharField,
    Count,
    DateField,
    Func,
    IntegerField,
    OuterRef,
    Q,
    StringAgg,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, TruncDate

from incidents import workflow
from incidents.models import Approval, Deployment, EquipmentIssue, TimeEntry

Status = Deployment.Status


def planned_release() -> Func:
    """The day a person is due to leave: the planned release when one is set, else the last day."""
    return Coalesce("planned_release", "end", output_field=DateField())


def leaves_on(tz: zoneinfo.ZoneInfo) -> Case:
    """The day a person left (released, in the incident's time zone) or is due to leave."""
    return Case(
        When(
            status=Status.RELEASED,
            released_at__isnull=False,
            then=TruncDate("released_at", tzinfo=tz),
        ),
        default=planned_release(),
        output_field=DateField(),
    )


def _count(model: Any, condition: Q) -> Coalesce:
    rows = (
        model.objects.filter(condition, deployment=OuterRef("pk"))
        .order_by()
        .values("deployment")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def equipment_issued() -> Coalesce:
    return _count(EquipmentIssue, Q())


def equipment_out() -> Coalesce:
    """Equipment items not returned (rows, as `workflow.release_blockers` counts them)."""
    return _count(EquipmentIssue, Q(returned_at__isnull=True))


def time_not_approved() -> Coalesce:
    return _count(TimeEntry, ~Q(status=Approval.APPROVED))


def items_out() -> Subquery:
    """What is still out, e.g. "2× N95 respirators; 1× Portable radio"."""
    rows = (
        EquipmentIssue.objects.filter(deployment=OuterRef("pk"), returned_at__isnull=True)
        .order_by()
        .values("deployment")
        .annotate(items=StringAgg(Concat(Cast("quantity", CharField()), Value("× "), "item"), Value("; ")))
        .values("items")[:1]
    )
    return Subquery(rows, output_field=CharField())


def blockers(equipment_out: int, not_approved: int, travel_arranged: bool) -> list[str]:
    """What stands between a person and release, from counts read in bulk: the workflow's own
    rule and words (`incidents.workflow.checkout_blockers`)."""
    return workflow.checkout_blockers(
        equipment_out=equipment_out, time_not_approved=not_approved, travel_arranged=travel_arranged
    )
