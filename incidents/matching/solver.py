"""The optimal assignment (DESIGN.md, "Matching": objective), and the proof that pruning lost nothing.

Objective, strictly in order: most critical slots filled, then most high, then most normal, then
least total distance. Solved exactly as a min-cost flow (OR-Tools) with *additive* priority
weights:

    cost(expert → request) = distance − W[priority],  W = (3B, 2B, B) for critical/high/normal

where B exceeds any total distance a solution can have. Why additive gaps suffice: two matchings
differ by alternating paths and cycles, and each such component changes the set of filled slots
by at most one slot in and one slot out. If some matching were lexicographically better than the
min-cost one, one component of the difference would be lexicographically better on its own
(lexicographic order is compatible with addition): it gains a slot of priority p while losing
none, or one of lower priority — worth at least B − (its distance change) > 0, so the min-cost
solution would not be minimal. So no higher-priority slot is ever traded for any number of lower
ones, and the numbers stay far inside int64.

Pruning with proof (`solve`): each request first sees only its K nearest eligible experts.
After solving that smaller graph, node potentials π (shortest paths in its residual graph) certify
its optimality; an arc left out, e → r, could only improve the answer if its reduced cost
c(e, r) + π(e) − π(r) were negative. Everyone left out of r lives at least `bound_km(r)` away and
π(e) ≥ min π, so if `bound − W(r) + min π ≥ π(r)` no left-out arc can help r. Requests failing
that test, and any request left with open slots, get their complete candidate set and the graph
is solved again, until the test passes everywhere: the answer is then optimal for the full graph.

Deterministic: arcs are in a canonical order (request, distance, expert index) and the solver is
deterministic for identical input.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from incidents.matching.eligibility import Index, nearest_arcs, request_arcs
from incidents.matching.problem import (
    PRIORITIES,
    UNITS_PER_KM,
    Bools,
    Floats,
    Ints,
    Problem,
    Proposal,
    Solution,
)

# Each request first sees its open slots + this many nearest holders; at 20 one round usually
# proves the answer (bench/matching.py), fewer means more rounds, more means bigger graphs.
NEAREST_EXTRA = 20


def to_units(km: Floats) -> Ints:
    """Distances as the solver sees them: whole units of 10 m."""
    return np.rint(np.asarray(km) * UNITS_PER_KM).astype(np.int64)


@dataclass(frozen=True)
class _Network:
    """The flow network over some arcs: source → experts → requests → sink (+ a bypass)."""

    expert_node: Ints  # per arc
    request_node: Ints  # per arc
    experts: Ints  # expert index per expert node (sorted)
    requests: Ints  # request index per request node (sorted)
    n_nodes: int
    flow: int
    weight: Ints  # per priority rank
    costs: Ints  # per arc (expert → request)


def _network(
    arc_request: Ints, arc_expert: Ints, arc_units: Ints, priority: Ints, open_: Ints, bound: int
) -> _Network:
    experts, e_pos = np.unique(arc_expert, return_inverse=True)
    requests, r_pos = np.unique(arc_request, return_inverse=True)
    n_e = len(experts)
    weight = np.array([3 * bound, 2 * bound, bound], dtype=np.int64)
    return _Network(
        expert_node=2 + e_pos,
        request_node=2 + n_e + r_pos,
        experts=experts,
        requests=requests,
        n_nodes=2 + n_e + len(requests),
        # Every open slot, not just those this graph can reach: the same for a pruned graph and
        # the complete one, so potentials of the first are checked against the second.
        flow=int(open_.sum()),
        weight=weight,
        costs=arc_units - weight[priority[arc_request]],
    )


def _bound(arc_units: Ints, open_: Ints) -> int:
    """B: more than any total distance a solution can have."""
    return int(arc_units.max(initial=0)) * max(1, int(open_.sum())) + 1


def optimise(arc_request: Ints, arc_expert: Ints, arc_units: Ints, priority: Ints, open_: Ints) -> Bools:
    """Choose arcs: each expert at most once, each request at most `open_` times; lexicographic
    priorities first, then least total distance. Returns a mask over the arcs."""
    return _solve_network(arc_request, arc_expert, arc_units, priority, open_, _bound(arc_units, open_))[0]


def _solve_network(
    arc_request: Ints, arc_expert: Ints, arc_units: Ints, priority: Ints, open_: Ints, bound: int
) -> tuple[Bools, _Network]:
    net = _network(arc_request, arc_expert, arc_units, priority, open_, bound)
    n_arcs = len(arc_request)
    if n_arcs == 0:
        return np.zeros(0, dtype=bool), net
    n_e = net.n_nodes - 2 - len(net.requests)
    source, sink = 0, 1
    e_nodes = 2 + np.arange(n_e)
    r_nodes = 2 + n_e + np.arange(len(net.requests))
    tails = np.concatenate([np.full(n_e, source), net.expert_node, r_nodes, [source]])
    heads = np.concatenate([e_nodes, net.request_node, np.full(len(r_nodes), sink), [sink]])
    caps = np.concatenate([np.ones(n_e), np.ones(n_arcs), open_[net.requests], [net.flow]]).astype(np.int64)
    costs = np.concatenate([np.zeros(n_e), net.costs, np.zeros(len(r_nodes)), [0]]).astype(np.int64)
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(tails, heads, caps, costs)
    supplies = np.zeros(net.n_nodes, dtype=np.int64)
    supplies[source], supplies[sink] = net.flow, -net.flow
    solver.set_nodes_supplies(np.arange(net.n_nodes), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"min-cost flow did not solve: status {status}")
    flows = np.asarray(solver.flows(np.arange(n_e, n_e + n_arcs)), dtype=np.int64)
    return np.asarray(flows == 1, dtype=bool), net


def _potentials(net: _Network, chosen: Bools, open_: Ints) -> Floats:
    """Shortest-path distances in the residual graph, from a node joined to every node at cost 0:
    valid potentials (every residual arc has a non-negative reduced cost)."""
    n = net.n_nodes
    source, sink = 0, 1
    n_e = n - 2 - len(net.requests)
    e_nodes = 2 + np.arange(n_e)
    used_expert = np.zeros(n, dtype=bool)
    used_expert[net.expert_node[chosen]] = True
    filled = np.bincount(net.request_node[chosen], minlength=n)
    r_nodes = 2 + n_e + np.arange(len(net.requests))
    r_open = open_[net.requests]
    through = int(chosen.sum())
    tails: list[Ints] = []
    heads: list[Ints] = []
    costs: list[Floats] = []

    def arcs(t: Ints, h: Ints, c: Floats | float) -> None:
        tails.append(np.asarray(t, dtype=np.int64))
        heads.append(np.asarray(h, dtype=np.int64))
        costs.append(np.broadcast_to(np.asarray(c, dtype=np.float64), np.shape(t)).copy())

    free = ~used_expert[e_nodes]
    arcs(np.full(free.sum(), source), e_nodes[free], 0.0)  # source → unused expert
    arcs(e_nodes[~free], np.full((~free).sum(), source), 0.0)  # used expert → source
    arcs(net.expert_node[~chosen], net.request_node[~chosen], net.costs[~chosen].astype(np.float64))
    arcs(net.request_node[chosen], net.expert_node[chosen], -net.costs[chosen].astype(np.float64))
    room = filled[r_nodes] < r_open
    arcs(r_nodes[room], np.full(room.sum(), sink), 0.0)  # request with room → sink
    some = filled[r_nodes] > 0
    arcs(np.full(some.sum(), sink), r_nodes[some], 0.0)  # sink → request that has flow
    if through < net.flow:
        arcs(np.array([source]), np.array([sink]), 0.0)
    if net.flow - through > 0:
        arcs(np.array([sink]), np.array([source]), 0.0)
    # Every node starts at distance 0: a root joined to all of them at cost 0.
    return shortest_paths(n, np.concatenate(tails), np.concatenate(heads), np.concatenate(costs))


def shortest_paths(n: int, tails: Ints, heads: Ints, costs: Floats) -> Floats:
    """Bellman–Ford from a virtual root joined to every node at cost 0, vectorised, stopping as
    soon as a pass changes nothing (residual graphs of an optimal flow settle in few passes)."""
    dist = np.zeros(n, dtype=np.float64)
    if not len(tails):
        return dist
    order = np.argsort(heads, kind="stable")
    tails, heads, costs = tails[order], heads[order], costs[order]
    starts = np.flatnonzero(np.r_[True, heads[1:] != heads[:-1]])
    targets = heads[starts]
    for _ in range(n + 1):
        best = np.minimum.reduceat(dist[tails] + costs, starts)
        better = best < dist[targets]
        if not better.any():
            return dist
        dist[targets[better]] = best[better]
    raise RuntimeError("negative cycle in a residual graph: the flow was not optimal")


def solve(problem: Problem, *, extra: int = NEAREST_EXTRA, prune: bool = True) -> Solution:
    """The optimal assignment of experts to open slots, with why each slot stayed open."""
    started = time.perf_counter()
    req = problem.requests
    n_req = len(req.ids)
    index = Index(problem)
    full: dict[int, tuple[Ints, Floats, dict[str, int]]] = {}  # exact candidates, computed lazily

    def exact(r: int) -> tuple[Ints, Floats, dict[str, int]]:
        if r not in full:
            full[r] = request_arcs(problem, index, r)
        return full[r]

    if prune:
        nearest = nearest_arcs(problem, index, extra)
        parts = [(nearest.request, nearest.expert, nearest.km)]
        bound_km = nearest.bound_km
    else:
        parts = [(np.full(len(c), r, dtype=np.int64), c, km) for r in range(n_req) for c, km, _ in [exact(r)]]
        bound_km = np.full(n_req, np.inf)
    # One B for every round: no arc of the complete graph is longer than the radii allow.
    radius_units = to_units(np.minimum(req.radius_km, 50_000.0))
    bound = _bound(radius_units, req.open)
    eligible_done = time.perf_counter()
    rounds = 0
    while True:
        rounds += 1
        arc_r, arc_e, arc_km = _stack(parts)
        chosen, net = _solve_network(arc_r, arc_e, to_units(arc_km), req.priority, req.open, bound)
        suspects = np.flatnonzero(np.isfinite(bound_km))  # requests whose candidates were pruned
        if not len(suspects):
            break
        added = _violations(problem, net, chosen, arc_r, arc_e, suspects, bound_km, exact, index)
        if not added:
            break
        parts.extend(added)
    solved = time.perf_counter()
    return _answer(
        problem, index, arc_r, arc_e, arc_km, chosen, full, bound_km, started, eligible_done, solved, rounds
    )


def _stack(parts: list[tuple[Ints, Ints, Floats]]) -> tuple[Ints, Ints, Floats]:
    """All arcs in canonical order: by request, then distance, then expert index."""
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    r = np.concatenate([p[0] for p in parts]).astype(np.int64)
    e = np.concatenate([p[1] for p in parts]).astype(np.int64)
    km = np.concatenate([p[2] for p in parts]).astype(np.float64)
    order = np.lexsort((e, km, r))
    return r[order], e[order], km[order]


def _violations(
    problem: Problem,
    net: _Network,
    chosen: Bools,
    arc_r: Ints,
    arc_e: Ints,
    suspects: Ints,
    bound_km: Floats,
    exact: Callable[[int], tuple[Ints, Floats, dict[str, int]]],
    index: Index,
) -> list[tuple[Ints, Ints, Floats]]:
    """Left-out arcs with a negative reduced cost (they could improve the answer); none means the
    answer is optimal for the complete graph."""
    req = problem.requests
    pi = _potentials(net, chosen, req.open)
    n_e = len(net.experts)
    source_pi = float(pi[0])
    outside_pi = min(0.0, source_pi)  # an expert outside the graph: reached only from the source
    # The lowest potential any candidate of a request can have: only holders of its
    # qualification can be candidates, so take the minimum over those in the graph.
    expert_pi = np.full(len(problem.experts.ids), outside_pi)
    expert_pi[net.experts] = np.minimum(pi[2 : 2 + n_e], outside_pi)
    lowest = {
        q: float(expert_pi[index.cred_expert[rows]].min(initial=outside_pi))
        for q, rows in index.qual_rows.items()
    }
    pi_min = np.array([lowest.get(int(q), outside_pi) for q in req.qualification[suspects]], dtype=np.float64)
    node_of = np.full(len(req.ids), -1, dtype=np.int64)
    node_of[net.requests] = 2 + n_e + np.arange(len(net.requests))
    # A request outside the graph has only its arc to the sink: the sink's potential is valid.
    sink_pi = float(pi[1])
    pi_r = np.where(node_of[suspects] >= 0, pi[np.maximum(node_of[suspects], 0)], sink_pi)
    weight = net.weight[req.priority[suspects]]
    # Cheap test first: nobody left out lives nearer than the bound, nor has a lower potential.
    unsure = suspects[to_units(bound_km[suspects]) - weight + pi_min < pi_r]
    if not len(unsure):
        return []
    # Every unsure request's exact candidates at once (each list nearest first).
    lists = [exact(r) for r in unsure.tolist()]
    sizes = np.array([len(c) for c, _, _ in lists], dtype=np.int64)
    r = np.repeat(unsure, sizes)
    e = np.concatenate([c for c, _, _ in lists]).astype(np.int64)
    km = np.concatenate([k for _, k, _ in lists]).astype(np.float64)
    n_experts = len(problem.experts.ids)
    # Arcs already in the graph: unchosen ones are residual arcs, so their reduced cost is ≥ 0
    # by construction; only the chosen ones (saturated) must be told apart.
    chosen_for = np.full(n_experts, -1, dtype=np.int64)  # each expert is chosen at most once
    chosen_for[arc_e[chosen]] = arc_r[chosen]
    present = chosen_for[e] == r
    pos = np.searchsorted(net.experts, e)
    inside = pos < n_e
    inside[inside] = net.experts[pos[inside]] == e[inside]
    pi_e = np.full(len(e), outside_pi)
    pi_e[inside] = pi[2 + pos[inside]]
    pi_own = np.where(node_of[r] >= 0, pi[np.maximum(node_of[r], 0)], sink_pi)
    reduced = to_units(km) - net.weight[req.priority[r]] + pi_e - pi_own
    bad = np.flatnonzero((reduced < 0) & ~present)
    if not len(bad):
        return []
    # Nearest violators first, a round's worth per request: keeps each graph small; the next
    # round's potentials judge the rest again.
    first = np.r_[0, np.flatnonzero(r[bad][1:] != r[bad][:-1]) + 1]
    rank = np.arange(len(bad)) - np.repeat(first, np.diff(np.r_[first, len(bad)]))
    bad = bad[rank < req.open[r[bad]] + NEAREST_EXTRA]
    return [(r[bad], e[bad], km[bad])]


def _answer(
    problem: Problem,
    index: Index,
    arc_r: Ints,
    arc_e: Ints,
    arc_km: Floats,
    chosen: Bools,
    full: dict[int, tuple[Ints, Floats, dict[str, int]]],
    bound_km: Floats,
    started: float,
    eligible_done: float,
    solved: float,
    rounds: int,
) -> Solution:
    req = problem.requests
    n_req = len(req.ids)
    per_request = np.bincount(arc_r, minlength=n_req)
    first = np.searchsorted(arc_r, np.arange(n_req))
    proposals = [
        Proposal(
            request=int(arc_r[i]),
            expert=int(arc_e[i]),
            km=float(arc_km[i]),
            rank=int(i - first[arc_r[i]] + 1),
            eligible=int(per_request[arc_r[i]]),
            limit_km=float(min(problem.experts.max_km[arc_e[i]], req.radius_km[arc_r[i]])),
            complete=not np.isfinite(bound_km[arc_r[i]]) or int(arc_r[i]) in full,
        )
        for i in np.flatnonzero(chosen)
    ]
    filled = np.bincount(arc_r[chosen], minlength=n_req)
    assigned_to = np.full(len(problem.experts.ids), -1, dtype=np.int64)
    assigned_to[arc_e[chosen]] = arc_r[chosen]
    unfilled = {}
    for r in np.flatnonzero(filled < req.open).tolist():
        cand, _, reasons = full[r] if r in full else request_arcs(problem, index, r)
        counts = dict(reasons)
        elsewhere = assigned_to[cand]
        elsewhere = elsewhere[(elsewhere >= 0) & (elsewhere != r)]
        higher = int((req.priority[elsewhere] < req.priority[r]).sum())
        counts["taken_by_higher_priority"] = higher
        counts["taken_by_equal_priority"] = len(elsewhere) - higher
        unfilled[r] = (int(req.open[r] - filled[r]), counts)
    by_priority = {p: 0 for p in PRIORITIES}
    still_open = {p: 0 for p in PRIORITIES}
    for i in range(n_req):
        name = PRIORITIES[int(req.priority[i])]
        by_priority[name] += int(filled[i])
        still_open[name] += int(req.open[i] - filled[i])
    finished = time.perf_counter()
    return Solution(
        proposals=proposals,
        unfilled=unfilled,
        filled=by_priority,
        open=still_open,
        total_km=float(arc_km[chosen].sum()),
        arcs=len(arc_r),
        seconds=finished - started,
        timings={
            "candidates": eligible_done - started,
            "solve_and_prove": solved - eligible_done,
            "explain": finished - solved,
            "rounds": rounds,
            "exact_checks": len(full),
        },
    )
