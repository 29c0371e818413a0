"""The two workbooks, column by column: one description drives reading, checking and the template.

CONTRACTS.md ("Roster workbook", "Incident workbook") is the public form of these lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import partial

from django.utils import timezone

from incidents.models import Facility, Incident, RoleRequest
from resources.models import Qualification

# Half the Earth's circumference: no trip is longer.
MAX_KM = 20_000


class Kind(StrEnum):
    """How a column's cells are read and checked."""

    TEXT = "text"
    EMAIL = "email"
    NUMBER = "number"
    INTEGER = "integer"
    MONEY = "money"
    DATE = "date"
    YESNO = "yes/no"
    CHOICE = "choice"
    STATE = "state"


@dataclass(frozen=True)
class Column:
    """One column of a sheet: its header, how to read it, what blank means, and an example."""

    name: str
    kind: Kind
    help: str
    example: object
    required: bool = False
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    decimals: int = 2
    choices: tuple[tuple[str, str], ...] = ()
    default: object = None
    blank_means: str = ""

    @property
    def example_value(self) -> object:
        """The template's example; dates are computed on the day the template is written."""
        return self.example() if callable(self.example) else self.example

    @property
    def choice_values(self) -> list[str]:
        return [value for value, _ in self.choices]

    def describe(self) -> str:
        """The format, as the instructions sheet states it."""
        if self.kind in (Kind.TEXT, Kind.EMAIL):
            what = "email address" if self.kind == Kind.EMAIL else "text"
            return f"{what}, at most {self.max_length} characters" if self.max_length else what
        if self.kind in (Kind.NUMBER, Kind.INTEGER):
            what = "number" if self.kind == Kind.NUMBER else "whole number"
            if self.minimum is not None and self.maximum is not None:
                return f"{what} from {self.minimum:g} to {self.maximum:g}"
            return f"{what} of at least {self.minimum:g}" if self.minimum is not None else what
        if self.kind == Kind.MONEY:
            return f"amount of at least 0, at most {self.decimals} decimals"
        if self.kind == Kind.DATE:
            return "date (a date cell, or text YYYY-MM-DD)"
        if self.kind == Kind.YESNO:
            return "yes or no"
        if self.kind == Kind.CHOICE:
            return "one of: " + ", ".join(self.choice_values)
        return "two-letter state code, e.g. WA"


@dataclass(frozen=True)
class Sheet:
    """One sheet of a workbook and its columns, in the order the template writes them."""

    name: str
    help: str
    columns: tuple[Column, ...]
    required: bool = True
    one_row: bool = False

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def header_text(self) -> str:
        """The expected columns, required ones starred, for messages."""
        return ", ".join(f"{c.name}*" if c.required else c.name for c in self.columns)


@dataclass(frozen=True)
class Workbook:
    """A kind of workbook: its sheets, required first."""

    name: str
    help: str
    sheets: tuple[Sheet, ...]

    def sheet(self, name: str) -> Sheet:
        return next(s for s in self.sheets if s.name == name)

    @property
    def sheet_names(self) -> list[str]:
        return [s.name for s in self.sheets]


def _today_plus(days: int) -> date:
    return timezone.localdate() + timedelta(days=days)


YES_NO = (("yes", "yes"), ("no", "no"))


def email(help: str, example: str = "ana.garcia@example.org") -> Column:
    return Column("email", Kind.EMAIL, help, example, required=True, max_length=254)


EXPERTS = Sheet(
    "experts",
    "One row per person. The email is the key: a row whose email is already on the roster updates "
    "that person (upper and lower case do not matter); a new email adds one. People who are not "
    "in the file are left as they are (set active to no to take someone off the roster).",
    (
        email("The person's email address; identifies them on the roster."),
        Column("first_name", Kind.TEXT, "Given name.", "Ana", required=True, max_length=100),
        Column("last_name", Kind.TEXT, "Family name.", "Garcia", required=True, max_length=100),
        Column("phone", Kind.TEXT, "Phone number, as it should be dialled.", "360-555-0100", max_length=40),
        Column(
            "agency",
            Kind.TEXT,
            "The employing or sponsoring agency, by name (or its code). A name not yet known "
            "creates the agency.",
            "Washington State Department of Health",
            required=True,
            max_length=200,
        ),
        Column("home_place", Kind.TEXT, "Home town, for people to read.", "Tacoma, WA", max_length=200),
        Column(
            "latitude",
            Kind.NUMBER,
            "Home latitude in decimal degrees.",
            47.2529,
            required=True,
            minimum=-90.0,
            maximum=90.0,
        ),
        Column(
            "longitude",
            Kind.NUMBER,
            "Home longitude in decimal degrees.",
            -122.4443,
            required=True,
            minimum=-180.0,
            maximum=180.0,
        ),
        Column(
            "max_travel_km",
            Kind.INTEGER,
            "The farthest (straight-line km from home) this person will be sent.",
            300,
            required=True,
            minimum=1,
            maximum=MAX_KM,
        ),
        Column(
            "hourly_rate",
            Kind.MONEY,
            "Regular hourly pay rate.",
            58.0,
            required=True,
            minimum=0,
            maximum=99_999_999.99,
        ),
        Column(
            "active",
            Kind.YESNO,
            "Whether the person can be deployed now.",
            "yes",
            choices=YES_NO,
            default=True,
            blank_means="yes",
        ),
    ),
)

