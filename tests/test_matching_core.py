"""The matching core against independent answers: brute force, SciPy's assignment solver, a
naive per-pair eligibility check, and geopy's distance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from geopy.distance import great_circle
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from incidents.matching import core

# --- optimise: the objective, checked independently --------------------------------------------


def objective(request: np.ndarray, units: np.ndarray, priority: np.ndarray, chosen: np.ndarray) -> tuple:
    """Smaller is better: (−critical, −high, −normal filled, total distance)."""
    filled = np.bincount(priority[request[chosen]], minlength=3)
    return (-int(filled[0]), -int(filled[1]), -int(filled[2]), int(units[chosen].sum()))


def feasible(request: np.ndarray, expert: np.ndarray, open_: np.ndarray, chosen: np.ndarray) -> bool:
    experts = expert[chosen]
    per_request = np.bincount(request[chosen], minlength=len(open_))
    return len(set(experts.tolist())) == len(experts) and bool((per_request <= open_).all())


def brute_force(
    request: np.ndarray, expert: np.ndarray, units: np.ndarray, priority: np.ndarray, open_: np.ndarray
) -> tuple:
    best = objective(request, units, priority, np.zeros(len(request), bool))
    for k in range(1, len(request) + 1):
        for combo in itertools.combinations(range(len(request)), k):
            chosen = np.zeros(len(request), bool)
            chosen[list(combo)] = True
            if feasible(request, expert, open_, chosen):
                best = min(best, objective(request, units, priority, chosen))
    return best


@st.composite
def instances(draw: st.DrawFn, max_requests: int = 3, max_experts: int = 4, max_arcs: int = 9) -> tuple:
    n_r = draw(st.integers(1, max_requests))
    n_e = draw(st.integers(1, max_experts))
    pairs = draw(
        st.lists(st.tuples(st.integers(0, n_r - 1), st.integers(0, n_e - 1)), unique=True, max_size=max_arcs)
    )
    pairs.sort()
    request = np.array([p[0] for p in pairs], dtype=np.int64)
    expert = np.array([p[1] for p in pairs], dtype=np.int64)
    units = np.array(
        draw(st.lists(st.integers(0, 50_000), min_size=len(pairs), max_size=len(pairs))), np.int64
    )
    priority = np.array(draw(st.lists(st.integers(0, 2), min_size=n_r, max_size=n_r)), np.int64)
    open_ = np.array(draw(st.lists(st.integers(1, 2), min_size=n_r, max_size=n_r)), np.int64)
    return request, expert, units, priority, open_


@settings(max_examples=300, deadline=None)
@given(instances())
def test_optimise_matches_brute_force_on_small_instances(instance: tuple) -> None:
    request, expert, units, priority, open_ = instance
    chosen = core.optimise(request, expert, units, priority, open_)
    assert feasible(request, expert, open_, chosen)
    assert objective(request, units, priority, chosen) == brute_force(request, expert, units, priority, open_)


def scipy_optimum(
    request: np.ndarray, expert: np.ndarray, units: np.ndarray, priority: np.ndarray, open_: np.ndarray
) -> tuple:
    """The same problem as a dense assignment: one row per slot, one column per expert plus a
    private "leave it open" column per slot; weights as in core's docstring, from scratch."""
    slots = np.repeat(np.arange(len(open_)), open_)
    n_s, n_e = len(slots), int(expert.max()) + 1 if len(expert) else 1
    big = float(units.max() + 1) * n_s + 1 if len(units) else 1.0
    forbidden = 1e18
    cost = np.full((n_s, n_e + n_s), forbidden)
    cost[np.arange(n_s), n_e + np.arange(n_s)] = 0.0  # leaving a slot open costs nothing
    for r, e, u in zip(request, expert, units, strict=True):
        cost[slots == r, e] = u - (3 - priority[r]) * big
    rows, cols = linear_sum_assignment(cost)
    filled = np.zeros(3, int)
    total = 0
    for s, c in zip(rows, cols, strict=True):
        if c < n_e:
            filled[priority[slots[s]]] += 1
            total += int(cost[s, c] + (3 - priority[slots[s]]) * big)
    return (-int(filled[0]), -int(filled[1]), -int(filled[2]), total)


