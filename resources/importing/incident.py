"""The incident import: one incident, its facilities and its role requests (ICS-213RR).

Keys: the incident is its number; a facility is its code within the incident; a role request is
(facility, qualification, start, end) within the incident — a row that matches an existing request
updates its quantity, priority and radius, any other row adds a request. Nothing is ever removed:
facilities and requests not in the file are left as they are (they may hold deployments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from deploy_tracker.errors import NotAllowed
from incidents import access
from incidents.models import Deployment, Facility, Incident, IncidentMembership, RoleRequest
from incidents.models.incident import validate_timezone
from resources.importing.catalog import Catalog
from resources.importing.cells import day, show
from resources.importing.common import (
    BATCH,
    Clock,
    all_ok,
    differs,
    duplicates,
    from_dates,
    report,
    unknown_code,
)
from resources.importing.problems import Counts, ImportConflict, ImportResult, InvalidRows, Problems
from resources.importing.reading import Source, Table, open_book, read_table, sheets
from resources.importing.specs import FACILITIES, INCIDENT, INCIDENT_BOOK, REQUESTS

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# Incident policy columns compared and written as they are.
POLICY = ("name", "kind", "timezone", "cost_code", "max_deployment_days", "rest_days", "default_radius_km")
FACILITY_FIELDS = ("name", "kind", "address", "county", "state", "latitude", "longitude")
REQUEST_FIELDS = ("quantity", "priority", "max_travel_km")


def can_import_incident(user: User | AnonymousUser, incident: Incident | None) -> bool:
    """Administrators import any incident workbook, commanders their own incident's; only
    administrators may create an incident."""
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return incident is not None and access.can_command(user, incident)


def can_open_incident_import(user: User | AnonymousUser) -> bool:
    """Who may see the incident import page at all: administrators and commanders of some incident."""
    if not (user.is_authenticated and user.is_active):
        return False
    return bool(
        user.is_staff
        or user.is_superuser
        or IncidentMembership.objects.filter(user_id=user.pk, role=IncidentMembership.Role.COMMANDER).exists()
    )


def import_incident(
    source: Source, *, name: str | None = None, dry_run: bool = False, by: User | None = None
) -> ImportResult:
    """Check every cell of an incident workbook, then create or update the incident, its facilities
    and its requests in one transaction (a dry run only counts). `by` None is the system."""
    clock = Clock()
    book = open_book(source, name=name)
    warnings: list[str] = []
    raw = {spec: book.rows(actual) for spec, actual in sheets(book, INCIDENT_BOOK, warnings).items()}
    clock.lap("read")
    problems = Problems(INCIDENT_BOOK.sheet_names)
    tables: dict[str, Table] = {}
    for spec, rows in raw.items():
        table = read_table(rows, INCIDENT_BOOK.sheet(spec), problems, warnings)
        if table is not None:
            tables[spec] = table
    incident = _the_incident(tables.get(INCIDENT.name), problems)
    existing = Incident.objects.filter(number=incident["number"]).first() if incident else None
    # Without a usable number the file is refused for its problems below, whoever sends it.
    if incident is not None and by is not None and not can_import_incident(by, existing):
        raise NotAllowed(
            f"You may not import incident {incident['number']}: only administrators and its commanders may."
        )
    catalog = Catalog.load()
    facilities = _existing_facilities(existing)
    _check(tables, incident, existing, facilities, catalog, problems)
    clock.lap("validate")
    if problems or incident is None:
        raise InvalidRows(book.name, problems, warnings)
    result = ImportResult(book.name, dry_run, warnings=warnings)
    if dry_run:
        plan = _plan(tables, incident, existing, facilities, catalog, problems)
    else:
        try:
            with transaction.atomic():
                plan = _plan(tables, incident, existing, facilities, catalog, problems)
                if not problems:
                    _write(plan, by=by)
        except DatabaseError as exc:  # a unique key taken meanwhile, a lock held too long: no traceback
            raise ImportConflict(
                f"{book.name}: the database refused the incident ({exc}); someone may have changed it "
                "meanwhile. Nothing was written; run the import again."
            ) from exc
    if problems:  # found while comparing with the database (a quantity under the people held)
        raise InvalidRows(book.name, problems, warnings)
    clock.lap("write")
    result.counts = plan.counts
    result.seconds = clock.seconds
    return result


def _the_incident(table: Table | None, problems: Problems) -> dict[str, Any] | None:
    """The incident sheet's one row as a dict, or None (with a problem) when it is not usable."""
    if table is None:
        return None
    if not len(table):
        problems.add(INCIDENT.name, 2, "", "no incident below the header row")
        return None
    for row in table.rows[1:]:
        problems.add(
            INCIDENT.name,
            int(row),
            "",
            f"the incident sheet holds one incident (row {table.rows[0]}); remove this row",
        )
    if not table.ok["number"].iloc[0]:
        return None
    return {column: table.data[column].iloc[0] for column in table.data.columns} | {"row": int(table.rows[0])}