CREDENTIALS = Sheet(
    "credentials",
    "Licenses, certifications and skills; one row per credential. When this sheet is in the file, "
    "it is the complete list for every person on the experts sheet: their credentials that are "
    "not in it are removed. Leave the sheet out to keep credentials as they are.",
    (
        email("The person, by the email on the experts sheet."),
        Column(
            "qualification",
            Kind.TEXT,
            "Qualification code from the catalog (or from the qualifications sheet), e.g. RN.",
            "RN",
            required=True,
            max_length=20,
        ),
        Column("number", Kind.TEXT, "License or certificate number.", "RN60012345", max_length=60),
        Column(
            "jurisdiction",
            Kind.STATE,
            "Issuing state. Required for state licenses (jurisdictional qualifications).",
            "WA",
            blank_means="not state-issued",
        ),
        Column(
            "verified",
            Kind.YESNO,
            "Whether someone has checked the credential with the issuer.",
            "yes",
            required=True,
            choices=YES_NO,
        ),
        Column(
            "expires_on",
            Kind.DATE,
            "Last day the credential is valid.",
            partial(_today_plus, 365),
            blank_means="does not expire",
        ),
    ),
    required=False,
)

AVAILABILITY = Sheet(
    "availability",
    "Windows in which a person can deploy (both dates included); one row per window. When this "
    "sheet is in the file, it is the complete list for every person on the experts sheet: their "
    "windows that are not in it are removed. Leave the sheet out to keep availability as it is.",
    (
        email("The person, by the email on the experts sheet."),
        Column(
            "start", Kind.DATE, "First day the person can deploy.", partial(_today_plus, 7), required=True
        ),
        Column("end", Kind.DATE, "Last day the person can deploy.", partial(_today_plus, 97), required=True),
    ),
    required=False,
)

QUALIFICATIONS = Sheet(
    "qualifications",
    "Optional: adds to or updates the qualification catalog, by code. Codes not in the file are "
    "left as they are.",
    (
        Column("code", Kind.TEXT, "Short code, e.g. RN.", "RN", required=True, max_length=20),
        Column("name", Kind.TEXT, "Full name.", "Registered Nurse", required=True, max_length=200),
        Column(
            "kind",
            Kind.CHOICE,
            "License, certification or skill.",
            "license",
            choices=tuple(Qualification.Kind.choices),
            default=Qualification.Kind.SKILL.value,
            blank_means="skill",
        ),
        Column(
            "jurisdictional",
            Kind.YESNO,
            "yes: the credential must be issued by the state the facility is in (a state license).",
            "yes",
            choices=YES_NO,
            default=False,
            blank_means="no",
        ),
    ),
    required=False,
)

ROSTER = Workbook(
    "roster",
    "The roster of deployable experts: import it with `manage.py import_roster FILE` or on the "
    "roster import page. The experts sheet may also be imported alone, as a CSV file.",
    (EXPERTS, CREDENTIALS, AVAILABILITY, QUALIFICATIONS),
)

