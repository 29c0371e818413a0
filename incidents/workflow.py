"""The deployment workflow: one function per transition (DESIGN.md, "Deployment workflow").

proposed ─offer→ offered ─accept→ accepted ─check_in→ on_site ─release→ released
   │               ├─decline→ declined      (screening pass)    (demob check-out)
   └─cancel        ├─expire→ expired
                   └─cancel→ cancelled   accepted ─cancel / screening fail→ cancelled

Each function checks the actor's right and the current state, moves the state with a
conditional UPDATE (so of two concurrent moves on one deployment only one can win), writes an
Event in the same transaction and returns the fresh deployment. Every refusal is a
`deploy_tracker.errors.DomainError` whose message says why.

"An expert never holds two overlapping deployments in offered/accepted/on_site, rest days
included": PostgreSQL enforces it with the exclusion constraint of migration 0002; on SQLite
the check below runs inside the IMMEDIATE transaction, which holds the database's write lock
from BEGIN, so two offers for one expert are serialised and the second one sees the first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from geopy.distance import great_circle

from deploy_tracker.errors import (
    ExpertUnavailable,
    IllegalTransition,
    InvalidInput,
    NotAllowed,
    ReleaseBlocked,
    RequestFull,
)
from incidents import access, events
from incidents.models import (
    Approval,
    Deployment,
    EquipmentIssue,
    Exclusion,
    HealthScreening,
    Incident,
    RoleRequest,
)
from resources.models import Expert

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    Actor = User

Status = Deployment.Status
OVERLAP_CONSTRAINT = "deployment_no_overlap_per_expert"
_MOVE_ATTEMPTS = 3

# Fitness for duty (CDC screening practice): fever is 38.0 °C (100.4 °F) or more; oxygen
# saturation under 94 % needs medical review; any listed symptom sends the person home.
FEVER_C = Decimal("38.0")
MIN_SPO2 = 94
SYMPTOMS = {
    "fever": "Fever or chills",
    "cough": "New cough",
    "shortness_of_breath": "Shortness of breath",
    "sore_throat": "Sore throat",
    "loss_of_taste_or_smell": "New loss of taste or smell",
    "muscle_aches": "Muscle or body aches",
    "headache": "New headache",
    "congestion": "Congestion or runny nose",
    "nausea_or_diarrhea": "Nausea, vomiting or diarrhea",
}


# --- Time ---------------------------------------------------------------------------------------


def _when(at: datetime | None) -> datetime:
    """When the move happened: now, or earlier for a move recorded late (paper after an outage)."""
    now = timezone.now()
    if at is None:
        return now
    if at > now + timedelta(minutes=1):
        raise InvalidInput(
            f"{at:%Y-%m-%d %H:%M} is in the future; a move is recorded as it happens.", field="at"
        )
    return at


# --- Reading the row we move --------------------------------------------------------------


def _fresh(deployment: Deployment | int) -> Deployment:
    """The deployment as committed now, with what permission checks and events need."""
    pk = deployment if isinstance(deployment, int) else deployment.pk
    try:
        return Deployment.objects.select_related(
            "request__facility__incident", "request__qualification", "expert"
        ).get(pk=pk)
    except Deployment.DoesNotExist:
        raise IllegalTransition(f"Deployment #{pk} does not exist.") from None


def _move(
    deployment: Deployment,
    *,
    verb: str,
    from_states: Sequence[str],
    to: str,
    condition: Q | None = None,
    **fields: Any,
) -> str:
    """Move `deployment` to `to` and return the state it left; refuse with the reason why.

    Compare-and-set on the state last observed: if someone else moved the row meanwhile, the
    UPDATE matches nothing and we look again, so the state recorded as "from" is always the one
    this move really left (a stale read never reaches the event log).
    """
    for _ in range(_MOVE_ATTEMPTS):
        observed = deployment.status
        if observed not in from_states:
            raise IllegalTransition(
                f"Cannot {verb} deployment #{deployment.pk}: it is {observed} "
                f"(it must be {' or '.join(from_states)})."
            )
        rows = Deployment.objects.filter(pk=deployment.pk, status=observed)
        if condition is not None:
            rows = rows.filter(condition)
        if rows.update(status=to, **fields) == 1:
            deployment.status = to
            for name, value in fields.items():
                setattr(deployment, name, value)
            return observed
        current = Deployment.objects.filter(pk=deployment.pk).values_list("status", flat=True).first()
        if current is None:
            raise IllegalTransition(f"Deployment #{deployment.pk} no longer exists.")
        if current == observed:  # the extra condition failed, e.g. the offer lapsed
            raise IllegalTransition(f"Cannot {verb} deployment #{deployment.pk} any more.")
        deployment.status = current
    raise IllegalTransition(f"Deployment #{deployment.pk} keeps changing; try again to {verb} it.")


def _event(
    deployment: Deployment,
    type: str,
    *,
    by: Actor | None,
    previous: str | None,
    at: datetime,
    for_responder: bool = True,
    **data: Any,
) -> None:
    events.write(
        [
            events.deployment_event(
                deployment, type, actor=by, at=at, previous=previous, for_responder=for_responder, **data
            )
        ]
    )


def _require_commander(by: Actor, deployment: Deployment, verb: str) -> None:
    incident = deployment.request.facility.incident
    if not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can {verb} a deployment.")


def _require_responder_or_commander(
    by: Actor | None, deployment: Deployment, verb: str, by_link: bool
) -> None:
    if by_link:
        return  # the signed link in the offer email proved who is answering (incidents/offers.py)
    if by is not None and access.is_own(by, deployment):
        return
    incident = deployment.request.facility.incident
    if by is None or not access.can_command(by, incident):
        raise NotAllowed(
            f"Only the responder or a commander of incident {incident.number} can {verb} this offer."
        )


def overlapping(deployment: Deployment) -> Deployment | None:
    """Another deployment the expert holds that overlaps this one, rest days included."""
    return (
        Deployment.objects.filter(
            expert_id=deployment.expert_id,
            status__in=Deployment.HOLDING,
            start__lte=deployment.rest_until,
            rest_until__gte=deployment.start,
        )
        .exclude(pk=deployment.pk)
        .select_related("request__facility")
        .first()
    )


def _unavailable(deployment: Deployment, other: Deployment | None) -> ExpertUnavailable:
    if other is None:
        return ExpertUnavailable(
            f"{deployment.expert} already holds an overlapping deployment (rest days included)."
        )
    return ExpertUnavailable(
        f"{deployment.expert} already holds deployment #{other.pk} at {other.request.facility.code} "
        f"({other.start} – {other.end}, resting until {other.rest_until}), which overlaps "
        f"{deployment.start} – {deployment.end} plus rest days."
    )


# --- Transitions --------------------------------------------------------------------------


def propose(
    request: RoleRequest,
    expert: Expert,
    *,
    by: Actor,
    start: date | None = None,
    end: date | None = None,
    distance_km: float | None = None,
    why: str = "",
    locked: bool = False,
    extension_approved: bool = False,
    at: datetime | None = None,
) -> Deployment:
    """Propose `expert` for one slot of `request` (a commander's draft; nothing is sent yet)."""
    now = _when(at)
    request = RoleRequest.objects.select_related("facility__incident", "qualification").get(pk=request.pk)
    incident = request.facility.incident
    if not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can propose deployments.")
    if not expert.active:
        raise InvalidInput(f"{expert} is not active on the roster.", field="expert")
    start = start or request.start
    end = end or request.end
    if end < start:
        raise InvalidInput(f"The deployment ends ({end}) before it starts ({start}).", field="end")
    if start < request.start or end > request.end:
        raise InvalidInput(
            f"{start} – {end} lies outside request #{request.pk} ({request.start} – {request.end}).",
            field="start",
        )
    days = (end - start).days + 1
    limit = incident.max_extended_days if extension_approved else incident.max_deployment_days
    if days > limit:
        raise InvalidInput(
            f"{days} days is longer than incident {incident.number} allows ({limit} days"
            + ("" if extension_approved else "; longer needs an approved extension")
            + ").",
            field="end",
        )
    if distance_km is None:
        distance_km = great_circle(
            (expert.latitude, expert.longitude),
            (request.facility.latitude, request.facility.longitude),
        ).km
    with transaction.atomic():
        # Serialise proposals per request so two commanders cannot both take its last slot.
        RoleRequest.objects.select_for_update().filter(pk=request.pk).exists()
        live = request.deployments.filter(status__in=Deployment.FILLING)
        if live.filter(expert=expert).exists():
            raise IllegalTransition(f"{expert} already has a live deployment on request #{request.pk}.")
        if live.count() >= request.quantity:
            raise RequestFull(
                f"Request #{request.pk} needs {request.quantity} and all are proposed or filled."
            )
        deployment = Deployment.objects.create(
            request=request,
            expert=expert,
            start=start,
            end=end,
            rest_until=end + timedelta(days=incident.rest_days),
            distance_km=round(distance_km, 1),
            why=why,
            locked=locked,
            extension_approved=extension_approved,
            proposed_at=now,
        )
        deployment.request = request
        # A proposal is the commander's draft: the responder is not told until the offer.
        _event(deployment, "deployment.proposed", by=by, previous=None, at=now, for_responder=False, why=why)
    return deployment


def offer(
    deployment: Deployment | int,
    *,
    by: Actor,
    expires_at: datetime | None = None,
    at: datetime | None = None,
) -> Deployment:
    """Offer a proposed deployment to its expert, with a deadline to answer."""
    deployment = _fresh(deployment)
    _require_commander(by, deployment, "offer")
    now = _when(at)
    expires_at = _offer_deadline(deployment.request.facility.incident, expires_at, now)
    if not deployment.expert.active:
        raise InvalidInput(f"{deployment.expert} is no longer active on the roster.", field="expert")
    try:
        with transaction.atomic():
            other = overlapping(deployment)
            if other is not None:
                raise _unavailable(deployment, other)
            previous = _move(
                deployment,
                verb="offer",
                from_states=[Status.PROPOSED],
                to=Status.OFFERED,
                offered_at=now,
                offer_expires_at=expires_at,
            )
            _event(deployment, "deployment.offered", by=by, previous=previous, at=now, expires_at=expires_at)
            _email_after_commit([deployment.pk])
    except IntegrityError as exc:
        # A concurrent offer committed between our check and our write (PostgreSQL only).
        if OVERLAP_CONSTRAINT in str(exc):
            raise _unavailable(deployment, None) from exc
        raise
    return deployment


def _offer_deadline(incident: Incident, expires_at: datetime | None, now: datetime) -> datetime:
    expires_at = expires_at or now + timedelta(hours=incident.offer_response_hours)
    if expires_at <= now:
        raise InvalidInput("The offer's response deadline must be in the future.", field="expires_at")
    return expires_at


def _email_after_commit(deployment_ids: list[int]) -> None:
    """The emails go out only if the offers really happened, as background work."""
    from incidents import tasks  # tasks imports the services; import at use, not at load

    transaction.on_commit(partial(tasks.email_offers.enqueue, deployment_ids), robust=True)


@dataclass(frozen=True)
class Confirmation:
    """What confirming proposals did: the offers made, and why the others were not made."""

    offered: list[Deployment]
    skipped: dict[int, str]


def offer_proposals(
    incident: Incident,
    *,
    by: Actor,
    deployments: Iterable[int] | None = None,
    expires_at: datetime | None = None,
    at: datetime | None = None,
) -> Confirmation:
    """Confirm proposals: offer each of them (all of the incident's, or those listed) at once.

    One transaction, one UPDATE, one batch of events (so one live message per screen) and one
    background job for the emails, however many offers. A proposal that can no longer be offered
    (answered meanwhile, expert inactive or now holding an overlapping deployment) is skipped
    with the reason; the rest go out. Nothing is half-done: the offers are made together or not.
    """
    if not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can offer deployments.")
    now = _when(at)
    expires_at = _offer_deadline(incident, expires_at, now)
    wanted = None if deployments is None else list(dict.fromkeys(deployments))
    try:
        with transaction.atomic():
            return _offer_batch(incident, wanted, by=by, now=now, expires_at=expires_at)
    except IntegrityError as exc:
        # A concurrent single offer committed between our check and our write (PostgreSQL).
        if OVERLAP_CONSTRAINT in str(exc):
            raise ExpertUnavailable(
                "Another offer to one of these experts was made at the same moment; "
                "confirm again to offer the rest."
            ) from exc
        raise


def _offer_batch(
    incident: Incident, wanted: list[int] | None, *, by: Actor, now: datetime, expires_at: datetime
) -> Confirmation:
    mine = Deployment.objects.filter(request__facility__incident=incident)
    rows = mine.select_related("request__facility", "request__qualification", "expert")
    rows = rows.filter(status=Status.PROPOSED) if wanted is None else rows.filter(pk__in=wanted)
    # Lock the proposals we move (PostgreSQL); SQLite's IMMEDIATE transaction already holds
    # the write lock. Either way nobody answers or cancels them under our feet.
    candidates = list(rows.select_for_update(of=("self",)).order_by("pk"))
    skipped: dict[int, str] = {}
    if wanted is not None:
        found = {d.pk for d in candidates}
        skipped.update(
            {
                pk: f"Deployment #{pk} is not in incident {incident.number}."
                for pk in wanted
                if pk not in found
            }
        )
    holding: dict[int, list[Deployment]] = defaultdict(list)
    proposed = [d for d in candidates if d.status == Status.PROPOSED]
    if proposed:
        for other in Deployment.objects.filter(
            expert_id__in={d.expert_id for d in proposed},
            status__in=Deployment.HOLDING,
            start__lte=max(d.rest_until for d in proposed),
            rest_until__gte=min(d.start for d in proposed),
        ).select_related("request__facility"):
            holding[other.expert_id].append(other)
    offered = []
    for d in candidates:
        if d.status != Status.PROPOSED:
            skipped[d.pk] = f"Deployment #{d.pk} is {d.status}; only proposals can be offered."
            continue
        if not d.expert.active:
            skipped[d.pk] = f"{d.expert} is no longer active on the roster."
            continue
        clash = next(
            (o for o in holding[d.expert_id] if o.start <= d.rest_until and o.rest_until >= d.start), None
        )
        if clash is not None:
            skipped[d.pk] = _unavailable(d, clash).message
            continue
        holding[d.expert_id].append(d)  # two proposals for one person: the first one goes out
        offered.append(d)
    if not offered:
        return Confirmation(offered=[], skipped=skipped)
    moved = Deployment.objects.filter(pk__in=[d.pk for d in offered], status=Status.PROPOSED).update(
        status=Status.OFFERED, offered_at=now, offer_expires_at=expires_at
    )
    if moved != len(offered):  # cannot happen under the lock; refuse rather than log a lie
        raise IllegalTransition("Some of these proposals changed while being offered; confirm again.")
    for d in offered:
        d.status, d.offered_at, d.offer_expires_at = Status.OFFERED, now, expires_at
    events.write(
        [
            events.deployment_event(
                d,
                "deployment.offered",
                actor=by,
                at=now,
                previous=Status.PROPOSED,
                for_responder=True,
                expires_at=expires_at,
            )
            for d in offered
        ]
    )
    _email_after_commit([d.pk for d in offered])
    return Confirmation(offered=offered, skipped=skipped)


def accept(
    deployment: Deployment | int, *, by: Actor | None, at: datetime | None = None, by_link: bool = False
) -> Deployment:
    """The responder (or a commander on their behalf, or the offer email's link) accepts an offer."""
    deployment = _fresh(deployment)
    _require_responder_or_commander(by, deployment, "accept", by_link)
    now = _when(at)
    _expire_if_lapsed(deployment, now)
    with transaction.atomic():
        previous = _move(
            deployment,
            verb="accept",
            from_states=[Status.OFFERED],
            to=Status.ACCEPTED,
            condition=Q(offer_expires_at__isnull=True) | Q(offer_expires_at__gt=now),
            responded_at=now,
        )
        _event(
            deployment,
            "deployment.accepted",
            by=by,
            previous=previous,
            at=now,
            on_behalf=not by_link and not (by is not None and access.is_own(by, deployment)),
            via="email link" if by_link else "app",
        )
    return deployment


def decline(
    deployment: Deployment | int,
    *,
    by: Actor | None,
    reason: str = "",
    at: datetime | None = None,
    by_link: bool = False,
) -> Deployment:
    """The responder (or a commander on their behalf, or the offer email's link) declines."""
    deployment = _fresh(deployment)
    _require_responder_or_commander(by, deployment, "decline", by_link)
    now = _when(at)
    _expire_if_lapsed(deployment, now)
    with transaction.atomic():
        previous = _move(
            deployment,
            verb="decline",
            from_states=[Status.OFFERED],
            to=Status.DECLINED,
            responded_at=now,
            reason=reason.strip(),
        )
        _event(
            deployment,
            "deployment.declined",
            by=by,
            previous=previous,
            at=now,
            reason=reason.strip(),
            via="email link" if by_link else "app",
        )
    return deployment


def _expire_if_lapsed(deployment: Deployment, now: datetime) -> None:
    """Offers past their deadline expire when read; answering one then says why it failed."""
    lapsed = (
        deployment.status == Status.OFFERED
        and deployment.offer_expires_at is not None
        and deployment.offer_expires_at <= now
    )
    if lapsed:
        expire(deployment, at=now)
        raise IllegalTransition(
            f"The offer of deployment #{deployment.pk} expired at "
            f"{deployment.offer_expires_at:%Y-%m-%d %H:%M} UTC."
        )


def expire(
    deployment: Deployment | int, *, by: Actor | None = None, at: datetime | None = None
) -> Deployment:
    """Expire an offer whose deadline has passed (the system does this; `by` is None)."""
    deployment = _fresh(deployment)
    now = _when(at)
    deadline = deployment.offer_expires_at
    if deployment.status == Status.OFFERED and deadline is not None and deadline > now:
        raise IllegalTransition(
            f"The offer of deployment #{deployment.pk} is open until {deadline:%Y-%m-%d %H:%M} UTC."
        )
    with transaction.atomic():
        previous = _move(
            deployment,
            verb="expire",
            from_states=[Status.OFFERED],
            to=Status.EXPIRED,
            condition=Q(offer_expires_at__lte=now),
            responded_at=now,
        )
        _event(
            deployment,
            "deployment.expired",
            by=by,
            previous=previous,
            at=now,
            expired_at=deployment.offer_expires_at,
        )
    return deployment


def expire_due_offers(*, at: datetime | None = None, expert_id: int | None = None) -> list[Deployment]:
    """Expire every offer past its deadline (of one expert, if given), each in its own
    transaction; returns those expired."""
    now = _when(at)
    due = Deployment.objects.filter(status=Status.OFFERED, offer_expires_at__lte=now)
    if expert_id is not None:
        due = due.filter(expert_id=expert_id)
    expired = []
    for pk in list(due.values_list("pk", flat=True)):
        try:
            expired.append(expire(pk, at=now))
        except IllegalTransition:
            continue  # answered or cancelled meanwhile: nothing to expire
    return expired


def cancel(deployment: Deployment | int, *, by: Actor, reason: str, at: datetime | None = None) -> Deployment:
    """Cancel a proposal, an open offer or an accepted deployment, saying why.

    Commanders may cancel any of these; a responder may withdraw from their own accepted
    deployment before arriving.
    """
    deployment = _fresh(deployment)
    now = _when(at)
    if not reason.strip():
        raise InvalidInput("Say why the deployment is cancelled.", field="reason")
    if access.is_own(by, deployment) and not access.can_command(by, deployment.request.facility.incident):
        from_states: list[str] = [Status.ACCEPTED]
    else:
        _require_commander(by, deployment, "cancel")
        from_states = [Status.PROPOSED, Status.OFFERED, Status.ACCEPTED]
    with transaction.atomic():
        previous = _move(
            deployment,
            verb="cancel",
            from_states=from_states,
            to=Status.CANCELLED,
            cancelled_at=now,
            reason=reason.strip(),
        )
        _event(
            deployment,
            "deployment.cancelled",
            by=by,
            previous=previous,
            at=now,
            for_responder=previous != Status.PROPOSED,
            reason=reason.strip(),
        )
    return deployment


@dataclass(frozen=True)
class ScreeningOutcome:
    """The result of a fitness-for-duty screening and, if it failed, why."""

    passed: bool
    reasons: list[str]


def assess_screening(*, temperature_c: Decimal, spo2: int, symptoms: Iterable[str]) -> ScreeningOutcome:
    """Apply the fitness-for-duty rule; validates the readings first."""
    if not Decimal("30") <= temperature_c <= Decimal("45"):
        raise InvalidInput(
            f"Temperature {temperature_c} °C is not a plausible reading (30–45).", field="temperature_c"
        )
    if not 50 <= spo2 <= 100:
        raise InvalidInput(f"SpO2 {spo2} % is not a plausible reading (50–100).", field="spo2")
    symptoms = list(symptoms)
    unknown = sorted(set(symptoms) - SYMPTOMS.keys())
    if unknown:
        raise InvalidInput(
            f"Unknown symptom(s): {', '.join(unknown)}; known: {', '.join(SYMPTOMS)}.", field="symptoms"
        )
    reasons = []
    if temperature_c >= FEVER_C:
        reasons.append(f"temperature {temperature_c} °C (fever ≥ {FEVER_C} °C)")
    if spo2 < MIN_SPO2:
        reasons.append(f"SpO2 {spo2} % (below {MIN_SPO2} %)")
    reasons.extend(f"symptom: {SYMPTOMS[s]}" for s in symptoms)
    return ScreeningOutcome(passed=not reasons, reasons=reasons)


def check_in(
    deployment: Deployment | int,
    *,
    by: Actor,
    temperature_c: Decimal | float | str,
    spo2: int | str,
    symptoms: Iterable[str] = (),
    notes: str = "",
    at: datetime | None = None,
) -> tuple[Deployment, HealthScreening]:
    """Screen an arriving responder; pass puts them on site, fail cancels and reopens the slot.

    The screening is kept either way. The screener is a commander of the incident.
    """
    deployment = _fresh(deployment)
    _require_commander(by, deployment, "check in")
    try:
        temperature = Decimal(str(temperature_c)).quantize(Decimal("0.1"))
    except ArithmeticError:
        raise InvalidInput(f"Temperature {temperature_c!r} is not a number.", field="temperature_c") from None
    try:
        saturation = int(spo2)
    except (TypeError, ValueError):
        raise InvalidInput(f"SpO2 {spo2!r} is not a whole number (50–100).", field="spo2") from None
    symptoms = list(dict.fromkeys(symptoms))
    outcome = assess_screening(temperature_c=temperature, spo2=saturation, symptoms=symptoms)
    now = _when(at)
    with transaction.atomic():
        if outcome.passed:
            previous = _move(
                deployment,
                verb="check in",
                from_states=[Status.ACCEPTED],
                to=Status.ON_SITE,
                checked_in_at=now,
            )
        else:
            reason = "Failed fitness-for-duty screening: " + "; ".join(outcome.reasons)
            previous = _move(
                deployment,
                verb="check in",
                from_states=[Status.ACCEPTED],
                to=Status.CANCELLED,
                cancelled_at=now,
                reason=reason,
            )
        screening = HealthScreening.objects.create(
            deployment=deployment,
            screened_at=now,
            screener=by,
            temperature_c=temperature,
            spo2=saturation,
            symptoms=symptoms,
            result=HealthScreening.Result.PASS if outcome.passed else HealthScreening.Result.FAIL,
            reasons=outcome.reasons,
            notes=notes.strip(),
        )
        _event(
            deployment,
            "deployment.checked_in" if outcome.passed else "deployment.screening_failed",
            by=by,
            previous=previous,
            at=now,
            screening=screening.pk,
            reasons=outcome.reasons,
        )
    return deployment, screening


def release_blockers(deployment: Deployment) -> list[str]:
    """What still stands between this person and release (ICS 221 check-out)."""
    return checkout_blockers(
        equipment_out=deployment.equipment.filter(returned_at__isnull=True).count(),
        time_not_approved=deployment.time_entries.exclude(status=Approval.APPROVED).count(),
        travel_arranged=deployment.travel_arranged,
    )


def checkout_blockers(*, equipment_out: int, time_not_approved: int, travel_arranged: bool) -> list[str]:
    """The open ICS 221 check-out items, from counts (reports read them for thousands at once)."""
    blockers = []
    if equipment_out:
        blockers.append(f"{equipment_out} equipment item(s) not returned")
    if time_not_approved:
        n = time_not_approved
        blockers.append(f"{n} time entr{'y' if n == 1 else 'ies'} not approved")
    if not travel_arranged:
        blockers.append("return travel not arranged")
    return blockers


def return_equipment(item: EquipmentIssue | int, *, by: Actor, at: datetime | None = None) -> EquipmentIssue:
    """Sign an issued item back in at check-out (ICS 221: equipment returned)."""
    pk = item if isinstance(item, int) else item.pk
    item = EquipmentIssue.objects.select_related(
        "deployment__request__facility__incident", "deployment__request__qualification", "deployment__expert"
    ).get(pk=pk)
    _require_commander(by, item.deployment, "check out equipment of")
    now = _when(at)
    with transaction.atomic():
        if not EquipmentIssue.objects.filter(pk=item.pk, returned_at__isnull=True).update(returned_at=now):
            raise IllegalTransition(f"{item.item} was already returned.")
        item.returned_at = now
        _event(item.deployment, "equipment.returned", by=by, previous=None, at=now, item=item.item)
    return item


def release(
    deployment: Deployment | int,
    *,
    by: Actor,
    travel_arranged: bool | None = None,
    at: datetime | None = None,
) -> Deployment:
    """Demobilize a responder once check-out is complete (equipment, time, travel)."""
    deployment = _fresh(deployment)
    now = _when(at)
    _require_commander(by, deployment, "release")
    with transaction.atomic():
        if travel_arranged is not None and travel_arranged != deployment.travel_arranged:
            Deployment.objects.filter(pk=deployment.pk).update(travel_arranged=travel_arranged)
            deployment.travel_arranged = travel_arranged
        blockers = release_blockers(deployment)
        if blockers:
            raise ReleaseBlocked(
                f"Cannot release deployment #{deployment.pk} yet: {'; '.join(blockers)}.", blockers
            )
        previous = _move(
            deployment,
            verb="release",
            from_states=[Status.ON_SITE],
            to=Status.RELEASED,
            released_at=now,
        )
        _event(deployment, "deployment.released", by=by, previous=previous, at=now)
    return deployment


def set_locked(deployment: Deployment | int, *, by: Actor, locked: bool) -> Deployment:
    """Keep a proposal through the next matching runs (or let them replace it again)."""
    deployment = _fresh(deployment)
    _require_commander(by, deployment, "lock")
    if deployment.status != Status.PROPOSED:
        raise IllegalTransition(
            f"Only a proposal can be locked; deployment #{deployment.pk} is {deployment.status}."
        )
    with transaction.atomic():
        # Still a proposal: a matching run or a commander may have replaced or offered it since.
        if not Deployment.objects.filter(pk=deployment.pk, status=Status.PROPOSED).update(locked=locked):
            raise IllegalTransition(
                f"Only a proposal can be locked; deployment #{deployment.pk} no longer is one."
            )
        deployment.locked = locked
        _event(
            deployment,
            "deployment.locked" if locked else "deployment.unlocked",
            by=by,
            previous=None,
            at=timezone.now(),
            for_responder=False,
        )
    return deployment


def exclude(deployment: Deployment | int, *, by: Actor, reason: str) -> Exclusion:
    """A commander's "not this person for this request": the proposal goes, and matching never
    proposes them there again (incidents/matching reads the exclusions)."""
    deployment = _fresh(deployment)
    _require_commander(by, deployment, "exclude")
    if not reason.strip():
        raise InvalidInput("Say why this person is excluded from the request.", field="reason")
    with transaction.atomic():
        exclusion, _ = Exclusion.objects.get_or_create(
            request_id=deployment.request_id,
            expert_id=deployment.expert_id,
            defaults={"reason": reason.strip()[:300], "created_by": by},
        )
        if deployment.status == Status.PROPOSED:
            cancel(deployment, by=by, reason=f"Excluded by the commander: {reason.strip()}")
    return exclusion


@dataclass(frozen=True)
class NewProposal:
    """One proposal from a matching run: who, for which request, how far, and why."""

    request: RoleRequest
    start: date  # the request's start, or today for a request already running
    expert_id: int
    distance_km: float
    why: str


def replace_proposals(
    incident: Incident, proposals: Sequence[NewProposal], *, by: Actor | None, at: datetime | None = None
) -> tuple[list[Deployment], list[int]]:
    """Swap the incident's unlocked proposals for a matching run's, in the caller's transaction.

    The old proposals are cancelled (kept, with the reason), the new ones created, each with its
    event, in bulk: a run of thousands of proposals is a handful of statements. `by` is None when
    the run comes from the command line. Returns (the new deployments, the replaced ids).
    """
    if by is not None and not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can run matching.")
    now = _when(at)
    actor = by if by is not None and by.is_authenticated else None
    limit = incident.max_deployment_days
    too_long = [p.request.pk for p in proposals if (p.request.end - p.start).days + 1 > limit]
    if too_long:
        raise InvalidInput(
            f"Requests {', '.join(map(str, sorted(set(too_long))))} run longer than the {limit} days "
            f"incident {incident.number} allows; split them or propose with an approved extension."
        )
    old = Deployment.objects.filter(
        request__facility__incident=incident, status=Status.PROPOSED, locked=False
    ).select_related("request__facility", "request__qualification")
    replaced = list(old)
    Deployment.objects.filter(pk__in=[d.pk for d in replaced], status=Status.PROPOSED).update(
        status=Status.CANCELLED, cancelled_at=now, reason="Replaced by a new matching run."
    )
    created = Deployment.objects.bulk_create(
        Deployment(
            request=p.request,
            expert_id=p.expert_id,
            start=p.start,
            end=p.request.end,
            rest_until=p.request.end + timedelta(days=incident.rest_days),
            distance_km=round(p.distance_km, 1),
            why=p.why,
            proposed_at=now,
        )
        for p in proposals
    )
    for d in replaced:  # before their events: an event records the state its deployment reached
        d.status = Status.CANCELLED
    rows = [
        events.deployment_event(
            d, "deployment.cancelled", actor=actor, at=now, previous=Status.PROPOSED, reason=d_reason
        )
        for d, d_reason in ((d, "Replaced by a new matching run.") for d in replaced)
    ]
    rows += [
        events.deployment_event(d, "deployment.proposed", actor=actor, at=now, previous=None, why=d.why)
        for d in created
    ]
    events.write(rows)
    return created, [d.pk for d in replaced]
