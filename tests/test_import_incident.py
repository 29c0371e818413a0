"""The incident import: an incident, its facilities and its requests, checked whole, upserted by key."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deploy_tracker.errors import NotAllowed
from incidents.models import Deployment, Facility, Incident, RoleRequest
from resources.importing import InvalidRows, UnusableFile
from resources.importing.incident import import_incident
from resources.importing.specs import INCIDENT_BOOK
from resources.importing.template import write_template
from tests import factories
from tests.conftest import World
from tests.test_import_roster import workbook, writes

pytestmark = pytest.mark.django_db

INCIDENT_HEAD = [
    "number",
    "name",
    "kind",
    "timezone",
    "cost_code",
    "start",
    "max_deployment_days",
    "rest_days",
    "default_radius_km",
    "mileage_rate",
]
FACILITY_HEAD = ["code", "name", "kind", "address", "county", "state", "latitude", "longitude"]
REQUEST_HEAD = ["facility", "qualification", "quantity", "start", "end", "priority", "max_travel_km"]
START = date(2026, 12, 1)


def incident_row(**changes: object) -> list[object]:
    row: dict[str, object] = {
        "number": "WA-2026-09",
        "name": "Winter surge",
        "kind": "pandemic",
        "timezone": "America/Los_Angeles",
        "cost_code": "COVID-26",
        "start": START,
        "max_deployment_days": None,
        "rest_days": None,
        "default_radius_km": None,
        "mileage_rate": None,
    }
    return [(row | changes)[column] for column in INCIDENT_HEAD]


def facility(code: str = "HOSP-SPK-01", **changes: object) -> list[object]:
    row: dict[str, object] = {
        "code": code,
        "name": "Sacred Heart Medical Center",
        "kind": "Hospital",
        "address": "101 W 8th Ave, Spokane, WA",
        "county": "Spokane",
        "state": "wa",
        "latitude": 47.6483,
        "longitude": -117.4134,
    }
    return [(row | changes)[column] for column in FACILITY_HEAD]


def request(code: str = "HOSP-SPK-01", **changes: object) -> list[object]:
    row: dict[str, object] = {
        "facility": code,
        "qualification": "RN",
        "quantity": 3,
        "start": START + timedelta(days=7),
        "end": START + timedelta(days=20),
        "priority": "critical",
        "max_travel_km": None,
    }
    return [(row | changes)[column] for column in REQUEST_HEAD]


def incident_book(
    tmp_path: Path,
    incident: list[list[object]] | None = None,
    facilities: list[list[object]] | None = None,
    requests: list[list[object]] | None = None,
    name: str = "incident.xlsx",
) -> Path:
    return workbook(
        tmp_path / name,
        {
            "incident": [INCIDENT_HEAD, *(incident if incident is not None else [incident_row()])],
            "facilities": [FACILITY_HEAD, *(facilities if facilities is not None else [facility()])],
            "requests": [REQUEST_HEAD, *(requests if requests is not None else [request()])],
        },
    )


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InvalidRows) as caught:
        import_incident(path)
    return caught.value.lines


@pytest.fixture
def catalog(db: None) -> None:
    factories.QualificationFactory(code="RN")
    factories.QualificationFactory(code="RT", name="Respiratory Therapist")


def test_a_valid_workbook_creates_the_incident_its_facilities_and_requests(
    tmp_path: Path, catalog: None
) -> None:
    result = import_incident(
        incident_book(
            tmp_path,
            requests=[request(), request(qualification="rt", quantity=1, priority="High", max_travel_km=150)],
        )
    )

    assert {sheet: c.created for sheet, c in result.counts.items()} == {
        "incident": 1,
        "facilities": 1,
        "requests": 2,
    }
    incident = Incident.objects.get(number="WA-2026-09")
    assert (incident.kind, incident.start, incident.max_deployment_days, incident.rest_days) == (
        "pandemic",
        START,
        14,
        2,
    )
    assert (incident.default_radius_km, incident.mileage_rate) == (300, Decimal("0.435"))
    spokane = Facility.objects.get(incident=incident, code="HOSP-SPK-01")
    assert (spokane.kind, spokane.state, spokane.latitude) == ("hospital", "WA", 47.6483)
    rn, rt = RoleRequest.objects.filter(facility=spokane).order_by("qualification__code")
    assert (rn.quantity, rn.priority, rn.max_travel_km, rn.start) == (
        3,
        "critical",
        None,
        START + timedelta(days=7),
    )
    assert (rt.priority, rt.max_travel_km) == ("high", 150)


def test_reimporting_changes_nothing_and_an_edit_updates_only_what_changed(
    tmp_path: Path, catalog: None
) -> None:
    import_incident(
        incident_book(tmp_path, facilities=[facility(), facility("LTC-SPK-02", name="Spokane LTC")])
    )
    with CaptureQueriesContext(connection) as queries:
        again = import_incident(
            incident_book(tmp_path, facilities=[facility(), facility("LTC-SPK-02", name="Spokane LTC")])
        )
    assert not again.changed and writes(queries) == []
    assert {sheet: c.unchanged for sheet, c in again.counts.items()} == {
        "incident": 1,
        "facilities": 2,
        "requests": 1,
    }

    edited = import_incident(
        incident_book(
            tmp_path,
            incident=[incident_row(rest_days=3)],
            facilities=[facility(), facility("LTC-SPK-02", name="Spokane Long-Term Care")],
            requests=[request(quantity=5), request(qualification="RT")],
        )
    )
    assert {sheet: (c.created, c.updated, c.unchanged) for sheet, c in edited.counts.items()} == {
        "incident": (0, 1, 0),
        "facilities": (0, 1, 1),
        "requests": (1, 1, 0),
    }
    assert Incident.objects.get(number="WA-2026-09").rest_days == 3
    assert RoleRequest.objects.get(qualification__code="RN").quantity == 5
    assert RoleRequest.objects.count() == 2


def test_blank_start_keeps_an_existing_incidents_start(world: World, tmp_path: Path, catalog: None) -> None:
    code = world.request.facility.code
    result = import_incident(
        incident_book(
            tmp_path,
            incident=[
                incident_row(
                    number="WA-2026-01", name=world.incident.name, start=None, kind="pandemic", cost_code=""
                )
            ],
            facilities=[],
            requests=[request(code, start=world.request.start, end=world.request.end, quantity=4)],
        )
    )
    world.incident.refresh_from_db()
    assert world.incident.start == factories.START - timedelta(days=10)
    assert result.counts["requests"].updated == 1
    world.request.refresh_from_db()
    assert world.request.quantity == 4


def test_a_quantity_below_the_people_already_held_is_refused(
    world: World, tmp_path: Path, catalog: None
) -> None:
    for expert in (world.alice, world.bob):
        factories.DeploymentFactory(request=world.request, expert=expert, status=Deployment.Status.ACCEPTED)
    code = world.request.facility.code
    lines = problems_of(
        incident_book(
            tmp_path,
            incident=[incident_row(number="WA-2026-01")],
            facilities=[],
            requests=[request(code, start=world.request.start, end=world.request.end, quantity=1)],
        )
    )
    assert lines == [
        "requests:2:quantity: quantity 1 is less than the 2 people already offered, accepted or on site"
    ]
    world.request.refresh_from_db()
    assert world.request.quantity == 2


BAD: dict[str, tuple[dict[str, list[list[object]]], str]] = {
    "state not two letters": (
        {"facilities": [facility(state="Washington")]},
        "facilities:2:state: state 'Washington' is not a two-letter state code (e.g. WA)",
    ),
    "latitude out of range": (
        {"facilities": [facility(latitude=147.6)]},
        "facilities:2:latitude: latitude 147.6 is outside -90…90",
    ),
    "facility twice": (
        {"facilities": [facility(), facility()]},
        "facilities:3:code: facility code HOSP-SPK-01 appears again on row 3 (first on row 2)",
    ),
    "kind unknown": (
        {"facilities": [facility(kind="castle")]},
        "facilities:2:kind: kind 'castle' is not one of hospital, long_term_care, alternate_care_site, "
        "vaccination_site, testing_site, other",
    ),
    "priority unknown": (
        {"requests": [request(priority="urgent")]},
        "requests:2:priority: priority 'urgent' is not one of critical, high, normal",
    ),
    "dates in the wrong order": (
        {"requests": [request(start=date(2026, 3, 5), end=date(2026, 3, 1))]},
        "requests:2:end: end 2026-03-01 is before start 2026-03-05",
    ),
    "unknown facility": (
        {"requests": [request("HOSP-XXX")]},
        "requests:2:facility: facility 'HOSP-XXX' is neither on the facilities sheet nor in incident "
        "WA-2026-09",
    ),
    "unknown qualification": (
        {"requests": [request(qualification="RNX")]},
        "requests:2:qualification: unknown qualification code 'RNX'; known codes: RN, RT",
    ),
    "request twice": (
        {"requests": [request(), request(quantity=1)]},
        "requests:3:qualification: a request for RN at HOSP-SPK-01 from 2026-12-08 to 2026-12-21 "
        "appears again on row 3 (first on row 2)",
    ),
    "quantity zero": (
        {"requests": [request(quantity=0)]},
        "requests:2:quantity: quantity 0 is outside 1…10000",
    ),
    "no time zone": (
        {"incident": [incident_row(timezone="Pacific")]},
        "incident:2:timezone: timezone 'Pacific' is not an IANA time zone (e.g. America/Los_Angeles)",
    ),
    "assignment too long": (
        {"incident": [incident_row(max_deployment_days=40)]},
        "incident:2:max_deployment_days: max_deployment_days 40 is more than the longest assignment "
        "even with an extension (30 days)",
    ),
    "two incidents": (
        {"incident": [incident_row(), incident_row(number="X")]},
        "incident:3: the incident sheet holds one incident (row 2); remove this row",
    ),
    "mileage with a fraction of a tenth of a cent": (
        {"incident": [incident_row(mileage_rate=0.4355)]},
        "incident:2:mileage_rate: mileage_rate 0.4355 has more than 3 decimals",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_cell_is_reported_and_nothing_is_written(tmp_path: Path, catalog: None, case: str) -> None:
    sheets, expected = BAD[case]
    assert expected in problems_of(incident_book(tmp_path, **sheets))  # type: ignore[arg-type]
    assert not Incident.objects.exists() and not Facility.objects.exists()


def test_a_missing_sheet_and_a_csv_file_are_refused(tmp_path: Path) -> None:
    path = workbook(tmp_path / "i.xlsx", {"incident": [INCIDENT_HEAD, incident_row()]})
    with pytest.raises(
        UnusableFile, match=r"has no sheet named 'facilities', 'requests' \(sheets found: 'incident'\)"
    ):
        import_incident(path)
    csv = tmp_path / "i.csv"
    csv.write_text(",".join(INCIDENT_HEAD) + "\n")
    with pytest.raises(UnusableFile, match="is a CSV file; this import needs an xlsx workbook"):
        import_incident(csv)


# --- Who may import ----------------------------------------------------------------------------------


def test_a_commander_imports_their_own_incident(world: World, tmp_path: Path, catalog: None) -> None:
    path = incident_book(tmp_path, incident=[incident_row(number="WA-2026-01")])
    result = import_incident(path, by=world.commander)
    assert result.counts["facilities"].created == 1
    assert RoleRequest.objects.filter(created_by=world.commander).count() == 1


@pytest.mark.parametrize(
    ("who", "number"), [("other_commander", "WA-2026-01"), ("commander", "NEW-1"), ("viewer", "WA-2026-01")]
)
def test_others_may_not_import_an_incident(
    world: World, tmp_path: Path, catalog: None, who: str, number: str
) -> None:
    with pytest.raises(NotAllowed, match=f"You may not import incident {number}"):
        import_incident(
            incident_book(tmp_path, incident=[incident_row(number=number)]), by=getattr(world, who)
        )
    assert not Facility.objects.filter(code="HOSP-SPK-01").exists()


def test_an_administrator_creates_an_incident(world: World, tmp_path: Path, catalog: None) -> None:
    admin = factories.UserFactory(username="admin", is_staff=True)
    import_incident(incident_book(tmp_path), by=admin)
    assert Incident.objects.filter(number="WA-2026-09").exists()


# --- Template, command, queries ------------------------------------------------------------------------


def test_the_template_filled_with_its_example_imports_cleanly(tmp_path: Path, catalog: None) -> None:
    path = tmp_path / "template.xlsx"
    write_template(INCIDENT_BOOK, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["instructions", "incident", "facilities", "requests"]
    priority = [
        v for v in book["requests"].data_validations.dataValidation if v.formula1 == '"critical,high,normal"'
    ]
    assert priority and str(priority[0].sqref).startswith("F2:F")
    result = import_incident(path)
    assert {sheet: c.created for sheet, c in result.counts.items()} == {
        "incident": 1,
        "facilities": 1,
        "requests": 1,
    }
    assert not import_incident(path).changed


def test_the_command_imports_checks_and_writes_templates(tmp_path: Path, catalog: None) -> None:
    out, err = StringIO(), StringIO()
    call_command("import_incident", str(incident_book(tmp_path)), "--dry-run", stdout=out)
    assert "dry run — nothing was written" in out.getvalue() and not Incident.objects.exists()
    call_command("import_incident", str(incident_book(tmp_path)), stdout=out)
    assert Incident.objects.filter(number="WA-2026-09").exists()
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_incident", str(incident_book(tmp_path, requests=[request(priority="asap")])), stderr=err
        )
    assert caught.value.returncode == 1
    assert "requests:2:priority: priority 'asap' is not one of critical, high, normal" in err.getvalue()
    call_command("import_incident", "--template", str(tmp_path / "t.xlsx"), stdout=out)
    assert (tmp_path / "t.xlsx").exists()


def test_the_number_of_queries_does_not_grow_with_the_file(tmp_path: Path, catalog: None) -> None:
    def run(number: str, n: int) -> int:
        path = incident_book(
            tmp_path,
            incident=[incident_row(number=number)],
            facilities=[facility(f"F-{i}") for i in range(n)],
            requests=[request(f"F-{i}") for i in range(n)],
            name=f"{number}.xlsx",
        )
        with CaptureQueriesContext(connection) as queries:
            import_incident(path)
        return len(queries)

    # The incident by number, the catalog (a new incident has no facilities or requests to
    # load); in the transaction (a savepoint under the test's): the incident, its facilities,
    # its requests.
    assert run("A-1", 10) == run("B-1", 200) == 7
    assert RoleRequest.objects.count() == 210


def test_updating_an_incident_costs_the_same_few_queries_whatever_its_size(
    tmp_path: Path, catalog: None
) -> None:
    def run(n: int) -> int:
        rows = {
            "facilities": [facility(f"F-{i}") for i in range(n)],
            "requests": [request(f"F-{i}") for i in range(n)],
        }
        import_incident(incident_book(tmp_path, incident=[incident_row(number=f"N-{n}")], **rows))
        edited = {
            "facilities": [facility(f"F-{i}", name="Renamed") for i in range(n)],
            "requests": [request(f"F-{i}", quantity=9) for i in range(n)],
        }
        with CaptureQueriesContext(connection) as queries:
            result = import_incident(
                incident_book(tmp_path, incident=[incident_row(number=f"N-{n}")], **edited)
            )
        assert (result.counts["facilities"].updated, result.counts["requests"].updated) == (n, n)
        return len(queries)

    # The incident, the catalog, its facilities, its requests with their held counts; in the
    # transaction: one UPDATE of the facilities and one of the requests (bulk_update, ≤ 2,000 rows).
    assert run(10) == run(200) == 8
