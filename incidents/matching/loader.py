"""The database side of matching: load an incident into a `core.Problem`, write the answer back.

`run()` is what every door calls (the `match` command, the API). It reads in a fixed number of
queries whatever the roster size, solves with `core.solve`, and — unless it is a dry run —
replaces the incident's unlocked proposals with the new ones through `workflow.replace_proposals`,
all in one transaction that holds the incident, its requests and its proposals (`hold`), so two
runs on one incident serialise and nothing the run replaces moves under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deploy_tracker.errors import NotAllowed
from incidents import access, workflow
from incidents.matching import core
from incidents.models import Deployment, Exclusion, Incident, RoleRequest
from resources.models import Availability, Credential, Expert

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Status = Deployment.Status
PRIORITY_RANK = {"critical": 0, "high": 1, "normal": 2}
# A credential that expires this soon after the deployment is flagged (DESIGN.md, "Matching").
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class Options:
    """What-if overrides and the dry-run switch."""

    dry_run: bool = False
    radius_km: float | None = None  # replaces every request's radius (each expert's own limit stays)
    include_unverified: bool = False


def _state(code: str) -> int:
    return ord(code[0]) * 256 + ord(code[1]) if len(code) == 2 else core.NO_STATE


@dataclass
class Loaded:
    """A problem plus what it takes to turn indices back into records and sentences."""

    problem: core.Problem
    requests: list[RoleRequest]  # the open ones, in problem order
    starts: dict[int, date]  # per request: its start, or today for one already running
    too_long: list[tuple[RoleRequest, int]]  # requests longer than the policy, with open slots
    expert_ids: np.ndarray
    people: list[tuple[str, str, str, str]]  # per expert: email, first name, last name, home place
    credentials: dict[tuple[int, int], tuple[str, str, date | None]]  # (expert, qual) → number, state, expiry
    already_filled: dict[str, int]


def load(incident: Incident, options: Options, *, today: date) -> Loaded:
    """Read the incident's open requests and the roster into arrays (8 queries, any roster size).

    Requests that have ended are history; one already running is filled from `today` on.
    """
    # 1. The incident's requests still to run, with what the explanation names.
    requests = list(
        RoleRequest.objects.filter(facility__incident=incident, end__gte=today)
        .select_related("facility", "qualification")
        .order_by("pk")
    )
    starts = {r.pk: max(r.start, today) for r in requests}

    def length(r: RoleRequest) -> int:
        return (r.end - starts[r.pk]).days + 1

    # 2. What already fills them: held deployments and locked proposals stay; the run replaces
    #    the unlocked proposals.
    filling = list(
        Deployment.objects.filter(request__facility__incident=incident)
        .filter(Q(status__in=Deployment.HOLDING) | Q(status=Status.PROPOSED, locked=True))
        .values_list("request_id", "expert_id", "status")
    )
    # 3. Who declined a request, and 4. whom a commander excluded from one.
    declined = set(
        Deployment.objects.filter(request__facility__incident=incident, status=Status.DECLINED).values_list(
            "request_id", "expert_id"
        )
    )
    declined |= set(
        Exclusion.objects.filter(request__facility__incident=incident).values_list("request_id", "expert_id")
    )
    # 5. The active roster, ordered by id so indices and ties are stable.
    expert_rows = list(
        Expert.objects.filter(active=True)
        .order_by("pk")
        .values_list(
            "pk", "email", "first_name", "last_name", "home_place", "latitude", "longitude", "max_travel_km"
        )
    )
    expert_ids = np.array([row[0] for row in expert_rows], dtype=np.int64)
    quals = {r.qualification_id for r in requests}
    first_day = min(starts.values(), default=today)
    last_day = max((r.end for r in requests), default=today)
    # 6. Their credentials for the qualifications asked for.
    cred_rows = list(
        Credential.objects.filter(qualification_id__in=quals, expert__active=True).values_list(
            "expert_id", "qualification_id", "verified", "expires_on", "jurisdiction", "number"
        )
    )
    # 7. Their availability around the requests' dates, and 8. what they already hold then.
    avail_rows = list(
        Availability.objects.filter(expert__active=True, start__lte=last_day, end__gte=first_day).values_list(
            "expert_id", "start", "end"
        )
    )
    hold_rows = list(
        Deployment.objects.filter(
            expert__active=True,
            status__in=Deployment.HOLDING,
            start__lte=last_day + timedelta(days=incident.rest_days),
            rest_until__gte=first_day,
        ).values_list("expert_id", "start", "rest_until")
    )

    def idx(ids: list[int]) -> np.ndarray:
        return np.searchsorted(expert_ids, np.array(ids, dtype=np.int64))

    def days(values: list[date | None], empty: int) -> np.ndarray:
        return np.array([v.toordinal() if v else empty for v in values], dtype=np.int64)

    filled_by_request: dict[int, int] = {}
    taken = np.zeros(len(expert_ids), dtype=bool)
    for request_id, expert_id, status in filling:
        filled_by_request[request_id] = filled_by_request.get(request_id, 0) + 1
        if status == Status.PROPOSED:  # a lock keeps this expert for that slot in this run
            pos = np.searchsorted(expert_ids, expert_id)
            if pos < len(expert_ids) and expert_ids[pos] == expert_id:
                taken[pos] = True
    already = dict.fromkeys(core.PRIORITIES, 0)
    for r in requests:
        already[r.priority] += min(filled_by_request.get(r.pk, 0), r.quantity)
    open_requests = [r for r in requests if r.quantity - filled_by_request.get(r.pk, 0) > 0]
    # Matching proposes whole request windows; longer than the policy needs a person's decision.
    too_long = [
        (r, r.quantity - filled_by_request.get(r.pk, 0))
        for r in open_requests
        if length(r) > incident.max_deployment_days
    ]
    open_requests = [r for r in open_requests if length(r) <= incident.max_deployment_days]
    position = {r.pk: i for i, r in enumerate(open_requests)}
    known = set(expert_ids.tolist())
    blocked = frozenset(
        (position[r], int(np.searchsorted(expert_ids, e)))
        for r, e in declined
        if r in position and e in known
    )
    creds = [row for row in cred_rows if row[0] in known]
    problem = core.Problem(
        experts=core.Experts(
            ids=expert_ids,
            lat=np.array([row[5] for row in expert_rows], dtype=np.float64),
            lon=np.array([row[6] for row in expert_rows], dtype=np.float64),
            max_km=np.array([row[7] for row in expert_rows], dtype=np.float64),
        ),
        credentials=core.Credentials(
            expert=idx([c[0] for c in creds]),
            qualification=np.array([c[1] for c in creds], dtype=np.int64),
            verified=np.array([c[2] for c in creds], dtype=bool),
            expires=days([c[3] for c in creds], core.NO_EXPIRY),
            state=np.array([_state(c[4]) for c in creds], dtype=np.int64),
        ),
        availability=core.Windows(
            expert=idx([a[0] for a in avail_rows]),
            start=days([a[1] for a in avail_rows], 0),
            end=days([a[2] for a in avail_rows], 0),
        ),
        holds=core.Windows(
            expert=idx([h[0] for h in hold_rows]),
            start=days([h[1] for h in hold_rows], 0),
            end=days([h[2] for h in hold_rows], 0),
        ),
        requests=core.Requests(
            ids=np.array([r.pk for r in open_requests], dtype=np.int64),
            qualification=np.array([r.qualification_id for r in open_requests], dtype=np.int64),
            jurisdictional=np.array([r.qualification.jurisdictional for r in open_requests], dtype=bool),
            state=np.array([_state(r.facility.state) for r in open_requests], dtype=np.int64),
            lat=np.array([r.facility.latitude for r in open_requests], dtype=np.float64),
            lon=np.array([r.facility.longitude for r in open_requests], dtype=np.float64),
            start=days([starts[r.pk] for r in open_requests], 0),
            end=days([r.end for r in open_requests], 0),
            rest_days=np.full(len(open_requests), incident.rest_days, dtype=np.int64),
            radius_km=np.array(
                [options.radius_km or r.max_travel_km or incident.default_radius_km for r in open_requests],
                dtype=np.float64,
            ),
            priority=np.array([PRIORITY_RANK[r.priority] for r in open_requests], dtype=np.int64),
            open=np.array(
                [r.quantity - filled_by_request.get(r.pk, 0) for r in open_requests], dtype=np.int64
            ),
        ),
        blocked=blocked,
        taken=taken,
        include_unverified=options.include_unverified,
    )
    return Loaded(
        problem=problem,
        requests=open_requests,
        starts=starts,
        too_long=too_long,
        expert_ids=expert_ids,
        people=[(row[1], row[2], row[3], row[4]) for row in expert_rows],
        credentials={(c[0], c[1]): (c[5], c[4], c[3]) for c in creds if c[2] or options.include_unverified},
        already_filled=already,
    )


def _why(loaded: Loaded, proposal: core.Proposal) -> str:
    request = loaded.requests[proposal.request]
    _, first, last, home = loaded.people[proposal.expert]
    expert_id = int(loaded.expert_ids[proposal.expert])
    number, state, expires = loaded.credentials.get((expert_id, request.qualification_id), ("", "", None))
    credential = f"verified {request.qualification.code}" + (f" {number}" if number else "")
    credential += f" ({state})" if state else ""
    credential += f", valid through {expires:%Y-%m-%d}" if expires else ", no expiry"
    slot = f"{request.priority.capitalize()} {request.qualification.code} slot at {request.facility.code}"
    window = f"{loaded.starts[request.pk]:%Y-%m-%d} – {request.end:%Y-%m-%d}"
    distance = f"{proposal.km:.1f} km away in {home or 'an unnamed place'} (limit {proposal.limit_km:.0f} km)"
    why = (
        f"{slot}: {first} {last} holds a {credential}; is available {window}; lives {distance}; "
        f"nearest eligible #{proposal.rank} of {proposal.eligible}"
        + ("." if proposal.complete else " weighed (the rest live farther away).")
    )
    margin = (expires - request.end).days if expires else None
    if margin is not None and margin <= EXPIRY_WARNING_DAYS:
        why += f" Note: the credential expires {margin} day(s) after the deployment ends."
    return why


def document(incident: Incident, loaded: Loaded, solution: core.Solution, seconds: float) -> dict[str, Any]:
    """The matching output of CONTRACTS.md ("Matching output")."""
    proposals = []
    for p in solution.proposals:
        request = loaded.requests[p.request]
        proposals.append(
            {
                "request": request.pk,
                "facility": request.facility.code,
                "qualification": request.qualification.code,
                "priority": request.priority,
                "expert": loaded.people[p.expert][0],
                "distance_km": round(p.km, 1),
                "why": _why(loaded, p),
            }
        )
    unfilled: list[dict[str, Any]] = []
    for index, (missing, reasons) in sorted(
        solution.unfilled.items(), key=lambda item: loaded.requests[item[0]].pk
    ):
        request = loaded.requests[index]
        unfilled.append(
            {
                "request": request.pk,
                "facility": request.facility.code,
                "qualification": request.qualification.code,
                "priority": request.priority,
                "missing": missing,
                "reasons": {name: n for name, n in reasons.items() if n},
            }
        )
    still_open = dict(solution.open)
    for request, missing in loaded.too_long:
        still_open[request.priority] += missing
        unfilled.append(
            {
                "request": request.pk,
                "facility": request.facility.code,
                "qualification": request.qualification.code,
                "priority": request.priority,
                "missing": missing,
                "reasons": {"longer_than_policy": missing},
            }
        )
    unfilled.sort(key=lambda row: row["request"])
    filled = {p: loaded.already_filled[p] + solution.filled[p] for p in core.PRIORITIES}
    return {
        "incident": incident.number,
        "proposals": proposals,
        "unfilled": unfilled,
        "summary": {
            "filled": filled,
            "open": still_open,
            "proposed": len(proposals),
            "total_distance_km": round(solution.total_km, 1),
            "seconds": round(seconds, 3),
        },
    }


def _gain(incident: Incident, doc: dict[str, Any], today: date) -> dict[str, Any]:
    """What the what-if overrides change against a plain run: more slots filled, more travel."""
    plain = document(
        incident,
        loaded := load(incident, Options(dry_run=True), today=today),
        core.solve(loaded.problem),
        0.0,
    )
    filled, before = doc["summary"]["filled"], plain["summary"]["filled"]
    return {
        "filled": {p: filled[p] - before[p] for p in core.PRIORITIES},
        "total_distance_km": round(
            doc["summary"]["total_distance_km"] - plain["summary"]["total_distance_km"], 1
        ),
    }


def hold(incident: Incident) -> None:
    """Lock what a writing run reads and replaces, until its transaction ends (PostgreSQL; on
    SQLite the IMMEDIATE transaction already holds the whole database).

    - the incident: one run at a time; the next waits here, then reads what this one wrote and
      replaces it whole, so the proposals standing are always one run's;
    - its requests: a proposal made meanwhile (`workflow.propose` locks its request) waits, then
      counts this run's proposals, so no request is over-filled;
    - its proposals: an offer, confirmation, lock or cancel of one this run replaces waits, then finds
      it replaced (a 409), instead of both happening.

    FOR NO KEY UPDATE, not FOR UPDATE: inserting a row that refers to these (every Event names
    its incident) takes FOR KEY SHARE, which FOR UPDATE blocks. With FOR UPDATE every event of
    the incident (an accept, the end of the previous job) waited for the run while holding the
    event log's advisory lock, which the run needs to write its own events: a deadlock.
    """
    Incident.objects.select_for_update(no_key=True).filter(pk=incident.pk).exists()
    for rows in (
        RoleRequest.objects.filter(facility__incident=incident),
        Deployment.objects.filter(request__facility__incident=incident, status=Status.PROPOSED),
    ):
        # In id order, as workflow.offer_proposals locks proposals, so two lockers never cross.
        list(rows.select_for_update(no_key=True, of=("self",)).order_by("pk").values_list("pk", flat=True))


def run(
    incident: Incident,
    *,
    by: User | None,
    options: Options = Options(),
    today: date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Match the incident; write the proposals unless it is a dry run. Returns the document.

    `progress(stage, done, total)`, if given, hears of each of the four stages as it begins.
    """
    report = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    today = today or timezone.localdate(timezone=incident.tz)
    if by is not None and not access.can_command(by, incident):
        raise NotAllowed(f"Only a commander of incident {incident.number} can run matching.")
    with transaction.atomic():
        if not options.dry_run:
            hold(incident)
        report("loading the roster", 0, 4)
        loaded = load(incident, options, today=today)
        report("solving", 1, 4)
        solution = core.solve(loaded.problem)
        report("explaining", 2, 4)
        doc = document(incident, loaded, solution, 0.0)
        if options.radius_km is not None or options.include_unverified:
            doc["summary"]["compared_to_plain"] = _gain(incident, doc, today)
        if not options.dry_run:
            report("writing proposals", 3, 4)
            workflow.replace_proposals(
                incident,
                [
                    workflow.NewProposal(
                        request=loaded.requests[p.request],
                        start=loaded.starts[loaded.requests[p.request].pk],
                        expert_id=int(loaded.expert_ids[p.expert]),
                        distance_km=p.km,
                        why=row["why"],
                    )
                    for p, row in zip(solution.proposals, doc["proposals"], strict=True)
                ],
                by=by,
            )
    doc["summary"]["seconds"] = round(time.perf_counter() - started, 3)
    return doc
