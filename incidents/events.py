"""Writing to the append-only event log (ICS 214 activity log, live updates, replay)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents.models import Deployment, Event, Incident

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def record(
    type: str,
    *,
    incident: Incident | int,
    actor: User | AnonymousUser | None,
    deployment: Deployment | None = None,
    for_responder: bool = False,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Event:
    """Append one event inside the caller's transaction.

    `for_responder` makes the event visible to the deployment's responder too (their own
    offers and what follows); without it only the incident's members see it.
    """
    incident_id = incident if isinstance(incident, int) else incident.pk
    return Event.objects.create(
        incident_id=incident_id,
        deployment=deployment,
        expert_id=deployment.expert_id if deployment is not None and for_responder else None,
        actor=actor if isinstance(actor, get_user_model()) else None,
        type=type,
        at=at or timezone.now(),
        data=data or {},
    )