@settings(max_examples=60, deadline=None)
@given(instances(max_requests=12, max_experts=25, max_arcs=120))
def test_optimise_matches_scipy_on_medium_instances(instance: tuple) -> None:
    request, expert, units, priority, open_ = instance
    chosen = core.optimise(request, expert, units, priority, open_)
    assert feasible(request, expert, open_, chosen)
    assert objective(request, units, priority, chosen) == scipy_optimum(
        request, expert, units, priority, open_
    )


def test_one_critical_slot_outweighs_any_number_of_normal_ones() -> None:
    # Expert 0 can fill the critical request (far) or any of five normal ones (near); experts
    # 1–4 can only fill normal ones. Filling the critical slot costs one normal slot.
    request = np.array([0, 1, 2, 3, 4, 5, 1, 2, 3, 4], dtype=np.int64)
    expert = np.array([0, 0, 0, 0, 0, 0, 1, 2, 3, 4], dtype=np.int64)
    units = np.array([90_000, 1, 1, 1, 1, 1, 5, 5, 5, 5], dtype=np.int64)
    priority = np.array([0, 2, 2, 2, 2, 2], dtype=np.int64)
    open_ = np.ones(6, dtype=np.int64)
    chosen = core.optimise(request, expert, units, priority, open_)
    assert chosen[0], "the critical slot must be filled"
    assert chosen.sum() == 5


def test_high_beats_normal_and_distance_breaks_the_rest() -> None:
    # Two experts, one high and one normal request, both experts eligible for both.
    request = np.array([0, 0, 1, 1], dtype=np.int64)
    expert = np.array([0, 1, 0, 1], dtype=np.int64)
    units = np.array([10, 30, 20, 100], dtype=np.int64)
    priority = np.array([1, 2], dtype=np.int64)
    chosen = core.optimise(request, expert, units, priority, np.ones(2, dtype=np.int64))
    # Both fill; least total distance is expert 1 → high (30) + expert 0 → normal (20) = 50 < 110.
    assert chosen.tolist() == [False, True, True, False]


def test_optimise_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    request = np.sort(rng.integers(0, 30, 400))
    expert = rng.integers(0, 60, 400)
    pairs = np.unique(np.stack([request, expert], 1), axis=0)
    request, expert = pairs[:, 0], pairs[:, 1]
    units = rng.integers(0, 5, len(request))  # many ties on purpose
    priority = rng.integers(0, 3, 30)
    open_ = rng.integers(1, 3, 30)
    first = core.optimise(request, expert, units, priority, open_)
    assert all((core.optimise(request, expert, units, priority, open_) == first).all() for _ in range(3))


# --- eligibility: vectorised rules against a naive per-pair check ---------------------------------

WA, OR = 53, 41


@st.composite
def problems(draw: st.DrawFn) -> core.Problem:
    n_e = draw(st.integers(1, 6))
    n_r = draw(st.integers(1, 4))
    ints = lambda n, lo, hi: np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), np.int64)  # noqa: E731
    floats = lambda n, lo, hi: np.array(  # noqa: E731
        draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=n, max_size=n)), np.float64
    )
    experts = core.Experts(
        ids=np.arange(n_e),
        lat=floats(n_e, 45.6, 49.0),
        lon=floats(n_e, -124.5, -117.0),
        max_km=floats(n_e, 20, 500),
    )
    n_c = draw(st.integers(0, 10))
    credentials = core.Credentials(
        expert=ints(n_c, 0, n_e - 1),
        qualification=ints(n_c, 0, 2),
        verified=np.array(draw(st.lists(st.booleans(), min_size=n_c, max_size=n_c)), bool),
        expires=np.where(ints(n_c, 0, 1) == 1, core.NO_EXPIRY, ints(n_c, 0, 12)),
        state=np.array(
            draw(st.lists(st.sampled_from([WA, OR, core.NO_STATE]), min_size=n_c, max_size=n_c)), np.int64
        ),
    )
    n_a = draw(st.integers(0, 8))
    # Small day ranges, so windows, requests and rest days meet at their edges often.
    a_start = ints(n_a, 0, 6)
    availability = core.Windows(expert=ints(n_a, 0, n_e - 1), start=a_start, end=a_start + ints(n_a, 0, 8))
    n_h = draw(st.integers(0, 4))
    h_start = ints(n_h, 0, 14)
    holds = core.Windows(expert=ints(n_h, 0, n_e - 1), start=h_start, end=h_start + ints(n_h, 0, 4))
    r_start = ints(n_r, 0, 5)
    requests = core.Requests(
        ids=np.arange(n_r),
        qualification=ints(n_r, 0, 2),
        jurisdictional=np.array(draw(st.lists(st.booleans(), min_size=n_r, max_size=n_r)), bool),
        state=np.full(n_r, WA),
        lat=floats(n_r, 45.6, 49.0),
        lon=floats(n_r, -124.5, -117.0),
        start=r_start,
        end=r_start + ints(n_r, 0, 4),
        rest_days=ints(n_r, 0, 2),
        radius_km=floats(n_r, 20, 500),
        priority=ints(n_r, 0, 2),
        open=ints(n_r, 1, 2),
    )
    blocked = frozenset(
        draw(st.sets(st.tuples(st.integers(0, n_r - 1), st.integers(0, n_e - 1)), max_size=3))
    )
    taken = np.array(draw(st.lists(st.booleans(), min_size=n_e, max_size=n_e)), bool)
    return core.Problem(
        experts, credentials, availability, holds, requests, blocked, taken, draw(st.booleans())
    )


