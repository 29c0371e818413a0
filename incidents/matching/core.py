"""The matching core: who fills which open slot, optimally. Pure: numpy in, dataclasses out.

Two halves, each testable on its own:

* `eligible_arcs` — for every request, which experts may fill it and how far they travel,
  vectorised per request (no Python loop over expert × request pairs). For the explanation it
  also counts, per request, the first rule each expert fails.
* `optimise` — the assignment. Lexicographic objective, strictly in order: most critical slots
  filled, then most high, then most normal, then least total distance. Solved exactly as a
  min-cost flow (OR-Tools) with *additive* priority weights:

      cost(expert → request) = distance − W[priority],  W = (3B, 2B, B) for critical/high/normal

  where B exceeds any possible total distance. Why additive gaps suffice: two matchings differ by
  alternating paths and cycles, and each such component changes the set of filled slots by at
  most one slot in and one slot out. If some matching were lexicographically better than the
  min-cost one, one component of the difference would be lexicographically better on its own
  (lexicographic order is compatible with addition), i.e. gain a slot of priority p while
  losing none or one of lower priority — worth at least B − (its distance change) > 0, so the
  min-cost solution would not be minimal. Hence no higher-priority slot is ever traded for any
  number of lower ones, and the numbers stay far inside int64.

Deterministic: arcs are generated in a canonical order (requests, then distance, then expert
index) and the solver is deterministic for identical input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow

EARTH_RADIUS_KM = 6371.009  # geopy's great_circle radius, so our distances agree with it
NO_EXPIRY = np.iinfo(np.int32).max
NO_STATE = -1
PRIORITIES = ("critical", "high", "normal")  # rank 0, 1, 2
UNITS_PER_KM = 100  # the solver works in whole units of 10 m

# Why an expert cannot fill a request: the first rule they fail, in this order.
REASONS = (
    "no_credential",
    "unverified",
    "wrong_jurisdiction",
    "expires_before_end",
    "declined",
    "not_available",
    "already_deployed",
    "too_far",
)

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class Experts:
    """The active roster, one row per expert (index = position)."""

    ids: Ints
    lat: Floats
    lon: Floats
    max_km: Floats


@dataclass(frozen=True)
class Credentials:
    """One row per credential; `expires` is a day ordinal (NO_EXPIRY when it does not expire)."""

    expert: Ints
    qualification: Ints
    verified: Bools
    expires: Ints
    state: Ints  # issuing state code, NO_STATE when none


@dataclass(frozen=True)
class Windows:
    """Per-expert day ranges (inclusive ordinals): availability, or periods already held."""

    expert: Ints
    start: Ints
    end: Ints


@dataclass(frozen=True)
class Requests:
    """One row per request with open slots."""

    ids: Ints
    qualification: Ints
    jurisdictional: Bools
    state: Ints
    lat: Floats
    lon: Floats
    start: Ints
    end: Ints
    rest_days: Ints
    radius_km: Floats
    priority: Ints  # 0 critical, 1 high, 2 normal
    open: Ints


@dataclass(frozen=True)
class Problem:
    """Everything the matching needs, as arrays. `blocked` holds (request, expert) index pairs
    that may not be matched (declined or excluded); `taken` marks experts kept by locks."""

    experts: Experts
    credentials: Credentials
    availability: Windows
    holds: Windows  # deployments the experts already hold, `end` = last rest day
    requests: Requests
    blocked: frozenset[tuple[int, int]] = frozenset()
    taken: Bools | None = None
    include_unverified: bool = False


@dataclass(frozen=True)
class Arcs:
    """Eligible (request, expert) pairs in canonical order, with their distances."""

    request: Ints
    expert: Ints
    km: Floats
    reasons: dict[int, dict[str, int]]  # per request index: counts of the first failed rule


@dataclass(frozen=True)
class Proposal:
    request: int  # index into Requests
    expert: int  # index into Experts
    km: float
    rank: int  # 1 = nearest eligible expert of this request
    eligible: int  # how many experts could fill this request
    limit_km: float  # the tighter of the expert's and the request's radius


@dataclass
class Solution:
    proposals: list[Proposal]
    unfilled: dict[int, tuple[int, dict[str, int]]]  # request index → (missing, reasons)
    filled: dict[str, int]
    open: dict[str, int]
    total_km: float
    arcs: int
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def great_circle_km(lat1: Floats | float, lon1: Floats | float, lat2: Floats, lon2: Floats) -> Floats:
    """Haversine distance on geopy's sphere, vectorised."""
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))), dtype=np.float64)


# --- Eligibility --------------------------------------------------------------------------------


