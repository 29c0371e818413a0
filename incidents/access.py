"""Who may see and do what. Every door scopes its querysets through `visible()`.

Read rights: a superuser sees everything; a member of an incident (commander, finance,
viewer) sees that incident's records; a responder sees their own Expert record and their own
deployments with what hangs off them — never another responder's. Write rights for the
workflow are checked in incidents/workflow.py with the helpers below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q

from incidents.models import (
    Deployment,
    EquipmentIssue,
    Event,
    Exclusion,
    Expense,
    Facility,
    HealthScreening,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from resources.models import Agency, Availability, Credential, Expert, Qualification

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser

Role = IncidentMembership.Role

_DEPLOYMENT = "deployment__request__facility__incident"
# A proposal is the commander's working draft: the responder sees it once it is offered.
_OWN_DEPLOYMENT = ~Q(status=Deployment.Status.PROPOSED)

# For each model: the path to its incident (empty for Incident itself) and, when responders
# may see some of its rows, the path to the responder's user. Event.expert is set only on
# events meant for that responder (incidents/events.py).
_SCOPES: dict[type[models.Model], tuple[str, str | None]] = {
    Incident: ("", None),
    IncidentMembership: ("incident", None),
    Job: ("incident", None),
    Facility: ("incident", None),
    RoleRequest: ("facility__incident", None),
    Exclusion: ("request__facility__incident", None),
    Deployment: ("request__facility__incident", "expert__user"),
    Event: ("incident", "expert__user"),
    HealthScreening: (_DEPLOYMENT, "deployment__expert__user"),
    TimeEntry: (_DEPLOYMENT, "deployment__expert__user"),
    Expense: (_DEPLOYMENT, "deployment__expert__user"),
    EquipmentIssue: (_DEPLOYMENT, "deployment__expert__user"),
}

# Roster records: every commander needs the whole roster to match against; finance officers
# and viewers see the people deployed in their incidents; a responder sees themself.
_ROSTER_SCOPES: dict[type[models.Model], str] = {Expert: "", Credential: "expert", Availability: "expert"}
# Reference data about no one and no incident: every signed-in user reads it.
_CATALOG: frozenset[type[models.Model]] = frozenset({Qualification, Agency})


def _prefix(path: str, field: str) -> str:
    return f"{path}__{field}" if path else field


def member_incident_ids(user: Actor) -> models.QuerySet[IncidentMembership, Any]:
    """The ids of the incidents `user` is a member of, as a subquery."""
    return IncidentMembership.objects.filter(user_id=user.pk or 0).values("incident_id")


def role_in(user: Actor, incident: Incident | int) -> str | None:
    """The user's role in the incident, or None."""
    if not user.is_authenticated:
        return None
    incident_id = incident if isinstance(incident, int) else incident.pk
    return (
        IncidentMembership.objects.filter(user_id=user.pk, incident_id=incident_id)
        .values_list("role", flat=True)
        .first()
    )


def can_view_incident(user: Actor, incident: Incident | int) -> bool:
    """Superusers and every member of the incident (commander, finance, viewer)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_superuser) or role_in(user, incident) is not None


def can_command(user: Actor, incident: Incident | int) -> bool:
    """Superusers and the incident's commanders may run its operations."""
    if not user.is_authenticated:
        return False
    return bool(user.is_superuser) or role_in(user, incident) == Role.COMMANDER


def can_approve_costs(user: Actor, incident: Incident | int) -> bool:
    """Commanders and finance officers approve time and expenses."""
    if not user.is_authenticated:
        return False
    return bool(user.is_superuser) or role_in(user, incident) in (Role.COMMANDER, Role.FINANCE)


def is_own(user: Actor, deployment: Deployment) -> bool:
    """Whether the deployment belongs to the responder logged in as `user`."""
    return user.is_authenticated and deployment.expert.user_id == user.pk


def visible[M: models.Model](user: Actor, queryset: models.QuerySet[M]) -> models.QuerySet[M]:
    """Narrow `queryset` to the rows `user` may see. Unknown models are refused, not leaked."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    model = queryset.model
    if model in _CATALOG:
        return queryset
    if model in _SCOPES:
        incident_path, responder_path = _SCOPES[model]
        rule = Q(**{_prefix(incident_path, "id__in"): member_incident_ids(user)})
        if responder_path is not None:
            own = Q(**{responder_path: user})
            if model is Deployment:
                own &= _OWN_DEPLOYMENT
            rule |= own
        return queryset.filter(rule)
    if model in _ROSTER_SCOPES:
        path = _ROSTER_SCOPES[model]
        if IncidentMembership.objects.filter(user_id=user.pk, role=Role.COMMANDER).exists():
            return queryset
        deployed_here = Deployment.objects.filter(
            request__facility__incident_id__in=member_incident_ids(user)
        ).values("expert_id")
        rule = Q(**{_prefix(path, "id__in"): deployed_here}) | Q(**{_prefix(path, "user"): user})
        return queryset.filter(rule)
    raise LookupError(f"No visibility rule for {model.__name__}; add one to incidents/access.py.")
