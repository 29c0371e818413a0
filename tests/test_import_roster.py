"""The roster import: every cell checked before anything is written, upserts by email, clear errors."""

from __future__ import annotations

import csv
import zipfile
from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from resources.importing import InvalidRows, UnusableFile, import_roster
from resources.importing.specs import ROSTER
from resources.importing.template import write_template
from resources.models import Agency, Availability, Credential, Expert, Qualification
from tests import factories

pytestmark = pytest.mark.django_db

EXPERT_HEAD = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "agency",
    "home_place",
    "latitude",
    "longitude",
    "max_travel_km",
    "hourly_rate",
    "active",
]
CREDENTIAL_HEAD = ["email", "qualification", "number", "jurisdiction", "verified", "expires_on"]
WINDOW_HEAD = ["email", "start", "end"]
ANA = "ana@example.org"


def expert(email: str = ANA, **changes: object) -> list[object]:
    row: dict[str, object] = {
        "email": email,
        "first_name": "Ana",
        "last_name": "Garcia",
        "phone": "360-555-0100",
        "agency": "County Health",
        "home_place": "Tacoma, WA",
        "latitude": 47.2529,
        "longitude": -122.4443,
        "max_travel_km": 300,
        "hourly_rate": 58.5,
        "active": "yes",
    }
    return [(row | changes)[column] for column in EXPERT_HEAD]


def credential(email: str = ANA, **changes: object) -> list[object]:
    row: dict[str, object] = {
        "email": email,
        "qualification": "RN",
        "number": "RN60012345",
        "jurisdiction": "WA",
        "verified": "yes",
        "expires_on": date(2027, 6, 30),
    }
    return [(row | changes)[column] for column in CREDENTIAL_HEAD]