def naive_reason(p: core.Problem, r: int, e: int) -> str | None:
    """The first rule expert e fails for request r, written pair by pair from DESIGN.md."""
    req, cred = p.requests, p.credentials
    mine = [
        i
        for i in range(len(cred.expert))
        if cred.expert[i] == e and cred.qualification[i] == req.qualification[r]
    ]
    if not mine:
        return "no_credential"
    verified = [i for i in mine if cred.verified[i] or p.include_unverified]
    if not verified:
        return "unverified"
    right_state = [i for i in verified if not req.jurisdictional[r] or cred.state[i] == req.state[r]]
    if not right_state:
        return "wrong_jurisdiction"
    if not any(cred.expires[i] >= req.end[r] for i in right_state):
        return "expires_before_end"
    if (r, e) in p.blocked:
        return "declined"
    av = p.availability
    if not any(
        av.expert[i] == e and av.start[i] <= req.start[r] and av.end[i] >= req.end[r]
        for i in range(len(av.expert))
    ):
        return "not_available"
    h = p.holds
    busy_until = req.end[r] + req.rest_days[r]
    held = any(
        h.expert[i] == e and h.start[i] <= busy_until and h.end[i] >= req.start[r]
        for i in range(len(h.expert))
    )
    if held or (p.taken is not None and p.taken[e]):
        return "already_deployed"
    km = great_circle((p.experts.lat[e], p.experts.lon[e]), (req.lat[r], req.lon[r])).km
    if km > min(p.experts.max_km[e], req.radius_km[r]):
        return "too_far"
    return None


@settings(max_examples=500, deadline=None)
@given(problems())
def test_eligibility_matches_the_rules_pair_by_pair(p: core.Problem) -> None:
    arcs = core.eligible_arcs(p)
    got = set(zip(arcs.request.tolist(), arcs.expert.tolist(), strict=True))
    for r in range(len(p.requests.ids)):
        expected = dict.fromkeys(core.REASONS, 0)
        for e in range(len(p.experts.ids)):
            reason = naive_reason(p, r, e)
            if reason is None:
                assert (r, e) in got
            else:
                assert (r, e) not in got
                expected[reason] += 1
        assert arcs.reasons[r] == expected


