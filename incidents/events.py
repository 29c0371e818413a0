"""Writing to the append-only event log (ICS 214 activity log, live updates, replay)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from incidents import live
from incidents.models import Deployment, Event

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def deployment_event(
    deployment: Deployment,
    type: str,
    *,
    actor: User | AnonymousUser | None,
    at: datetime,
    previous: str | None,
    for_responder: bool = False,
    **data: Any,
) -> Event:
    """An unsaved event about a deployment's move (save it, or bulk-create many).

    Its data is compact and the same for every move: the deployment, its request, facility,
    qualification and expert, the state it left and the one it reached, plus `data`.
    `for_responder` makes it visible to the deployment's responder too (their own offers and
    what follows); otherwise only the incident's members see it.
    """
    request = deployment.request
    return Event(
        incident_id=request.facility.incident_id,
        deployment=deployment,
        expert_id=deployment.expert_id if for_responder else None,
        actor=actor if actor is not None and actor.is_authenticated else None,
        type=type,
        at=at,
        data={
            "deployment": deployment.pk,
            "request": request.pk,
            "facility": request.facility.code,
            "qualification": request.qualification.code,
            "expert": deployment.expert_id,
            "from": previous,
            "to": deployment.status,
            **data,
        },
    )


def incident_event(
    incident_id: int, type: str, *, actor: User | AnonymousUser | None, at: datetime, **data: Any
) -> Event:
    """An unsaved event about the incident itself (a job ending, say): its members see it."""
    return Event(
        incident_id=incident_id,
        actor=actor if actor is not None and actor.is_authenticated else None,
        type=type,
        at=at,
        data=data,
    )


def write(events: list[Event]) -> list[Event]:
    """Insert events in the caller's transaction and announce them once it commits.

    The advisory lock (PostgreSQL) makes one incident's events commit in id order, which is
    what lets a reconnecting client replay "everything after id N" without a gap.
    """
    if not events:
        return events
    live.serialize_commits(e.incident_id for e in events)
    if len(events) == 1:
        events[0].save()
    else:
        Event.objects.bulk_create(events)
    live.queue(e.pk for e in events)
    return events
