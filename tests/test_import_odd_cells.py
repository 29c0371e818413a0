"""Whatever a cell holds — booleans in number columns, times in date columns, huge text — an
import answers with problems in the user's terms or a clear refusal, never a traceback."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from incidents.models import Incident
from resources.importing import InvalidRows, UnusableFile, import_incident, import_roster
from resources.models import Expert
from tests import factories
from tests.test_import_incident import FACILITY_HEAD, INCIDENT_HEAD, REQUEST_HEAD
from tests.test_import_roster import CREDENTIAL_HEAD, EXPERT_HEAD, WINDOW_HEAD, workbook

pytestmark = pytest.mark.django_db

ODD = [
    True,
    False,
    0,
    -1,
    1.5,
    1e300,
    float("inf"),
    "",
    " ",
    "x",
    "yes",
    "2026-01-01",
    "2026-02-30",
    date(2026, 1, 1),
    datetime(2026, 1, 1, 10, 0),
    time(10, 0),
    timedelta(days=1),
    "a@b.org",
    "WA",
    "critical",
    "RN",
    None,
    "é" * 300,
]


@pytest.mark.parametrize("seed", range(12))
def test_random_odd_cells_are_problems_never_tracebacks(tmp_path: Path, seed: int) -> None:
    factories.QualificationFactory(code="RN")
    rng = random.Random(seed)

    def sheet(head: list[str], n: int) -> list[list[object]]:
        return [head, *([rng.choice(ODD) for _ in head] for _ in range(n))]

    roster = {
        "experts": sheet(EXPERT_HEAD, 6),
        "credentials": sheet(CREDENTIAL_HEAD, 6),
        "availability": sheet(WINDOW_HEAD, 6),
    }
    incident = {
        "incident": sheet(INCIDENT_HEAD, 1),
        "facilities": sheet(FACILITY_HEAD, 6),
        "requests": sheet(REQUEST_HEAD, 6),
    }
    for run, sheets in ((import_roster, roster), (import_incident, incident)):
        try:
            run(workbook(tmp_path / "odd.xlsx", sheets))
        except InvalidRows as exc:
            assert exc.lines and all(line.count(":") >= 2 for line in exc.lines)
        except UnusableFile:
            pass
    assert not Expert.objects.exists() and not Incident.objects.exists()