def test_arcs_come_nearest_first_within_each_request() -> None:
    rng = np.random.default_rng(3)
    n = 200
    p = core.Problem(
        experts=core.Experts(
            np.arange(n), rng.uniform(46, 48, n), rng.uniform(-123, -118, n), np.full(n, 1000.0)
        ),
        credentials=core.Credentials(
            np.arange(n), np.zeros(n, np.int64), np.ones(n, bool), np.full(n, core.NO_EXPIRY), np.full(n, WA)
        ),
        availability=core.Windows(np.arange(n), np.zeros(n, np.int64), np.full(n, 99)),
        holds=core.Windows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)),
        requests=core.Requests(
            np.arange(2),
            np.zeros(2, np.int64),
            np.ones(2, bool),
            np.full(2, WA),
            np.array([47.0, 47.5]),
            np.array([-120.0, -122.0]),
            np.zeros(2, np.int64),
            np.full(2, 9),
            np.full(2, 2),
            np.full(2, 1000.0),
            np.array([0, 1]),
            np.array([3, 3]),
        ),
    )
    arcs = core.eligible_arcs(p)
    for r in (0, 1):
        km = arcs.km[arcs.request == r]
        assert len(km) == n
        assert (np.diff(km) >= 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_distance_agrees_with_geopy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lat1, lon1, lat2, lon2 = (
        rng.uniform(-80, 80),
        rng.uniform(-179, 179),
        rng.uniform(-80, 80, 20),
        rng.uniform(-179, 179, 20),
    )
    ours = core.great_circle_km(lat1, lon1, lat2, lon2)
    theirs = [great_circle((lat1, lon1), (a, b)).km for a, b in zip(lat2, lon2, strict=True)]
    assert ours == pytest.approx(theirs, abs=1e-6)


def one_pair(**changes: object) -> core.Problem:
    """One expert, one request (days 10–19, 2 rest days), eligible unless `changes` say otherwise."""
    parts: dict[str, object] = {
        "credential": core.Credentials(
            np.array([0]), np.array([0]), np.array([True]), np.array([19]), np.array([WA])
        ),
        "availability": core.Windows(np.array([0]), np.array([10]), np.array([19])),
        "holds": core.Windows(np.array([0]), np.array([22]), np.array([30])),
    }
    parts.update(changes)
    return core.Problem(
        experts=core.Experts(np.array([0]), np.array([47.0]), np.array([-122.0]), np.array([100.0])),
        credentials=parts["credential"],  # type: ignore[arg-type]
        availability=parts["availability"],  # type: ignore[arg-type]
        holds=parts["holds"],  # type: ignore[arg-type]
        requests=core.Requests(
            np.array([0]),
            np.array([0]),
            np.array([True]),
            np.array([WA]),
            np.array([47.5]),
            np.array([-122.0]),
            np.array([10]),
            np.array([19]),
            np.array([2]),
            np.array([300.0]),
            np.array([0]),
            np.array([1]),
        ),
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),  # valid through the last day, available exactly, held from the day after rest
        (
            {
                "credential": core.Credentials(
                    np.array([0]), np.array([0]), np.array([True]), np.array([18]), np.array([WA])
                )
            },
            "expires_before_end",
        ),
        ({"availability": core.Windows(np.array([0]), np.array([10]), np.array([18]))}, "not_available"),
        ({"availability": core.Windows(np.array([0]), np.array([11]), np.array([19]))}, "not_available"),
        ({"holds": core.Windows(np.array([0]), np.array([21]), np.array([30]))}, "already_deployed"),
        ({"holds": core.Windows(np.array([0]), np.array([0]), np.array([10]))}, "already_deployed"),
        ({"holds": core.Windows(np.array([0]), np.array([0]), np.array([9]))}, None),
    ],
)
def test_edges_of_every_date_rule(changes: dict[str, object], reason: str | None) -> None:
    p = one_pair(**changes)
    arcs = core.eligible_arcs(p)
    assert naive_reason(p, 0, 0) == reason
    assert (len(arcs.request) == 1) == (reason is None)
    if reason:
        assert arcs.reasons[0][reason] == 1


# --- pruning with proof: the same optimum as the complete graph ---------------------------------


def score(solution: core.Solution) -> tuple:
    units = int(core.to_units(np.array([p.km for p in solution.proposals])).sum())
    return (solution.filled, units)


@settings(max_examples=400, deadline=None)
@given(problems(), st.integers(0, 2))
def test_pruned_solve_reaches_the_complete_optimum_on_small_problems(p: core.Problem, extra: int) -> None:
    full = core.solve(p, prune=False)
    pruned = core.solve(p, extra=extra)
    assert score(pruned) == score(full)
    assert {r: u for r, u in pruned.unfilled.items()} == {r: u for r, u in full.unfilled.items()}