def _existing_facilities(incident: Incident | None) -> pd.DataFrame:
    columns = ["id", "code", *FACILITY_FIELDS]
    rows = list(Facility.objects.filter(incident=incident).values_list(*columns)) if incident else []
    return pd.DataFrame.from_records(rows, columns=columns)


def _check(
    tables: dict[str, Table],
    incident: dict[str, Any] | None,
    existing: Incident | None,
    facilities: pd.DataFrame,
    catalog: Catalog,
    problems: Problems,
) -> None:
    sheet = tables.get(INCIDENT.name)
    if incident is not None and sheet is not None:
        row = incident["row"]
        if sheet.ok["timezone"].iloc[0]:
            try:
                validate_timezone(incident["timezone"])
            except ValidationError:
                problems.add(
                    INCIDENT.name,
                    row,
                    "timezone",
                    f"timezone {show(incident['timezone'])} is not an IANA time zone "
                    "(e.g. America/Los_Angeles)",
                )
        longest = (
            existing.max_extended_days if existing else Incident._meta.get_field("max_extended_days").default
        )
        days = incident["max_deployment_days"]
        if sheet.ok["max_deployment_days"].iloc[0] and days > longest:
            problems.add(
                INCIDENT.name,
                row,
                "max_deployment_days",
                f"max_deployment_days {days:.0f} is more than the longest assignment even with an extension "
                f"({longest} days)",
            )
        start = incident["start"]
        ends = existing.end if existing is not None else None
        if ends and sheet.ok["start"].iloc[0] and not pd.isna(start) and start.date() > ends:
            problems.add(
                INCIDENT.name, row, "start", f"start {day(start)} is after the incident's end {ends}"
            )

    codes: set[str] = set(facilities["code"])
    facility_sheet = tables.get(FACILITIES.name)
    if facility_sheet is not None:
        f = facility_sheet.data
        again = duplicates(
            facility_sheet,
            pd.DataFrame({"code": f["code"]}),
            facility_sheet.ok["code"],
            "code",
            lambda i: f"facility code {f['code'][i]}",
            problems,
        )
        codes |= set(f["code"][facility_sheet.ok["code"] & ~again])

    requests = tables.get(REQUESTS.name)
    if requests is None:
        return
    r = requests.data
    number = incident["number"] if incident else "the incident"
    report(
        requests,
        requests.ok["facility"] & ~r["facility"].isin(list(codes)),
        "facility",
        lambda i: (
            f"facility {show(r['facility'][i])} is neither on the facilities sheet nor in incident {number}"
        ),
        problems,
    )
    code = r["qualification"].str.upper()
    report(
        requests,
        requests.ok["qualification"] & ~code.isin(list(catalog.ids)),
        "qualification",
        lambda i: unknown_code(r["qualification"][i], catalog.codes),
        problems,
    )
    backwards = all_ok(requests, "start", "end") & (r["end"] < r["start"])
    report(
        requests,
        backwards,
        "end",
        lambda i: f"end {day(r['end'][i])} is before start {day(r['start'][i])}",
        problems,
    )
    duplicates(
        requests,
        pd.DataFrame({"facility": r["facility"], "code": code, "start": r["start"], "end": r["end"]}),
        all_ok(requests, "facility", "qualification", "start", "end") & ~backwards,
        "qualification",
        lambda i: (
            f"a request for {r['qualification'][i]} at {r['facility'][i]} from {day(r['start'][i])} "
            f"to {day(r['end'][i])}"
        ),
        problems,
    )


# --- The plan ---------------------------------------------------------------------------------------


@dataclass
class Plan:
    """What the import changes: the incident's values, and facility and request rows."""

    number: str
    incident: dict[str, Any]
    existing: Incident | None
    incident_changed: bool = False
    counts: dict[str, Counts] = field(default_factory=dict)
    facilities: pd.DataFrame | None = None  # file rows with "id" (NaN when new) and "changed"
    facility_ids: dict[str, int] = field(default_factory=dict)
    requests: pd.DataFrame | None = None
    catalog_ids: dict[str, int] = field(default_factory=dict)


def _incident_values(incident: dict[str, Any], existing: Incident | None) -> dict[str, Any]:
    values = {name: incident[name] for name in POLICY}
    for name in ("max_deployment_days", "rest_days", "default_radius_km"):
        values[name] = int(values[name])
    values["mileage_rate"] = Decimal(int(incident["mileage_rate"])).scaleb(-3)
    start = incident["start"]
    if pd.isna(start):
        values["start"] = existing.start if existing else timezone.localdate()
    else:
        values["start"] = start.date()
    return values