class _Index:
    """Row groupings built once per problem, so each request touches only its own rows."""

    def __init__(self, problem: Problem) -> None:
        n = len(problem.experts.ids)
        creds = problem.credentials
        order = np.lexsort((creds.expert, creds.qualification))
        self.cred_qual = creds.qualification[order]
        self.cred_expert = creds.expert[order]
        self.cred_verified = creds.verified[order] | problem.include_unverified
        self.cred_expires = creds.expires[order]
        self.cred_state = creds.state[order]
        quals = np.unique(self.cred_qual)
        self.qual_bounds = {
            int(q): (int(lo), int(hi))
            for q, lo, hi in zip(
                quals,
                np.searchsorted(self.cred_qual, quals, "left"),
                np.searchsorted(self.cred_qual, quals, "right"),
                strict=True,
            )
        }
        self.n_experts = n
        self.availability = _csr(problem.availability, n)
        self.holds = _csr(problem.holds, n)
        self.blocked: dict[int, Ints] = {}
        for r, e in sorted(problem.blocked):
            self.blocked.setdefault(r, np.empty(0, np.int64))
            self.blocked[r] = np.append(self.blocked[r], e)
        self.taken = problem.taken if problem.taken is not None else np.zeros(n, dtype=bool)


def _csr(windows: Windows, n: int) -> tuple[Ints, Ints, Ints]:
    order = np.argsort(windows.expert, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, windows.expert + 1, 1)
    return np.cumsum(ptr), windows.start[order], windows.end[order]


def _any_window(csr: tuple[Ints, Ints, Ints], experts: Ints, *, starts_by: int, ends_from: int) -> Bools:
    """For each expert, whether any of their windows starts by `starts_by` and ends on or after
    `ends_from` (covers a range, or overlaps one, depending on what the caller passes)."""
    ptr, start, end = csr
    counts = ptr[experts + 1] - ptr[experts]
    if counts.sum() == 0:
        return np.zeros(len(experts), dtype=bool)
    owner = np.repeat(np.arange(len(experts)), counts)
    rows = (
        np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
        + np.repeat(ptr[experts], counts)
    )
    hits = (start[rows] <= starts_by) & (end[rows] >= ends_from)
    return np.bincount(owner[hits], minlength=len(experts)) > 0


def eligible_arcs(problem: Problem) -> Arcs:
    """Every eligible (request, expert) pair, nearest first within each request."""
    index = _Index(problem)
    req, exp = problem.requests, problem.experts
    out_r: list[Ints] = []
    out_e: list[Ints] = []
    out_km: list[Floats] = []
    reasons: dict[int, dict[str, int]] = {}
    for r in range(len(req.ids)):
        counts = dict.fromkeys(REASONS, 0)
        lo, hi = index.qual_bounds.get(int(req.qualification[r]), (0, 0))
        rows = slice(lo, hi)
        # Stage a credential reaches: 0 held, 1 verified, 2 right state, 3 valid through the end.
        verified = index.cred_verified[rows]
        state_ok = verified & (~req.jurisdictional[r] | (index.cred_state[rows] == req.state[r]))
        valid = state_ok & (index.cred_expires[rows] >= req.end[r])
        stage = verified.astype(np.int8) + state_ok + valid
        experts_with = index.cred_expert[rows]
        if len(experts_with):
            starts = np.flatnonzero(np.r_[True, experts_with[1:] != experts_with[:-1]])
            holders, best = experts_with[starts], np.maximum.reduceat(stage, starts)
        else:
            holders, best = np.empty(0, np.int64), np.empty(0, np.int8)
        counts["no_credential"] = int(index.n_experts - len(holders))
        counts["unverified"] = int((best == 0).sum())
        counts["wrong_jurisdiction"] = int((best == 1).sum())
        counts["expires_before_end"] = int((best == 2).sum())
        cand = holders[best == 3]
        blocked = index.blocked.get(r)
        if blocked is not None:
            allowed = ~np.isin(cand, blocked)
            counts["declined"] = int((~allowed).sum())
            cand = cand[allowed]
        s, e = int(req.start[r]), int(req.end[r])
        free_until = e + int(req.rest_days[r])
        covered = _any_window(index.availability, cand, starts_by=s, ends_from=e)
        counts["not_available"] = int((~covered).sum())
        cand = cand[covered]
        # Held elsewhere (rest days included), or kept by a commander's lock in this run.
        clash = _any_window(index.holds, cand, starts_by=free_until, ends_from=s) | index.taken[cand]
        counts["already_deployed"] = int(clash.sum())
        cand = cand[~clash]
        km = great_circle_km(req.lat[r], req.lon[r], exp.lat[cand], exp.lon[cand])
        near = km <= np.minimum(exp.max_km[cand], req.radius_km[r])
        counts["too_far"] = int((~near).sum())
        cand, km = cand[near], km[near]
        order = np.lexsort((cand, km))
        out_r.append(np.full(len(cand), r, dtype=np.int64))
        out_e.append(cand[order].astype(np.int64))
        out_km.append(km[order])
        reasons[r] = counts
    if not out_r:
        empty = np.empty(0, np.int64)
        return Arcs(empty, empty, np.empty(0, np.float64), reasons)
    return Arcs(np.concatenate(out_r), np.concatenate(out_e), np.concatenate(out_km), reasons)


# --- Optimisation --------------------------------------------------------------------------------


def to_units(km: Floats) -> Ints:
    """Distances as the solver sees them: whole units of 10 m."""
    return np.rint(np.asarray(km) * UNITS_PER_KM).astype(np.int64)


