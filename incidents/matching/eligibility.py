"""Who may fill which request, and how far they travel (DESIGN.md, "Matching": eligibility).

Two ways to the same rules:
* `request_arcs` — the exact candidate set of one request, with the count of the first rule
  each other expert fails (the explanation of an unfilled slot);
* `nearest_arcs` — for every request at once, only its K nearest qualified experts, found with
  one KD-tree per qualification and filtered in bulk. Everyone not looked at lives at least
  `bound_km` away: the solver uses that bound to prove no one left out could improve the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from incidents.matching.problem import (
    EARTH_RADIUS_KM,
    REASONS,
    Arcs,
    Bools,
    Floats,
    Ints,
    Problem,
    Windows,
    great_circle_km,
)

STATE_KEY = 1 << 16  # expert index × STATE_KEY + state code: one key per (expert, state)


class Index:
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
        lo = np.searchsorted(self.cred_qual, quals, "left")
        hi = np.searchsorted(self.cred_qual, quals, "right")
        self.qual_rows = {int(q): slice(int(a), int(b)) for q, a, b in zip(quals, lo, hi, strict=True)}
        self.n_experts = n
        self.availability = _csr(problem.availability, n)
        self.holds = _csr(problem.holds, n)
        blocked = np.array(sorted(problem.blocked), dtype=np.int64).reshape(-1, 2)
        self.blocked_keys = np.sort(blocked[:, 0] * n + blocked[:, 1])
        self.taken = problem.taken if problem.taken is not None else np.zeros(n, dtype=bool)
        lat, lon = np.radians(problem.experts.lat), np.radians(problem.experts.lon)
        self.xyz = np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _csr(windows: Windows, n: int) -> tuple[Ints, Ints, Ints]:
    order = np.argsort(windows.expert, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.add.at(ptr, windows.expert + 1, 1)
    return np.cumsum(ptr), windows.start[order], windows.end[order]


def any_window(
    csr: tuple[Ints, Ints, Ints], experts: Ints, *, starts_by: Ints | int, ends_from: Ints | int
) -> Bools:
    """Per expert (repeats allowed), whether any of their windows starts by `starts_by` and ends
    on or after `ends_from` — covering a range, or overlapping one, as the caller chooses."""
    ptr, start, end = csr
    counts = ptr[experts + 1] - ptr[experts]
    total = int(counts.sum())
    if total == 0:
        return np.zeros(len(experts), dtype=bool)
    owner = np.repeat(np.arange(len(experts)), counts)
    rows = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(ptr[experts], counts)
    by = np.broadcast_to(np.asarray(starts_by), experts.shape)[owner]
    frm = np.broadcast_to(np.asarray(ends_from), experts.shape)[owner]
    hits = (start[rows] <= by) & (end[rows] >= frm)
    return np.bincount(owner[hits], minlength=len(experts)) > 0


def request_arcs(problem: Problem, index: Index, r: int) -> tuple[Ints, Floats, dict[str, int]]:
    """Request r's eligible experts (nearest first, ties by index), their distances, and how
    many experts fail each rule first."""
    req, exp = problem.requests, problem.experts
    counts = dict.fromkeys(REASONS, 0)
    rows = index.qual_rows.get(int(req.qualification[r]), slice(0, 0))
    # The stage a credential reaches: 0 held, 1 verified, 2 right state, 3 valid through the end.
    verified = index.cred_verified[rows]
    state_ok = verified & (~req.jurisdictional[r] | (index.cred_state[rows] == req.state[r]))
    valid = state_ok & (index.cred_expires[rows] >= req.end[r])
    stage = verified.astype(np.int8) + state_ok + valid
    holders_rows = index.cred_expert[rows]
    if len(holders_rows):
        starts = np.flatnonzero(np.r_[True, holders_rows[1:] != holders_rows[:-1]])
        holders, best = holders_rows[starts], np.maximum.reduceat(stage, starts)
    else:
        holders, best = np.empty(0, np.int64), np.empty(0, np.int8)
    counts["no_credential"] = int(index.n_experts - len(holders))
    counts["unverified"] = int((best == 0).sum())
    counts["wrong_jurisdiction"] = int((best == 1).sum())
    counts["expires_before_end"] = int((best == 2).sum())
    cand = holders[best == 3]
    allowed = ~_blocked(index, np.full(len(cand), r), cand)
    counts["declined"] = int((~allowed).sum())
    cand = cand[allowed]
    start, end = int(req.start[r]), int(req.end[r])
    covered = any_window(index.availability, cand, starts_by=start, ends_from=end)
    counts["not_available"] = int((~covered).sum())
    cand = cand[covered]
    # Held elsewhere (rest days included), or kept by a commander's lock in this run.
    busy_until = end + int(req.rest_days[r])
    clash = any_window(index.holds, cand, starts_by=busy_until, ends_from=start) | index.taken[cand]
    counts["already_deployed"] = int(clash.sum())
    cand = cand[~clash]
    km = great_circle_km(req.lat[r], req.lon[r], exp.lat[cand], exp.lon[cand])
    near = km <= np.minimum(exp.max_km[cand], req.radius_km[r])
    counts["too_far"] = int((~near).sum())
    cand, km = cand[near], km[near]
    order = np.lexsort((cand, km))
    return cand[order].astype(np.int64), km[order], counts


def _blocked(index: Index, requests: Ints, experts: Ints) -> Bools:
    if not len(index.blocked_keys):
        return np.zeros(len(experts), dtype=bool)
    keys = requests * index.n_experts + experts
    pos = np.searchsorted(index.blocked_keys, keys).clip(0, len(index.blocked_keys) - 1)
    return np.asarray(index.blocked_keys[pos] == keys, dtype=bool)


def eligible_arcs(problem: Problem) -> Arcs:
    """Every eligible (request, expert) pair, nearest first within each request, with the
    first-failed-rule counts of every request (the exact, unpruned candidate set)."""
    index = Index(problem)
    parts = [request_arcs(problem, index, r) for r in range(len(problem.requests.ids))]
    if not parts:
        empty = np.empty(0, np.int64)
        return Arcs(empty, empty, np.empty(0, np.float64), {})
    return Arcs(
        request=np.concatenate([np.full(len(c), r, dtype=np.int64) for r, (c, _, _) in enumerate(parts)]),
        expert=np.concatenate([c for c, _, _ in parts]),
        km=np.concatenate([km for _, km, _ in parts]),
        reasons={r: counts for r, (_, _, counts) in enumerate(parts)},
    )


@dataclass(frozen=True)
class Nearest:
    """The K-nearest candidate arcs of every request, and what they leave out."""

    request: Ints
    expert: Ints
    km: Floats
    bound_km: Floats  # per request: nobody left out lives nearer (inf: nobody eligible left out)


def nearest_arcs(problem: Problem, index: Index, extra: int) -> Nearest:
    """Per request, the eligible experts among its `open + extra` nearest credential holders."""
    req, exp = problem.requests, problem.experts
    n_req = len(req.ids)
    bound = np.full(n_req, np.inf)
    out_r: list[Ints] = []
    out_e: list[Ints] = []
    out_km: list[Floats] = []
    req_lat, req_lon = np.radians(req.lat), np.radians(req.lon)
    req_xyz = np.column_stack(
        [np.cos(req_lat) * np.cos(req_lon), np.cos(req_lat) * np.sin(req_lon), np.sin(req_lat)]
    )
    for q in np.unique(req.qualification):
        rows = index.qual_rows.get(int(q))
        mine = np.flatnonzero(req.qualification == q)
        if rows is None:
            continue  # nobody holds it: nothing to look at, nothing left out
        holders = np.unique(index.cred_expert[rows])
        # Requests at one place for one qualification see the same nearest people: each looks at
        # as many as the whole group needs, plus `extra`.
        place = np.unique(np.column_stack([req.lat[mine], req.lon[mine]]), axis=0, return_inverse=True)[
            1
        ].ravel()
        wanted = np.bincount(place, weights=req.open[mine]).astype(np.int64)[place] + extra
        wanted = np.minimum(wanted, len(holders))
        k = int(wanted.max())
        tree = cKDTree(index.xyz[holders])
        chord, pos = tree.query(req_xyz[mine], k=k)
        chord, pos = chord.reshape(len(mine), k), pos.reshape(len(mine), k)
        km = 2 * EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2, 0, 1))
        looked = np.arange(k)[None, :] < wanted[:, None]  # each request's own K nearest
        partial = wanted < len(holders)  # others exist beyond its K-th: at least that far
        bound[mine[partial]] = km[partial, wanted[partial] - 1]
        r = np.repeat(mine, k)[looked.ravel()]
        e = holders[pos[looked]]
        keep = _eligible(problem, index, r, e, km[looked], q)
        out_r.append(r[keep])
        out_e.append(e[keep])
        out_km.append(great_circle_km(req.lat[r[keep]], req.lon[r[keep]], exp.lat[e[keep]], exp.lon[e[keep]]))
    if not out_r:
        empty = np.empty(0, np.int64)
        return Nearest(empty, empty, np.empty(0), bound)
    r, e, km = np.concatenate(out_r), np.concatenate(out_e), np.concatenate(out_km)
    order = np.lexsort((e, km, r))
    return Nearest(r[order], e[order], km[order], bound)


def _eligible(problem: Problem, index: Index, r: Ints, e: Ints, km: Floats, q: int) -> Bools:
    """The rules of `request_arcs`, for many (request, expert) pairs of one qualification."""
    req, exp = problem.requests, problem.experts
    rows = index.qual_rows[int(q)]
    verified = index.cred_verified[rows]
    c_expert, c_state, c_expires = index.cred_expert[rows], index.cred_state[rows], index.cred_expires[rows]
    # Latest expiry of a verified credential per (expert, state) and per expert (any state).
    by_state = _latest(c_expert[verified] * STATE_KEY + c_state[verified], c_expires[verified])
    by_expert = _latest(c_expert[verified], c_expires[verified])
    jurisdictional = req.jurisdictional[r]
    keys = np.where(jurisdictional, e * STATE_KEY + req.state[r], e)
    expires = np.where(jurisdictional, _lookup(by_state, keys), _lookup(by_expert, keys))
    ok = expires >= req.end[r]
    ok &= ~_blocked(index, r, e) & ~index.taken[e]
    ok &= km <= np.minimum(exp.max_km[e], req.radius_km[r]) + 1e-9
    ok[ok] = any_window(index.availability, e[ok], starts_by=req.start[r[ok]], ends_from=req.end[r[ok]])
    ok[ok] = ~any_window(
        index.holds, e[ok], starts_by=req.end[r[ok]] + req.rest_days[r[ok]], ends_from=req.start[r[ok]]
    )
    return ok


def _latest(keys: Ints, expires: Ints) -> tuple[Ints, Ints]:
    if not len(keys):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(keys, kind="stable")
    keys, expires = keys[order], expires[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.maximum.reduceat(expires, starts)


def _lookup(table: tuple[Ints, Ints], keys: Ints) -> Ints:
    """The expiry stored for each key, or −1 (never valid) when there is none."""
    known, values = table
    if not len(known):
        return np.full(len(keys), -1, dtype=np.int64)
    pos = np.searchsorted(known, keys).clip(0, len(known) - 1)
    return np.where(known[pos] == keys, values[pos], -1)
