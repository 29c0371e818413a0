"""The matching core: who fills which open slot, optimally. Pure: numpy in, dataclasses out.

One import for the rest of the project:
* `problem` — the arrays and dataclasses (`Problem`, `Solution`, …) and the distance;
* `eligibility` — the rules: the exact candidates of a request, or the K nearest of all;
* `solver` — the lexicographic min-cost flow and the proof that pruning lost nothing.
"""

from incidents.matching.eligibility import eligible_arcs
from incidents.matching.problem import (
    NO_EXPIRY,
    NO_STATE,
    PRIORITIES,
    REASONS,
    Arcs,
    Credentials,
    Experts,
    Problem,
    Proposal,
    Requests,
    Solution,
    Windows,
    great_circle_km,
)
from incidents.matching.solver import optimise, solve, to_units

__all__ = [
    "NO_EXPIRY",
    "NO_STATE",
    "PRIORITIES",
    "REASONS",
    "Arcs",
    "Credentials",
    "Experts",
    "Problem",
    "Proposal",
    "Requests",
    "Solution",
    "Windows",
    "eligible_arcs",
    "great_circle_km",
    "optimise",
    "solve",
    "to_units",
]