def optimise(arc_request: Ints, arc_expert: Ints, arc_units: Ints, priority: Ints, open_: Ints) -> Bools:
    """Choose arcs: each expert at most once, each request at most `open_` times; lexicographic
    priorities first, then least total distance. Returns a mask over the arcs."""
    n_arcs = len(arc_request)
    if n_arcs == 0:
        return np.zeros(0, dtype=bool)
    experts, expert_node = np.unique(arc_expert, return_inverse=True)
    requests, request_node = np.unique(arc_request, return_inverse=True)
    n_e, n_r = len(experts), len(requests)
    source, sink = 0, 1
    e_nodes = 2 + np.arange(n_e)
    r_nodes = 2 + n_e + np.arange(n_r)
    flow = min(n_e, int(open_[requests].sum()))
    bound = int(arc_units.max()) * flow + 1  # B: more than any total distance a solution can have
    weight = np.array([3 * bound, 2 * bound, bound], dtype=np.int64)
    tails = np.concatenate([np.full(n_e, source), e_nodes[expert_node], r_nodes, [source]])
    heads = np.concatenate([e_nodes, r_nodes[request_node], np.full(n_r, sink), [sink]])
    caps = np.concatenate([np.ones(n_e), np.ones(n_arcs), open_[requests], [flow]]).astype(np.int64)
    costs = np.concatenate(
        [np.zeros(n_e), arc_units - weight[priority[arc_request]], np.zeros(n_r), [0]]
    ).astype(np.int64)
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(2 + n_e + n_r, dtype=np.int64)
    supplies[source], supplies[sink] = flow, -flow
    solver.set_nodes_supplies(np.arange(len(supplies)), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"min-cost flow did not solve: status {status}")
    flows = solver.flows(np.arange(n_e, n_e + n_arcs))
    return np.asarray(np.asarray(flows, dtype=np.int64) == 1, dtype=bool)


def solve(problem: Problem) -> Solution:
    """Eligibility, then the optimal assignment, then the explanation of what stayed open."""
    started = time.perf_counter()
    arcs = eligible_arcs(problem)
    eligible_done = time.perf_counter()
    req = problem.requests
    chosen = optimise(arcs.request, arcs.expert, to_units(arcs.km), req.priority, req.open)
    solved = time.perf_counter()

    # Rank of each arc within its request (arcs are nearest first per request).
    first = np.r_[0, np.flatnonzero(arcs.request[1:] != arcs.request[:-1]) + 1] if len(arcs.request) else []
    rank = np.ones(len(arcs.request), dtype=np.int64)
    eligible = (
        np.bincount(arcs.request, minlength=len(req.ids))
        if len(arcs.request)
        else np.zeros(len(req.ids), int)
    )
    for lo in first:
        hi = lo + eligible[arcs.request[lo]]
        rank[lo:hi] = np.arange(1, hi - lo + 1)
    proposals = [
        Proposal(
            request=int(arcs.request[i]),
            expert=int(arcs.expert[i]),
            km=float(arcs.km[i]),
            rank=int(rank[i]),
            eligible=int(eligible[arcs.request[i]]),
            limit_km=float(min(problem.experts.max_km[arcs.expert[i]], req.radius_km[arcs.request[i]])),
        )
        for i in np.flatnonzero(chosen)
    ]
    filled_per_request = (
        np.bincount(arcs.request[chosen], minlength=len(req.ids))
        if len(arcs.request)
        else np.zeros(len(req.ids), int)
    )
    assigned_to = np.full(len(problem.experts.ids), -1, dtype=np.int64)
    assigned_to[arcs.expert[chosen]] = arcs.request[chosen]
    unfilled = {}
    for r in np.flatnonzero(filled_per_request < req.open):
        counts = dict(arcs.reasons[int(r)])
        mine = arcs.expert[arcs.request == r]
        elsewhere = assigned_to[mine]
        elsewhere = elsewhere[(elsewhere >= 0) & (elsewhere != r)]
        higher = int((req.priority[elsewhere] < req.priority[r]).sum())
        equal = len(elsewhere) - higher
        counts["taken_by_higher_priority"] = higher
        counts["taken_by_equal_priority"] = equal
        unfilled[int(r)] = (int(req.open[r] - filled_per_request[r]), counts)
    filled = {p: 0 for p in PRIORITIES}
    still_open = {p: 0 for p in PRIORITIES}
    for i in range(len(req.ids)):
        name = PRIORITIES[int(req.priority[i])]
        filled[name] += int(filled_per_request[i])
        still_open[name] += int(req.open[i] - filled_per_request[i])
    finished = time.perf_counter()
    return Solution(
        proposals=proposals,
        unfilled=unfilled,
        filled=filled,
        open=still_open,
        total_km=float(arcs.km[chosen].sum()) if len(arcs.km) else 0.0,
        arcs=len(arcs.request),
        seconds=finished - started,
        timings={"eligibility": eligible_done - started, "solve": solved - eligible_done},
    )
