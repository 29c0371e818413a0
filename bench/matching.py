"""Benchmark: optimal matching (ours) against a greedy nearest-qualified loop, on the same instance.

Usage: .venv/bin/python bench/matching.py [--sizes 20000x5000,100000x20000] [--seed 2026] [--full]

Each run happens in its own process so its peak memory is its own. Instances are random but
Washington-shaped: experts and facilities scattered over the state, 20 qualifications, 90 %
verified credentials, each expert willing to travel 100, 200 or 400 km, requests of 1–5 slots
and every priority, 300 km request radius. `--full` also solves the complete, unpruned graph
(the same optimum, slower; at 100,000 × 20,000 it needs several GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402  (after the path is set, like the project imports below)

from incidents.matching import core  # noqa: E402
from incidents.matching.eligibility import Index, request_arcs  # noqa: E402

WA = ord("W") * 256 + ord("A")


def instance(experts: int, slots: int, seed: int) -> core.Problem:
    """A random Washington-sized problem with about `slots` open slots."""
    rng = np.random.default_rng(seed)
    n_req = slots // 3
    n_cred = int(experts * 1.5)
    n_q = 20
    return core.Problem(
        experts=core.Experts(
            ids=np.arange(experts),
            lat=rng.uniform(45.6, 49.0, experts),
            lon=rng.uniform(-124.5, -117.0, experts),
            max_km=rng.choice([100.0, 200.0, 400.0], experts),
        ),
        credentials=core.Credentials(
            expert=rng.integers(0, experts, n_cred),
            qualification=rng.integers(0, n_q, n_cred),
            verified=rng.random(n_cred) < 0.9,
            expires=np.full(n_cred, core.NO_EXPIRY),
            state=np.full(n_cred, WA),
        ),
        availability=core.Windows(np.arange(experts), np.zeros(experts, np.int64), np.full(experts, 1000)),
        holds=core.Windows(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)),
        requests=core.Requests(
            ids=np.arange(n_req),
            qualification=rng.integers(0, n_q, n_req),
            jurisdictional=np.ones(n_req, bool),
            state=np.full(n_req, WA),
            lat=rng.uniform(45.6, 49.0, n_req),
            lon=rng.uniform(-124.5, -117.0, n_req),
            start=np.full(n_req, 10),
            end=np.full(n_req, 23),
            rest_days=np.full(n_req, 2),
            radius_km=np.full(n_req, 300.0),
            priority=rng.integers(0, 3, n_req),
            open=rng.integers(1, 6, n_req),
        ),
    )


def greedy(problem: core.Problem) -> tuple[dict[str, int], float]:
    """The baseline: slots in priority order, each taking the nearest eligible expert still free."""
    index = Index(problem)
    req = problem.requests
    used = np.zeros(len(problem.experts.ids), dtype=bool)
    filled = dict.fromkeys(core.PRIORITIES, 0)
    total = 0.0
    for r in np.lexsort((req.ids, req.priority)).tolist():
        cand, km, _ = request_arcs(problem, index, r)
        free = ~used[cand]
        take = np.flatnonzero(free)[: int(req.open[r])]
        used[cand[take]] = True
        filled[core.PRIORITIES[int(req.priority[r])]] += len(take)
        total += float(km[take].sum())
    return filled, total


def run_one(algorithm: str, experts: int, slots: int, seed: int) -> dict[str, object]:
    problem = instance(experts, slots, seed)
    before = _rss_mb()
    started = time.perf_counter()
    if algorithm == "greedy":
        filled, total = greedy(problem)
        extra: dict[str, object] = {}
    else:
        solution = core.solve(problem, prune=algorithm == "ours")
        filled, total = solution.filled, solution.total_km
        extra = {"arcs": solution.arcs, "rounds": solution.timings.get("rounds")}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "added_mb": peak - before,
        "filled": filled,
        "km": total,
        **extra,
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(algorithm: str, experts: int, slots: int, seed: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", algorithm, "--sizes", f"{experts}x{slots}", "--seed", str(seed)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="20000x5000,100000x20000")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--full", action="store_true", help="also solve the complete, unpruned graph")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    options = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in options.sizes.split(",")]
    if options.one:
        experts, slots = sizes[0]
        print(json.dumps(run_one(options.one, experts, slots, options.seed)))
        return
    print(f"matching benchmark, seed {options.seed}, {os.cpu_count()} cores")
    for experts, slots in sizes:
        runs = {name: measure(name, experts, slots, options.seed) for name in ("ours", "greedy")}
        if options.full:
            runs["complete graph"] = measure("full", experts, slots, options.seed)
        print(f"\n{experts:,} experts × {slots:,} slots")
        for name, r in runs.items():
            filled = r["filled"]
            assert isinstance(filled, dict)
            arcs = f"  arcs {r['arcs']:,}" if "arcs" in r else ""
            print(
                f"  {name:<15} {r['seconds']:7.2f} s  peak {r['peak_mb']:6.0f} MB (+{r['added_mb']:4.0f})  "
                f"filled c/h/n {filled['critical']}/{filled['high']}/{filled['normal']}  "
                f"{r['km']:12,.1f} km{arcs}"
            )
        ours, base = runs["ours"], runs["greedy"]
        gap = (float(base["km"]) - float(ours["km"])) / float(ours["km"]) * 100  # type: ignore[arg-type]
        speed = float(base["seconds"]) / float(ours["seconds"])  # type: ignore[arg-type]
        print(f"  greedy / ours: {speed:.1f}× the time; greedy travels {gap:+.1f} % more")
        if base["filled"] != ours["filled"]:
            print("  (and fills different slot counts: ours is lexicographically optimal by priority)")


if __name__ == "__main__":
    main()