def window(
    email: str = ANA, start: object = date(2026, 12, 1), end: object = date(2027, 2, 28)
) -> list[object]:
    return [email, start, end]


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """An xlsx file with these sheets, written by openpyxl as Excel would save it."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


_DEFAULT: list[list[object]] = []


def roster(
    tmp_path: Path,
    experts: list[list[object]] | None = None,
    credentials: list[list[object]] | None = _DEFAULT,
    availability: list[list[object]] | None = _DEFAULT,
    name: str = "roster.xlsx",
    **more: list[list[object]],
) -> Path:
    """A roster workbook: Ana with an RN license and one window unless told otherwise; None leaves a
    sheet out."""
    sheets = {"experts": [EXPERT_HEAD, *(experts if experts is not None else [expert()])]}
    if credentials is not None:
        sheets["credentials"] = [
            CREDENTIAL_HEAD,
            *(credentials if credentials is not _DEFAULT else [credential()]),
        ]
    if availability is not None:
        sheets["availability"] = [
            WINDOW_HEAD,
            *(availability if availability is not _DEFAULT else [window()]),
        ]
    return workbook(tmp_path / name, sheets | more)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InvalidRows) as caught:
        import_roster(path)
    return caught.value.lines


@pytest.fixture
def catalog(db: None) -> None:
    factories.QualificationFactory(code="RN", name="Registered Nurse", kind="license", jurisdictional=True)
    factories.QualificationFactory(
        code="BLS", name="Basic Life Support", kind="certification", jurisdictional=False
    )


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries.captured_queries if q["sql"].split()[0] in {"INSERT", "UPDATE", "DELETE"}
    ]


# --- A valid file ------------------------------------------------------------------------------------


def test_a_valid_roster_creates_experts_credentials_and_availability(tmp_path: Path, catalog: None) -> None:
    path = roster(
        tmp_path,
        experts=[
            expert(),
            expert("bo@example.org", first_name="Bo", phone=3605550101, active=None, hourly_rate="$60.00"),
        ],
        credentials=[
            credential(qualification="rn", jurisdiction="wa"),
            credential(qualification="BLS", jurisdiction="", verified="no", expires_on=None),
        ],
    )
    result = import_roster(path)

    assert {sheet: (c.created, c.updated, c.unchanged, c.removed) for sheet, c in result.counts.items()} == {
        "agencies": (1, 0, 0, 0),
        "experts": (2, 0, 0, 0),
        "credentials": (2, 0, 0, 0),
        "availability": (1, 0, 0, 0),
    }
    ana = Expert.objects.get(email=ANA)
    assert (ana.agency.name, ana.hourly_rate, ana.max_travel_km, ana.latitude) == (
        "County Health",
        Decimal("58.50"),
        300,
        47.2529,
    )
    bo = Expert.objects.get(email="bo@example.org")
    assert (bo.phone, bo.active, bo.hourly_rate) == ("3605550101", True, Decimal("60.00"))
    rn = ana.credentials.get(qualification__code="RN")
    assert (rn.jurisdiction, rn.verified, rn.expires_on, rn.verified_by) == (
        "WA",
        True,
        date(2027, 6, 30),
        None,
    )
    assert rn.verified_at is not None
    bls = ana.credentials.get(qualification__code="BLS")
    assert (bls.verified, bls.verified_at, bls.expires_on) == (False, None, None)
    assert list(ana.availability.values_list("start", "end")) == [(date(2026, 12, 1), date(2027, 2, 28))]
    assert Agency.objects.get(name="County Health").code == "county-health"
    assert result.warnings == [
        "agencies: County Health is new: created with a fringe rate of 0 (set it in the admin)"
    ]


def test_reimporting_the_same_file_changes_nothing_and_writes_nothing(tmp_path: Path, catalog: None) -> None:
    path = roster(
        tmp_path,
        experts=[expert(), expert("bo@example.org")],
        credentials=[credential(), credential("bo@example.org")],
    )
    import_roster(path)
    before = list(Expert.objects.values_list("pk", "updated_at").order_by("pk"))
    credentials = list(Credential.objects.values_list("pk", "verified_at").order_by("pk"))

    with CaptureQueriesContext(connection) as queries:
        again = import_roster(path)

    assert not again.changed
    assert {sheet: c.unchanged for sheet, c in again.counts.items()} == {
        "agencies": 1,
        "experts": 2,
        "credentials": 2,
        "availability": 1,
    }
    assert writes(queries) == []
    assert list(Expert.objects.values_list("pk", "updated_at").order_by("pk")) == before
    assert list(Credential.objects.values_list("pk", "verified_at").order_by("pk")) == credentials


def test_an_edit_updates_only_the_rows_that_changed(tmp_path: Path, catalog: None) -> None:
    import_roster(
        roster(tmp_path, experts=[expert(), expert("bo@example.org")], credentials=None, availability=None)
    )
    bo_before = Expert.objects.get(email="bo@example.org").updated_at

    result = import_roster(
        roster(
            tmp_path,
            experts=[expert(hourly_rate=61), expert("bo@example.org")],
            credentials=None,
            availability=None,
        )
    )

    assert (result.counts["experts"].updated, result.counts["experts"].unchanged) == (1, 1)
    assert Expert.objects.get(email=ANA).hourly_rate == Decimal("61.00")
    assert Expert.objects.get(email="bo@example.org").updated_at == bo_before


def test_email_matches_whatever_the_case_and_the_files_spelling_wins(
    world: object, tmp_path: Path, catalog: None
) -> None:
    result = import_roster(
        roster(
            tmp_path,
            experts=[expert("Alice@Example.ORG", first_name="Alice")],
            credentials=None,
            availability=None,
        )
    )
    assert (result.counts["experts"].created, result.counts["experts"].updated) == (0, 1)
    assert Expert.objects.filter(email="Alice@Example.ORG", first_name="Alice").exists()


def test_the_credentials_sheet_is_the_whole_list_for_the_experts_it_lists(
    world: object, tmp_path: Path, catalog: None
) -> None:
    alice = Expert.objects.get(email="alice@example.org")
    bob = Expert.objects.get(email="bob@example.org")
    old = factories.CredentialFactory(
        expert=bob, qualification=Qualification.objects.get(code="BLS"), jurisdiction=""
    )
    alices = factories.CredentialFactory(
        expert=alice, qualification=Qualification.objects.get(code="BLS"), jurisdiction=""
    )
    factories.AvailabilityFactory(expert=bob)

    result = import_roster(
        roster(
            tmp_path,
            experts=[expert("bob@example.org", first_name="Bob")],
            credentials=[credential("bob@example.org")],
            availability=[],
        )
    )

    assert (result.counts["credentials"].created, result.counts["credentials"].removed) == (1, 1)
    assert result.counts["availability"].removed == 1
    assert not Credential.objects.filter(pk=old.pk).exists()
    assert list(bob.credentials.values_list("qualification__code", flat=True)) == ["RN"]
    assert not bob.availability.exists()
    assert Credential.objects.filter(pk=alices.pk).exists(), "Alice is not in the file: hers stay"
    assert any("every listed expert's availability is removed" in w for w in result.warnings)


def test_a_left_out_sheet_keeps_those_rows(world: object, tmp_path: Path, catalog: None) -> None:
    bob = Expert.objects.get(email="bob@example.org")
    factories.CredentialFactory(expert=bob, qualification=Qualification.objects.get(code="RN"))
    result = import_roster(
        roster(tmp_path, experts=[expert("bob@example.org")], credentials=None, availability=None)
    )
    assert set(result.counts) == {"agencies", "experts"}
    assert bob.credentials.count() == 1


def test_verifying_a_credential_stamps_it_and_unverifying_clears_the_stamp(
    tmp_path: Path, catalog: None
) -> None:
    import_roster(roster(tmp_path, credentials=[credential(verified="no")]))
    assert Credential.objects.get().verified_at is None
    import_roster(roster(tmp_path, credentials=[credential(verified="yes")]))
    stamped = Credential.objects.get()
    assert stamped.verified and stamped.verified_at is not None
    import_roster(roster(tmp_path, credentials=[credential(verified="yes", expires_on=date(2028, 1, 1))]))
    assert Credential.objects.get().verified_at == stamped.verified_at, "a new expiry is no new verification"
    import_roster(roster(tmp_path, credentials=[credential(verified="no")]))
    assert (Credential.objects.get().verified, Credential.objects.get().verified_at) == (False, None)


def test_the_qualifications_sheet_adds_and_updates_the_catalog(tmp_path: Path, catalog: None) -> None:
    result = import_roster(
        roster(
            tmp_path,
            credentials=[credential(qualification="ECMO", jurisdiction="")],
            qualifications=[
                ["code", "name", "kind", "jurisdictional"],
                ["ECMO", "ECMO Specialist", "Certification", "no"],
                ["rn", "Registered Nurse (RN)", "license", "yes"],
            ],
        )
    )
    assert (result.counts["qualifications"].created, result.counts["qualifications"].updated) == (1, 1)
    assert Qualification.objects.get(code="ECMO").kind == "certification"
    assert Qualification.objects.get(code="RN").name == "Registered Nurse (RN)"
    assert Credential.objects.get().qualification.code == "ECMO"


def test_a_dry_run_counts_and_writes_nothing(tmp_path: Path, catalog: None) -> None:
    with CaptureQueriesContext(connection) as queries:
        result = import_roster(roster(tmp_path), dry_run=True)
    assert result.dry_run and result.counts["experts"].created == 1
    assert writes(queries) == []
    assert not Expert.objects.exists() and not Agency.objects.exists()


# --- Every bad cell, in the user's terms ---------------------------------------------------------------

BAD: dict[str, tuple[dict[str, object], str]] = {
    "latitude out of range": (
        {"experts": [expert(latitude=123.4)]},
        "experts:2:latitude: latitude 123.4 is outside -90…90",
    ),
    "longitude not a number": (
        {"experts": [expert(longitude="abc")]},
        "experts:2:longitude: longitude 'abc' is not a number",
    ),
    "travel not whole": (
        {"experts": [expert(max_travel_km=12.5)]},
        "experts:2:max_travel_km: max_travel_km 12.5 is not a whole number",
    ),
    "travel zero": (
        {"experts": [expert(max_travel_km=0)]},
        "experts:2:max_travel_km: max_travel_km 0 is outside 1…20000",
    ),
    "negative rate": (
        {"experts": [expert(hourly_rate=-3)]},
        "experts:2:hourly_rate: hourly_rate -3 must be from 0 to 99999999.99",
    ),
    "fraction of a cent": (
        {"experts": [expert(hourly_rate=52.555)]},
        "experts:2:hourly_rate: hourly_rate 52.555 has more than 2 decimals",
    ),
    "active maybe": (
        {"experts": [expert(active="maybe")]},
        "experts:2:active: active 'maybe' is not yes or no",
    ),
    "not an email": (
        {"experts": [expert("not-an-email")], "credentials": None, "availability": None},
        "experts:2:email: email 'not-an-email' is not an email address",
    ),
    "required blank": (
        {"experts": [expert(first_name=None)]},
        "experts:2:first_name: first_name is required",
    ),
    "too long": (
        {"experts": [expert(last_name="x" * 101)]},
        "experts:2:last_name: last_name is 101 characters long; at most 100",
    ),
    "duplicate email": (
        {"experts": [expert(), expert("bo@example.org"), expert("ANA@example.org")]},
        "experts:4:email: email ANA@example.org appears again on row 4 (first on row 2)",
    ),
    "unknown qualification": (
        {"credentials": [credential(qualification="RNX")]},
        "credentials:2:qualification: unknown qualification code 'RNX'; known codes: BLS, RN",
    ),
    "state license without a state": (
        {"credentials": [credential(jurisdiction=None)]},
        "credentials:2:jurisdiction: RN is a state license: jurisdiction (the issuing state) is required",
    ),
    "jurisdiction not two letters": (
        {"credentials": [credential(jurisdiction="Washington")]},
        "credentials:2:jurisdiction: jurisdiction 'Washington' is not a two-letter state code (e.g. WA)",
    ),
    "verified blank": (
        {"credentials": [credential(verified=None)]},
        "credentials:2:verified: verified is required",
    ),
    "credential twice": (
        {"credentials": [credential(), credential(number="other")]},
        "credentials:3:qualification: credential RN (WA) of ana@example.org appears again on row 3 "
        "(first on row 2)",
    ),
    "credential of someone not listed": (
        {"credentials": [credential("zoe@example.org")]},
        "credentials:2:email: email zoe@example.org is not on the experts sheet",
    ),
    "date not a date": (
        {"availability": [window(start="2026-13-01")]},
        "availability:2:start: start '2026-13-01' is not a date (use YYYY-MM-DD)",
    ),
    "dates in the wrong order": (
        {"availability": [window(start=date(2026, 3, 5), end=date(2026, 3, 1))]},
        "availability:2:end: end 2026-03-01 is before start 2026-03-05",
    ),
    "a typo year": (
        {"availability": [window(start="0026-03-01")]},
        "availability:2:start: start 0026-03-01 is not between 1900 and 2199",
    ),
    "window twice": (
        {"availability": [window(), window()]},
        "availability:3:start: window 2026-12-01 – 2027-02-28 of ana@example.org appears again on row 3 "
        "(first on row 2)",
    ),
    "expiry not a date": (
        {"credentials": [credential(expires_on=46000)]},
        "credentials:2:expires_on: expires_on 46000 is not a date (use YYYY-MM-DD)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_cell_is_reported_in_the_users_terms_and_nothing_is_written(
    tmp_path: Path, catalog: None, case: str
) -> None:
    sheets, expected = BAD[case]
    lines = problems_of(roster(tmp_path, **sheets))  # type: ignore[arg-type]
    assert expected in lines
    assert not Expert.objects.exists() and not Agency.objects.exists()


def test_one_bad_row_among_good_ones_writes_nothing(tmp_path: Path, catalog: None) -> None:
    experts = [expert(f"p{i}@example.org") for i in range(20)] + [expert("bad@example.org", latitude=-91)]
    assert problems_of(roster(tmp_path, experts=experts, credentials=None, availability=None)) == [
        "experts:22:latitude: latitude -91 is outside -90…90"
    ]
    assert not Expert.objects.exists()


def test_every_problem_is_collected_and_the_list_is_capped(tmp_path: Path, catalog: None) -> None:
    experts = [expert(f"p{i}@example.org", latitude=100, longitude=200) for i in range(150)]
    with pytest.raises(InvalidRows) as caught:
        import_roster(roster(tmp_path, experts=experts, credentials=None, availability=None))
    assert caught.value.problems.total == 300
    assert len(caught.value.lines) == 200 and caught.value.more == 100
    assert caught.value.lines[:2] == [
        "experts:2:latitude: latitude 100 is outside -90…90",
        "experts:2:longitude: longitude 200 is outside -180…180",
    ]
    assert "300 problems; nothing was imported" in caught.value.message


def test_row_numbers_are_the_ones_excel_shows_around_blank_rows(tmp_path: Path, catalog: None) -> None:
    path = workbook(
        tmp_path / "gaps.xlsx",
        {"experts": [[], [], EXPERT_HEAD, expert(), [], [], expert("bo@example.org", latitude="north")]},
    )
    assert problems_of(path) == ["experts:7:latitude: latitude 'north' is not a number"]


# --- Files that cannot be used -------------------------------------------------------------------------


def test_a_missing_required_column_is_named_with_the_expected_ones(tmp_path: Path, catalog: None) -> None:
    rows = [
        [c for c in EXPERT_HEAD if c != "hourly_rate"],
        [v for c, v in zip(EXPERT_HEAD, expert(), strict=True) if c != "hourly_rate"],
    ]
    lines = problems_of(workbook(tmp_path / "r.xlsx", {"experts": rows}))
    assert lines == [
        "experts:1:hourly_rate: required column hourly_rate is missing; the experts sheet has the columns "
        "email*, first_name*, last_name*, phone, agency*, home_place, latitude*, longitude*, max_travel_km*, "
        "hourly_rate*, active (* required)"
    ]


def test_headers_match_whatever_their_case_and_unknown_columns_are_a_warning(
    tmp_path: Path, catalog: None
) -> None:
    head = [c.replace("_", " ").title() for c in EXPERT_HEAD] + ["Notes"]
    result = import_roster(workbook(tmp_path / "r.xlsx", {"experts": [head, [*expert(), "call first"]]}))
    assert result.counts["experts"].created == 1
    assert result.warnings[0] == (
        "experts:1:Notes: unknown column ignored (the experts sheet has the columns email*, first_name*, "
        "last_name*, phone, agency*, home_place, latitude*, longitude*, max_travel_km*, hourly_rate*, active)"
    )


def test_a_missing_sheet_names_it_and_the_sheets_found(tmp_path: Path) -> None:
    with pytest.raises(UnusableFile) as caught:
        import_roster(workbook(tmp_path / "r.xlsx", {"People": [EXPERT_HEAD]}))
    assert caught.value.message == (
        "r.xlsx has no sheet named 'experts' (sheets found: 'People'). A roster workbook has the sheets "
        "experts, credentials (optional), availability (optional), qualifications (optional)."
    )


def test_an_empty_sheet_and_a_sheet_of_headers_only(tmp_path: Path) -> None:
    assert problems_of(workbook(tmp_path / "a.xlsx", {"experts": []}))[0].startswith(
        "experts:1: the sheet is empty; its first row should hold the headers email*, first_name*"
    )
    assert problems_of(workbook(tmp_path / "b.xlsx", {"experts": [EXPERT_HEAD]})) == [
        "experts:2: no experts below the header row"
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("roster.xlsx", b"", "roster.xlsx is empty."),
        (
            "roster.xlsx",
            b"email,first_name\na@b.org,Ann\n",
            "roster.xlsx is not an xlsx workbook or CSV file.",
        ),
        (
            "roster.csv",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00\x01\x02",
            "roster.csv is not an xlsx workbook or CSV file.",
        ),
        ("roster.pdf", b"%PDF-1.7\n", "roster.pdf is not an xlsx workbook or CSV file."),
    ],
)
def test_files_that_are_not_spreadsheets_get_one_clear_line(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnusableFile) as caught:
        import_roster(path)
    assert caught.value.message == message


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(UnusableFile) as caught:
        import_roster(path)
    assert caught.value.message.startswith("roster.xlsx is not an xlsx workbook or CSV file (")


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path, settings: Settings) -> None:
    settings.IMPORT_MAX_BYTES = 1024 * 1024
    path = tmp_path / "big.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * (2 * 1024 * 1024))
    with pytest.raises(UnusableFile) as caught:
        import_roster(path)
    assert caught.value.message == (
        "big.xlsx is 2.0 MB; an import takes files of at most 1.0 MB. Split it into several files."
    )


def test_a_sheet_over_the_row_limit_is_refused(tmp_path: Path, settings: Settings, catalog: None) -> None:
    settings.IMPORT_MAX_ROWS = 3
    path = roster(
        tmp_path, experts=[expert(f"p{i}@example.org") for i in range(5)], credentials=None, availability=None
    )
    with pytest.raises(UnusableFile) as caught:
        import_roster(path)
    assert caught.value.message == (
        "roster.xlsx: the experts sheet has 5 rows; an import takes at most 3 rows per sheet. "
        "Split it into several files."
    )


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnusableFile, match="no such file"):
        import_roster(tmp_path / "nope.xlsx")


# --- CSV ---------------------------------------------------------------------------------------------


def csv_file(
    path: Path, rows: list[list[object]], *, delimiter: str = ",", encoding: str = "utf-8-sig"
) -> Path:
    text = StringIO()
    csv.writer(text, delimiter=delimiter).writerows([["" if v is None else v for v in row] for row in rows])
    path.write_bytes(text.getvalue().encode(encoding))
    return path


def test_a_csv_of_the_experts_sheet_imports_the_same_way(tmp_path: Path, catalog: None) -> None:
    path = csv_file(tmp_path / "experts.csv", [EXPERT_HEAD, expert(), [], expert("bo@example.org")])
    result = import_roster(path)
    assert result.counts["experts"].created == 2
    assert Expert.objects.get(email="bo@example.org").hourly_rate == Decimal("58.50")
    assert not import_roster(path).changed


def test_a_csv_from_excel_in_another_locale(tmp_path: Path, catalog: None) -> None:
    csv_file(
        tmp_path / "experts.csv", [EXPERT_HEAD, expert(first_name="Zoë")], delimiter=";", encoding="cp1252"
    )
    import_roster(tmp_path / "experts.csv")
    assert Expert.objects.get().first_name == "Zoë"


def test_problems_in_a_csv_use_its_line_numbers(tmp_path: Path, catalog: None) -> None:
    path = csv_file(
        tmp_path / "experts.csv", [EXPERT_HEAD, expert(), expert("bo@example.org", max_travel_km="far")]
    )
    assert problems_of(path) == ["experts:3:max_travel_km: max_travel_km 'far' is not a whole number"]


# --- The template ------------------------------------------------------------------------------------


def test_the_template_has_headers_an_example_lists_and_instructions(tmp_path: Path) -> None:
    path = tmp_path / "template.xlsx"
    write_template(ROSTER, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["instructions", "experts", "credentials", "availability", "qualifications"]
    experts = book["experts"]
    assert [c.value for c in experts[1]] == EXPERT_HEAD
    assert all(c.font.bold for c in experts[1])
    assert experts["A2"].value == "ana.garcia@example.org"
    lists = {
        (str(v.sqref).split(":")[0], v.formula1)
        for v in experts.data_validations.dataValidation
        if v.type == "list"
    }
    assert ("K2", '"yes,no"') in lists
    qualifications = book["qualifications"]
    assert any(
        v.formula1 == '"license,certification,skill"' for v in qualifications.data_validations.dataValidation
    )
    assert book["credentials"]["F2"].number_format == "yyyy-mm-dd"
    text = " ".join(str(c.value) for row in book["instructions"].iter_rows() for c in row if c.value)
    assert "hourly_rate" in text and "blank means" in text and "does not expire" in text


def test_the_template_filled_with_its_example_imports_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "template.xlsx"
    write_template(ROSTER, path)
    result = import_roster(path)
    assert {sheet: c.created for sheet, c in result.counts.items()} == {
        "qualifications": 1,
        "agencies": 1,
        "experts": 1,
        "credentials": 1,
        "availability": 1,
    }
    assert not import_roster(path).changed


# --- The command -------------------------------------------------------------------------------------


def test_the_command_imports_and_prints_the_counts(tmp_path: Path, catalog: None) -> None:
    out = StringIO()
    call_command("import_roster", str(roster(tmp_path)), stdout=out)
    assert "roster.xlsx: imported." in out.getvalue()
    assert "experts         1 created, 0 updated, 0 unchanged" in out.getvalue()


def test_the_command_dry_run_says_so_and_writes_nothing(tmp_path: Path, catalog: None) -> None:
    out = StringIO()
    call_command("import_roster", str(roster(tmp_path)), "--dry-run", stdout=out)
    assert "dry run — nothing was written" in out.getvalue()
    assert not Expert.objects.exists()


def test_the_command_exits_1_listing_each_problem(tmp_path: Path, catalog: None) -> None:
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_roster", str(roster(tmp_path, experts=[expert(latitude=99)])), stderr=err)
    assert caught.value.returncode == 1
    assert "experts:2:latitude: latitude 99 is outside -90…90" in err.getvalue().splitlines()
    assert str(caught.value) == "roster.xlsx: 1 problem; nothing was imported."


def test_the_command_says_how_many_more_problems_there_are(tmp_path: Path, catalog: None) -> None:
    err = StringIO()
    experts = [expert(f"p{i}@example.org", latitude=99) for i in range(250)]
    with pytest.raises(CommandError):
        call_command(
            "import_roster",
            str(roster(tmp_path, experts=experts, credentials=None, availability=None)),
            stderr=err,
        )
    assert err.getvalue().splitlines()[-1] == "… and 50 more problems."


def test_the_command_exits_2_on_a_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "roster.xlsx"
    path.write_text("hello")
    with pytest.raises(CommandError) as caught:
        call_command("import_roster", str(path))
    assert (caught.value.returncode, str(caught.value)) == (
        2,
        "roster.xlsx is not an xlsx workbook or CSV file.",
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_roster")
    assert caught.value.returncode == 2


def test_the_command_writes_the_template(tmp_path: Path) -> None:
    out = StringIO()
    call_command("import_roster", "--template", str(tmp_path / "t.xlsx"), stdout=out)
    assert (tmp_path / "t.xlsx").exists()
    assert "Wrote the roster template" in out.getvalue()


# --- Queries -----------------------------------------------------------------------------------------


def test_the_number_of_queries_does_not_grow_with_the_file(tmp_path: Path, catalog: None) -> None:
    factories.AgencyFactory(name="County Health", code="county-health")

    def run(prefix: str, n: int) -> int:
        emails = [f"{prefix}{i}@example.org" for i in range(n)]
        path = roster(
            tmp_path,
            experts=[expert(e) for e in emails],
            credentials=[credential(e) for e in emails],
            availability=[window(e) for e in emails],
            name=f"{prefix}.xlsx",
        )
        with CaptureQueriesContext(connection) as queries:
            import_roster(path)
        return len(queries)

    few, many = run("few", 10), run("many", 200)
    # The catalog, the agencies, the listed experts by email (credentials and windows of
    # existing experts: none here); in the transaction (a savepoint under the test's) the
    # experts, their new ids, their credentials and windows — one executemany each on SQLite
    # (with the page cache raised and restored), one COPY each on PostgreSQL, then ANALYZE.
    assert few == many == {"sqlite": 12, "postgresql": 10}[connection.vendor]
    assert Expert.objects.count() == 210 and Availability.objects.count() == 210