def random_problem(seed: int, n_e: int, n_r: int, n_q: int = 3) -> core.Problem:
    """A Washington-sized scatter of experts and requests, dense enough that they compete."""
    rng = np.random.default_rng(seed)
    n_c = int(n_e * 1.3)
    return core.Problem(
        experts=core.Experts(
            np.arange(n_e),
            rng.uniform(45.6, 49, n_e),
            rng.uniform(-124.5, -117, n_e),
            rng.choice([60.0, 150, 400], n_e),
        ),
        credentials=core.Credentials(
            rng.integers(0, n_e, n_c),
            rng.integers(0, n_q, n_c),
            rng.random(n_c) < 0.9,
            np.where(rng.random(n_c) < 0.8, core.NO_EXPIRY, rng.integers(0, 30, n_c)),
            np.where(rng.random(n_c) < 0.9, WA, OR),
        ),
        availability=core.Windows(np.arange(n_e), rng.integers(0, 5, n_e), rng.integers(15, 40, n_e)),
        holds=core.Windows(
            rng.integers(0, n_e, n_e // 10), rng.integers(0, 30, n_e // 10), rng.integers(30, 40, n_e // 10)
        ),
        requests=core.Requests(
            np.arange(n_r),
            rng.integers(0, n_q, n_r),
            rng.random(n_r) < 0.7,
            np.full(n_r, WA),
            rng.uniform(45.6, 49, n_r),
            rng.uniform(-124.5, -117, n_r),
            rng.integers(5, 10, n_r),
            rng.integers(10, 20, n_r),
            np.full(n_r, 2),
            rng.choice([100.0, 300.0], n_r),
            rng.integers(0, 3, n_r),
            rng.integers(1, 5, n_r),
        ),
        blocked=frozenset(
            (int(r), int(e)) for r, e in zip(rng.integers(0, n_r, 20), rng.integers(0, n_e, 20), strict=True)
        ),
    )


@pytest.mark.parametrize(("seed", "extra"), [(1, 0), (2, 1), (3, 3), (4, 12), (5, 0)])
def test_pruned_solve_reaches_the_complete_optimum_on_medium_problems(seed: int, extra: int) -> None:
    p = random_problem(seed, n_e=600, n_r=250)
    full = core.solve(p, prune=False)
    pruned = core.solve(p, extra=extra)
    assert score(pruned) == score(full)
    assert pruned.arcs < full.arcs  # it really pruned
    assert sum(full.filled.values()) > 0 and full.unfilled  # contested: slots stay open


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-40, 40), min_size=n, max_size=n),
            st.lists(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 50)), max_size=40
            ),
        )
    )
)
def test_shortest_paths_agree_with_scipy_on_graphs_without_negative_cycles(graph: tuple) -> None:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import bellman_ford

    from incidents.matching.solver import shortest_paths

    potential, edges = graph
    n = len(potential)
    edges = list({(t, h): c for t, h, c in edges if t != h}.items())
    tails = np.array([t for (t, _), _ in edges], dtype=np.int64)
    heads = np.array([h for (_, h), _ in edges], dtype=np.int64)
    # cost = c + p(t) − p(h) with c ≥ 0: often negative, yet every cycle sums to Σc ≥ 0.
    costs = np.array([float(c + potential[t] - potential[h]) for (t, h), c in edges], dtype=np.float64)
    ours = shortest_paths(n, tails, heads, costs)
    root = n  # scipy: a real root joined to every node at cost 0
    graph_ = csr_matrix(
        (np.r_[costs, np.zeros(n)], (np.r_[tails, np.full(n, root)], np.r_[heads, np.arange(n)])),
        shape=(n + 1, n + 1),
    )
    assert ours == pytest.approx(bellman_ford(graph_, directed=True, indices=root)[:n])


def test_shortest_paths_refuse_a_negative_cycle() -> None:
    from incidents.matching.solver import shortest_paths

    with pytest.raises(RuntimeError, match="negative cycle"):
        shortest_paths(2, np.array([0, 1]), np.array([1, 0]), np.array([-3.0, 1.0]))


def test_the_core_is_pure_python_with_no_django() -> None:
    import subprocess
    import sys

    code = (
        "import sys, incidents.matching.core; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PATH": ""}
    )
    assert out.stdout.strip() == "[]"