INCIDENT = Sheet(
    "incident",
    "Exactly one row: the incident. Its number is the key: an existing number updates that incident.",
    (
        Column("number", Kind.TEXT, "Incident number.", "WA-2026-01", required=True, max_length=40),
        Column("name", Kind.TEXT, "Incident name.", "Respiratory surge", required=True, max_length=200),
        Column(
            "kind",
            Kind.CHOICE,
            "What kind of incident.",
            "pandemic",
            choices=tuple(Incident.Kind.choices),
            default=Incident.Kind.OTHER.value,
            blank_means="other",
        ),
        Column(
            "timezone",
            Kind.TEXT,
            "IANA time zone the incident's people read times in.",
            "America/Los_Angeles",
            max_length=64,
            default="America/Los_Angeles",
            blank_means="America/Los_Angeles",
        ),
        Column("cost_code", Kind.TEXT, "Accounting code costs are charged to.", "COVID-WA-26", max_length=60),
        Column(
            "start",
            Kind.DATE,
            "First day of the incident.",
            partial(_today_plus, 0),
            blank_means="today for a new incident; unchanged for an existing one",
        ),
        Column(
            "max_deployment_days",
            Kind.INTEGER,
            "Longest assignment without an approved extension (NWCG: 14).",
            14,
            minimum=1,
            maximum=365,
            default=14,
            blank_means="14",
        ),
        Column(
            "rest_days",
            Kind.INTEGER,
            "Days off required before a person's next assignment (NWCG: 2).",
            2,
            minimum=0,
            maximum=365,
            default=2,
            blank_means="2",
        ),
        Column(
            "default_radius_km",
            Kind.INTEGER,
            "Travel radius for requests that do not set their own.",
            300,
            minimum=1,
            maximum=MAX_KM,
            default=300,
            blank_means="300",
        ),
        Column(
            "mileage_rate",
            Kind.MONEY,
            "Reimbursed per km of home ↔ facility travel.",
            0.435,
            decimals=3,
            minimum=0,
            maximum=999.999,
            default=0.435,
            blank_means="0.435",
        ),
    ),
    one_row=True,
)

FACILITIES = Sheet(
    "facilities",
    "One row per facility of the incident. The code is the key within the incident: an existing "
    "code updates that facility. Facilities not in the file are left as they are.",
    (
        Column(
            "code",
            Kind.TEXT,
            "Facility code, unique in the incident.",
            "HOSP-SEA-01",
            required=True,
            max_length=40,
        ),
        Column(
            "name", Kind.TEXT, "Facility name.", "Harborview Medical Center", required=True, max_length=200
        ),
        Column(
            "kind",
            Kind.CHOICE,
            "What kind of facility.",
            "hospital",
            choices=tuple(Facility.Kind.choices),
            default=Facility.Kind.OTHER.value,
            blank_means="other",
        ),
        Column("address", Kind.TEXT, "Street address.", "325 9th Ave, Seattle, WA 98104", max_length=300),
        Column("county", Kind.TEXT, "County.", "King", max_length=100),
        Column(
            "state",
            Kind.STATE,
            "State the facility is in (licenses are matched against it).",
            "WA",
            required=True,
        ),
        Column(
            "latitude",
            Kind.NUMBER,
            "Latitude in decimal degrees.",
            47.6043,
            required=True,
            minimum=-90.0,
            maximum=90.0,
        ),
        Column(
            "longitude",
            Kind.NUMBER,
            "Longitude in decimal degrees.",
            -122.324,
            required=True,
            minimum=-180.0,
            maximum=180.0,
        ),
    ),
)

REQUESTS = Sheet(
    "requests",
    "Role requests (ICS-213RR); one row per request. A request is known by its facility, "
    "qualification, start and end: a row that matches one updates its quantity, priority and "
    "travel radius; other rows add requests. Requests not in the file are left as they are.",
    (
        Column(
            "facility",
            Kind.TEXT,
            "Facility code (facilities sheet, or already in the incident).",
            "HOSP-SEA-01",
            required=True,
            max_length=40,
        ),
        Column(
            "qualification",
            Kind.TEXT,
            "Qualification code from the catalog, e.g. RN.",
            "RN",
            required=True,
            max_length=20,
        ),
        Column("quantity", Kind.INTEGER, "How many people.", 2, required=True, minimum=1, maximum=10_000),
        Column(
            "start", Kind.DATE, "First day the people are needed.", partial(_today_plus, 7), required=True
        ),
        Column("end", Kind.DATE, "Last day the people are needed.", partial(_today_plus, 20), required=True),
        Column(
            "priority",
            Kind.CHOICE,
            "Matching fills critical before high before normal.",
            "critical",
            required=True,
            choices=tuple(RoleRequest.Priority.choices),
        ),
        Column(
            "max_travel_km",
            Kind.INTEGER,
            "Travel radius for this request.",
            "",
            minimum=1,
            maximum=MAX_KM,
            blank_means="the incident's default radius",
        ),
    ),
)

INCIDENT_BOOK = Workbook(
    "incident",
    "An incident with its facilities and role requests: import it with "
    "`manage.py import_incident FILE` or on the incident import page.",
    (INCIDENT, FACILITIES, REQUESTS),
)
