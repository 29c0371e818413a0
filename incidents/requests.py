"""Role requests (ICS 213RR): the rules for writing one, shared by the web form and the API.

A commander of the facility's incident writes its requests. A request that already has live
deployments (proposed, offered, accepted, on site) keeps its facility and role, keeps covering
their dates, and cannot ask for fewer people than it has.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count, Max, Min

from deploy_tracker.errors import IllegalTransition, InvalidInput, NotAllowed, RequestFull
from incidents import access
from incidents.models import Deployment, Facility, RoleRequest
from resources.models import Qualification

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def check(
    by: User,
    *,
    facility: Facility,
    qualification: Qualification,
    quantity: int,
    start: date,
    end: date,
    existing: RoleRequest | None = None,
) -> None:
    """Refuse, saying why, a request `by` may not write or that would strand its deployments."""
    if end < start:
        raise InvalidInput(f"The request ends ({end}) before it starts ({start}).", field="end")
    incident = facility.incident
    if not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can write its requests.")
    if existing is None:
        return
    live = existing.deployments.filter(status__in=Deployment.FILLING).aggregate(
        n=Count("pk"), first=Min("start"), last=Max("end")
    )
    if not live["n"]:
        return
    if facility.pk != existing.facility_id or qualification.pk != existing.qualification_id:
        raise IllegalTransition(
            f"Request #{existing.pk} has {live['n']} live deployment(s); its facility and qualification "
            "stay as they are (cancel them first, or make a new request)."
        )
    if start > live["first"] or end < live["last"]:
        raise IllegalTransition(
            f"Request #{existing.pk} has live deployments from {live['first']} to {live['last']}; "
            "its dates must still cover them."
        )
    if quantity < live["n"]:
        raise RequestFull(
            f"Request #{existing.pk} already has {live['n']} live deployment(s); it cannot ask for fewer."
        )


def save(request: RoleRequest, *, by: User) -> RoleRequest:
    """Create or update `request` (an unsaved or edited instance) after `check`, holding the
    request's row as `workflow.propose` does, so no proposal slips in between."""
    with transaction.atomic():
        existing = None
        if request.pk is not None:
            existing = RoleRequest.objects.select_for_update().get(pk=request.pk)
        check(
            by,
            facility=request.facility,
            qualification=request.qualification,
            quantity=request.quantity,
            start=request.start,
            end=request.end,
            existing=existing,
        )
        if request.pk is None:
            request.created_by = by
        request.save()
    return request
