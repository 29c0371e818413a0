"""Reads shared by several doors (the incident page, its live fragment, later the API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Subquery

from incidents.models import Approval, Deployment, EquipmentIssue, Event, Incident, RoleRequest
from resources.models import Credential

Status = Deployment.Status
ALERT_TYPES = (
    "deployment.declined",
    "deployment.expired",
    "deployment.cancelled",
    "deployment.screening_failed",
)


@dataclass(frozen=True)
class Totals:
    """Slots of an incident's running and coming requests, by how far they are filled."""

    requested: int
    on_site: int
    accepted: int
    offered: int
    proposed: int

    @property
    def open(self) -> int:
        return max(0, self.requested - self.on_site - self.accepted - self.offered - self.proposed)


def request_fill(incident: Incident) -> QuerySet[RoleRequest]:
    """Each request not yet ended with its deployments counted per state, in one query."""

    def count(status: str) -> Count:
        return Count("deployments", filter=Q(deployments__status=status))

    return (
        RoleRequest.objects.filter(facility__incident=incident)
        .select_related("facility", "qualification")
        .annotate(
            n_on_site=count(Status.ON_SITE),
            n_accepted=count(Status.ACCEPTED),
            n_offered=count(Status.OFFERED),
            n_proposed=count(Status.PROPOSED),
        )
        .order_by("priority", "facility__code", "start", "pk")
    )


def totals(rows: list[RoleRequest]) -> Totals:
    return Totals(
        requested=sum(r.quantity for r in rows),
        on_site=sum(r.n_on_site for r in rows),  # type: ignore[attr-defined]
        accepted=sum(r.n_accepted for r in rows),  # type: ignore[attr-defined]
        offered=sum(r.n_offered for r in rows),  # type: ignore[attr-defined]
        proposed=sum(r.n_proposed for r in rows),  # type: ignore[attr-defined]
    )


def alerts(incident: Incident, limit: int = 30) -> QuerySet[Event]:
    """What a commander must react to: declines, expiries, cancellations, failed screenings."""
    return Event.objects.filter(incident=incident, type__in=ALERT_TYPES).order_by("-id")[:limit]


# An open offer due to lapse within this window is worth a commander's call to the responder.
OFFER_WARNING = timedelta(hours=12)


def expiring_offers(incident: Incident, now: datetime) -> QuerySet[Deployment]:
    """Open offers whose response deadline falls within `OFFER_WARNING` of `now`, soonest first
    (lapsed ones are expired on read elsewhere and become `deployment.expired` alerts)."""
    return (
        Deployment.objects.filter(
            request__facility__incident=incident,
            status=Status.OFFERED,
            offer_expires_at__gt=now,
            offer_expires_at__lte=now + OFFER_WARNING,
        )
        .select_related("expert", "request__facility", "request__qualification")
        .order_by("offer_expires_at", "pk")
    )


def credentials_lapsing(incident: Incident) -> QuerySet[Deployment]:
    """Offered, accepted and on-site deployments whose expert holds no verified credential for
    the role (of the facility's state, where the role is licensed by state) that stays valid to
    the deployment's last day. Matching never proposes such a pairing; this catches what changed
    afterwards (a credential edited or re-imported, a deployment extended). `credential_expires`
    is the latest expiry among the expert's verified credentials for the role, or None."""
    usable = Credential.objects.filter(
        expert=OuterRef("expert"), qualification=OuterRef("request__qualification"), verified=True
    ).filter(Q(jurisdiction=OuterRef("request__facility__state")) | Q(qualification__jurisdictional=False))
    latest = (
        usable.filter(expires_on__isnull=False)
        .values("expert")
        .annotate(latest=Max("expires_on"))
        .values("latest")
    )
    return (
        Deployment.objects.filter(request__facility__incident=incident, status__in=Deployment.HOLDING)
        .exclude(Exists(usable.filter(Q(expires_on__isnull=True) | Q(expires_on__gte=OuterRef("end")))))
        .annotate(credential_expires=Subquery(latest))
        .select_related("expert", "request__facility", "request__qualification")
        .order_by(F("credential_expires").asc(nulls_first=True), "start", "pk")
    )


def due_out(incident: Incident, until: date) -> QuerySet[Deployment]:
    """Who is on site and due for release by `until` (ICS 221), with what blocks each release
    counted in the same query: equipment still out, time entries not approved."""
    return (
        Deployment.objects.filter(
            request__facility__incident=incident, status=Deployment.Status.ON_SITE, end__lte=until
        )
        .select_related("expert__agency", "request__facility", "request__qualification")
        .prefetch_related(
            Prefetch("equipment", queryset=EquipmentIssue.objects.filter(returned_at__isnull=True))
        )
        .annotate(
            n_unapproved=Count(
                "time_entries", filter=~Q(time_entries__status=Approval.APPROVED), distinct=True
            ),
        )
        .order_by("end", "request__facility__code", "expert__last_name")
    )


def facility_points(incident: Incident, rows: list[RoleRequest]) -> list[dict[str, object]]:
    """The incident's facilities for the map: where, and how filled their running requests are
    (`full`, `partial`, `empty`, or `idle` with nothing requested). `rows` is `request_fill`'s."""
    per: dict[int, list[int]] = {}
    for r in rows:
        counts = per.setdefault(r.facility_id, [0, 0, 0])
        counts[0] += r.quantity
        counts[1] += r.n_on_site + r.n_accepted  # type: ignore[attr-defined]
        counts[2] += r.n_offered + r.n_proposed  # type: ignore[attr-defined]
    points: list[dict[str, object]] = []
    for f in incident.facilities.order_by("code"):
        requested, filled, pending = per.get(f.pk, [0, 0, 0])
        state = (
            "idle" if not requested else "full" if filled >= requested else "partial" if filled else "empty"
        )
        points.append(
            {
                "code": f.code,
                "name": f.name,
                "lat": f.latitude,
                "lon": f.longitude,
                "requested": requested,
                "filled": filled,
                "pending": pending,
                "state": state,
            }
        )
    return points
