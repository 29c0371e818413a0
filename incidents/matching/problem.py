"""The matching problem and its answer as plain arrays and dataclasses (no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

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
    eligible: int  # how many eligible experts were weighed for this request
    limit_km: float  # the tighter of the expert's and the request's radius
    complete: bool = True  # False: `eligible` counts only the nearest ones (more exist farther)


@dataclass
class Solution:
    proposals: list[Proposal]
    unfilled: dict[int, tuple[int, dict[str, int]]]  # request index → (missing, reasons)
    filled: dict[str, int]
    open: dict[str, int]
    total_km: float
    arcs: int
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, and rounds


def great_circle_km(lat1: Floats | float, lon1: Floats | float, lat2: Floats, lon2: Floats) -> Floats:
    """Haversine distance on geopy's sphere, vectorised."""
    p1, l1, p2, l2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))), dtype=np.float64)