def _plan(
    tables: dict[str, Table],
    incident: dict[str, Any],
    existing: Incident | None,
    facilities: pd.DataFrame,
    catalog: Catalog,
    problems: Problems,
) -> Plan:
    values = _incident_values(incident, existing)
    plan = Plan(incident["number"], values, existing, catalog_ids=catalog.ids)
    if existing is None:
        plan.counts[INCIDENT.name] = Counts(created=1)
    else:
        plan.incident_changed = any(getattr(existing, name) != value for name, value in values.items())
        plan.counts[INCIDENT.name] = Counts(updated=1) if plan.incident_changed else Counts(unchanged=1)

    plan.facility_ids = dict(zip(facilities["code"], facilities["id"], strict=True))
    facility_sheet = tables[FACILITIES.name]
    merged = facility_sheet.data.merge(facilities, on="code", how="left", suffixes=("", "_db"))
    new = merged["id"].isna()
    changed = pd.Series(False, index=merged.index)
    for name in FACILITY_FIELDS:
        changed |= differs(merged[name], merged[f"{name}_db"])
    merged["changed"] = ~new & changed
    plan.facilities = merged
    plan.counts[FACILITIES.name] = _counts(new, merged["changed"])

    requests = tables[REQUESTS.name]
    rows = requests.data.assign(code=requests.data["qualification"].str.upper(), row=requests.rows)
    old = pd.DataFrame.from_records(
        list(
            RoleRequest.objects.filter(facility__incident=existing)
            .annotate(held=Count("deployments", filter=Q(deployments__status__in=Deployment.HOLDING)))
            .order_by("pk")
            .values_list(
                "id", "facility__code", "qualification__code", "start", "end", *REQUEST_FIELDS, "held"
            )
        )
        if existing
        else [],
        columns=["id", "facility", "code", "start", "end", *REQUEST_FIELDS, "held"],
    )
    old["code"] = old["code"].astype(str).str.upper()
    old["start"], old["end"] = from_dates(old["start"]), from_dates(old["end"])
    old["max_travel_km"] = old["max_travel_km"].astype("float64")
    old["quantity"] = old["quantity"].astype("float64")
    # Two requests entered by hand with the same facility, qualification and dates: the first is the one.
    old = old.drop_duplicates(["facility", "code", "start", "end"])
    merged = rows.merge(old, on=["facility", "code", "start", "end"], how="left", suffixes=("", "_db"))
    new = merged["id"].isna()
    changed = pd.Series(False, index=merged.index)
    for name in REQUEST_FIELDS:
        changed |= differs(merged[name], merged[f"{name}_db"])
    merged["changed"] = ~new & changed
    held = merged["held"].fillna(0).astype("int64")
    short = ~new & (merged["quantity"].astype("float64") < held)
    for i in short[short].index:
        people = int(held[i])
        problems.add(
            REQUESTS.name,
            int(merged["row"][i]),
            "quantity",
            f"quantity {merged['quantity'][i]:.0f} is less than the {people} "
            f"{'person' if people == 1 else 'people'} already offered, accepted or on site",
        )
    plan.requests = merged
    plan.counts[REQUESTS.name] = _counts(new, merged["changed"])
    return plan


def _counts(new: pd.Series, changed: pd.Series) -> Counts:
    created, updated = int(new.sum()), int(changed.sum())
    return Counts(created, updated, len(new) - created - updated)


# --- Writing ------------------------------------------------------------------------------------


def _write(plan: Plan, *, by: User | None) -> None:
    if plan.existing is None:
        incident = Incident.objects.create(number=plan.number, **plan.incident)
    else:
        incident = plan.existing
        if plan.incident_changed:
            for name, value in plan.incident.items():
                setattr(incident, name, value)
            incident.save(update_fields=list(plan.incident))
    assert plan.facilities is not None and plan.requests is not None
    facilities = plan.facilities
    ids = dict(plan.facility_ids)
    new = facilities[facilities["id"].isna()]
    if len(new):
        created = Facility.objects.bulk_create(
            (Facility(incident=incident, code=row.pop("code"), **row) for row in _facility_rows(new)),
            batch_size=BATCH,
        )
        ids |= {f.code: f.pk for f in created}
    changed = facilities[facilities["changed"]]
    if len(changed):
        Facility.objects.bulk_update(
            [
                Facility(pk=int(pk), **{k: v for k, v in row.items() if k != "code"})
                for pk, row in zip(changed["id"], _facility_rows(changed), strict=True)
            ],
            list(FACILITY_FIELDS),
            batch_size=BATCH,
        )
    requests = plan.requests
    new = requests[requests["id"].isna()]
    if len(new):
        RoleRequest.objects.bulk_create(
            (
                RoleRequest(
                    facility_id=ids[row["facility"]],
                    qualification_id=plan.catalog_ids[row["code"]],
                    start=row["start"].date(),
                    end=row["end"].date(),
                    created_by=by,
                    **_request_values(row),
                )
                for row in new.to_dict("records")
            ),
            batch_size=BATCH,
        )
    changed = requests[requests["changed"]]
    if len(changed):
        RoleRequest.objects.bulk_update(
            [RoleRequest(pk=int(row["id"]), **_request_values(row)) for row in changed.to_dict("records")],
            list(REQUEST_FIELDS),
            batch_size=BATCH,
        )


def _facility_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            name: (float(row[name]) if name in ("latitude", "longitude") else row[name])
            for name in ("code", *FACILITY_FIELDS)
        }
        for row in rows.to_dict("records")
    ]


def _request_values(row: dict[str, Any]) -> dict[str, Any]:
    radius = row["max_travel_km"]
    return {
        "quantity": int(row["quantity"]),
        "priority": row["priority"],
        "max_travel_km": None if pd.isna(radius) else int(radius),
    }
