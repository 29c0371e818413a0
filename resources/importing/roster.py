"""The roster import: experts with their credentials and availability, and the qualification catalog.

Keys: an expert is their email (case-insensitive, as the database's unique index); a credential is
(email, qualification, jurisdiction), as the database's unique constraint; an availability window
is (email, start, end); a qualification is its code; an agency is its name (or code).

What the file means: every expert on the experts sheet is created or updated; experts not in the
file are left alone (set active to no to take someone off). When the credentials sheet is in the
file it is the complete list for the experts it lists: their other credentials are removed; the
same for availability. A left-out sheet leaves those rows alone (a CSV of experts only changes
experts only). Agencies named but unknown are created. Qualifications are only ever added or
updated by the qualifications sheet, never removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pandas as pd
from django.db import DatabaseError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify

from deploy_tracker.errors import NotAllowed
from resources.importing.catalog import Catalog
from resources.importing.cells import day
from resources.importing.common import (
    BATCH,
    Clock,
    all_ok,
    big_cache,
    chunks,
    differs,
    duplicates,
    from_dates,
    insert,
    report,
    rows_of,
    to_dates,
    units,
    unknown_code,
    update,
)
from resources.importing.problems import Counts, ImportConflict, ImportResult, InvalidRows, Problems
from resources.importing.reading import Source, Table, open_book, read_table, sheets
from resources.importing.specs import AVAILABILITY, CREDENTIALS, EXPERTS, QUALIFICATIONS, ROSTER
from resources.models import Agency, Availability, Credential, Expert, Qualification

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# The expert fields a roster row sets, as the experts sheet's columns hold them.
EXPERT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "agency_id",
    "home_place",
    "latitude",
    "longitude",
    "max_travel_km",
    "hourly_rate",
    "active",
)


def can_import_roster(user: User | AnonymousUser) -> bool:
    """Administrators (staff) and superusers keep the roster."""
    return bool(user.is_authenticated and user.is_active and (user.is_staff or user.is_superuser))


def import_roster(
    source: Source, *, name: str | None = None, dry_run: bool = False, by: User | None = None
) -> ImportResult:
    """Check every cell of a roster file, then upsert it all in one transaction (a dry run only counts).

    `by` is the person importing (None: the system, as on the command line). Raises UnusableFile
    for a file that cannot be read at all, InvalidRows listing every problem, NotAllowed.
    """
    if by is not None and not can_import_roster(by):
        raise NotAllowed("Only administrators may import the roster.")
    clock = Clock()
    book = open_book(source, name=name, csv_sheet=EXPERTS.name)
    warnings: list[str] = []
    raw = {spec: book.rows(actual) for spec, actual in sheets(book, ROSTER, warnings).items()}
    clock.lap("read")
    problems = Problems(ROSTER.sheet_names)
    tables: dict[str, Table] = {}
    for spec, rows in raw.items():
        table = read_table(rows, ROSTER.sheet(spec), problems, warnings)
        if table is not None:
            tables[spec] = table
    del raw
    catalog = Catalog.load()
    _check(tables, catalog, problems, warnings)
    clock.lap("validate")
    if problems:
        raise InvalidRows(book.name, problems, warnings)
    result = ImportResult(book.name, dry_run, warnings=warnings)
    if dry_run:
        plan = _plan(tables, catalog)
        clock.lap("plan")
    else:
        try:
            with transaction.atomic():
                plan = _plan(tables, catalog)
                clock.lap("plan")
                _write(plan, by=by)
        except DatabaseError as exc:  # a unique key taken meanwhile, a lock held too long: no traceback
            raise ImportConflict(
                f"{book.name}: the database refused the roster ({exc}); someone may have changed "
                "the same people meanwhile. Nothing was written; run the import again."
            ) from exc
        clock.lap("write")
        _refresh_statistics()
        clock.lap("analyze")
    result.counts = plan.counts
    result.warnings += plan.notes
    result.seconds = clock.seconds
    return result


def _refresh_statistics() -> None:
    """After a bulk load, PostgreSQL's planner still believes the tables' old sizes until
    autovacuum gets round to them, and picks plans that scan the whole roster (the incident
    page's credential watch took 49 ms instead of 3 under bench/load.py). Re-count now."""
    if connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model in (Expert, Credential, Availability)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in tables))


# --- Checks across rows and against the catalog ----------------------------------------------------


def _check(tables: dict[str, Table], catalog: Catalog, problems: Problems, warnings: list[str]) -> None:
    experts = tables.get(EXPERTS.name)
    if experts is None:
        return  # an empty experts sheet is already reported
    if not len(experts):
        problems.add(EXPERTS.name, 2, "", "no experts below the header row")
    data = experts.data
    key = data["email"].str.lower()
    duplicates(
        experts,
        pd.DataFrame({"key": key}),
        experts.ok["email"],
        "email",
        lambda i: f"email {data['email'][i]}",
        problems,
    )
    listed = set(key[experts.ok["email"]])

    jurisdictional = catalog.jurisdictional
    codes = catalog.codes
    qualifications = tables.get(QUALIFICATIONS.name)
    if qualifications is not None:
        q = qualifications.data
        q_key = q["code"].str.upper()
        again = duplicates(
            qualifications,
            pd.DataFrame({"key": q_key}),
            qualifications.ok["code"],
            "code",
            lambda i: f"code {q['code'][i]}",
            problems,
        )
        usable = qualifications.ok["code"] & qualifications.ok["jurisdictional"] & ~again
        jurisdictional |= dict(zip(q_key[usable], q["jurisdictional"][usable].astype(bool), strict=True))
        codes = sorted(set(codes) | set(q["code"][usable]))

    credentials = tables.get(CREDENTIALS.name)
    if credentials is not None:
        c = credentials.data
        c_key, code = c["email"].str.lower(), c["qualification"].str.upper()
        _not_listed(credentials, c_key, listed, problems)
        unknown = credentials.ok["qualification"] & ~code.isin(list(jurisdictional))
        report(
            credentials,
            unknown,
            "qualification",
            lambda i: unknown_code(c["qualification"][i], codes),
            problems,
        )
        needs_state = (
            all_ok(credentials, "qualification", "jurisdiction")
            & code.isin([c for c, state_issued in jurisdictional.items() if state_issued])
            & (c["jurisdiction"] == "")
        )
        report(
            credentials,
            needs_state,
            "jurisdiction",
            lambda i: (
                f"{c['qualification'][i]} is a state license: jurisdiction (the issuing state) is required"
            ),
            problems,
        )
        duplicates(
            credentials,
            pd.DataFrame({"key": c_key, "code": code, "jurisdiction": c["jurisdiction"]}),
            all_ok(credentials, "email", "qualification", "jurisdiction"),
            "qualification",
            lambda i: (
                f"credential {c['qualification'][i]}"
                f"{f' ({s})' if (s := c['jurisdiction'][i]) else ''} of {c['email'][i]}"
            ),
            problems,
        )

    availability = tables.get(AVAILABILITY.name)
    if availability is not None:
        a = availability.data
        a_key = a["email"].str.lower()
        _not_listed(availability, a_key, listed, problems)
        backwards = all_ok(availability, "start", "end") & (a["end"] < a["start"])
        report(
            availability,
            backwards,
            "end",
            lambda i: f"end {day(a['end'][i])} is before start {day(a['start'][i])}",
            problems,
        )
        duplicates(
            availability,
            pd.DataFrame({"key": a_key, "start": a["start"], "end": a["end"]}),
            all_ok(availability, "email", "start", "end") & ~backwards,
            "start",
            lambda i: f"window {day(a['start'][i])} – {day(a['end'][i])} of {a['email'][i]}",
            problems,
        )
        if not len(availability) and len(experts):
            warnings.append(
                "availability: the sheet has no rows, so every listed expert's availability is removed"
            )
    if credentials is not None and not len(credentials) and len(experts):
        warnings.append(
            "credentials: the sheet has no rows, so every listed expert's credentials are removed"
        )


def _not_listed(table: Table, key: pd.Series, listed: set[str], problems: Problems) -> None:
    report(
        table,
        table.ok["email"] & ~key.isin(listed),
        "email",
        lambda i: f"email {table.data['email'][i]} is not on the experts sheet",
        problems,
    )


# --- The plan: what changes, computed by comparing with the database ------------------------------


@dataclass
class Plan:
    """Rows to create, update and remove per model, and the counts the person is shown."""

    counts: dict[str, Counts] = field(default_factory=dict)
    catalog_ids: dict[str, int] = field(default_factory=dict)
    qualifications_new: pd.DataFrame | None = None
    qualifications_changed: pd.DataFrame | None = None
    agencies_new: list[str] = field(default_factory=list)
    agency_ids: dict[str, int] = field(default_factory=dict)
    experts: pd.DataFrame | None = None  # every file row, with id (NaN when new) and "changed"
    credentials: pd.DataFrame | None = None  # outer merge with "_merge" and "changed"
    availability: pd.DataFrame | None = None
    availability_twice: list[int] = field(default_factory=list)  # the same window entered twice
    notes: list[str] = field(default_factory=list)  # warnings found while planning


def _plan(tables: dict[str, Table], catalog: Catalog) -> Plan:
    plan = Plan(catalog_ids=catalog.ids)
    qualifications = tables.get(QUALIFICATIONS.name)
    if qualifications is not None:
        _plan_qualifications(plan, qualifications.data, catalog)
    experts = tables[EXPERTS.name].data.copy()
    experts["key"] = experts["email"].str.lower()
    _plan_agencies(plan, experts)
    existing = _existing_experts(experts["key"].tolist())
    merged = experts.merge(existing, on="key", how="left", suffixes=("", "_db"))
    new = merged["id"].isna()
    changed = pd.Series(False, index=merged.index)
    for name in EXPERT_FIELDS:
        changed |= differs(merged[name], merged[f"{name}_db"])
    merged["changed"] = ~new & changed
    plan.experts = merged
    plan.counts[EXPERTS.name] = _counts(new, merged["changed"])
    owners = dict(zip(existing["id"], existing["key"], strict=True))
    credentials = tables.get(CREDENTIALS.name)
    if credentials is not None:
        plan.credentials = _plan_credentials(plan, credentials.data, owners)
    availability = tables.get(AVAILABILITY.name)
    if availability is not None:
        plan.availability = _plan_availability(plan, availability.data, owners)
    return plan


def _counts(new: pd.Series, changed: pd.Series, removed: int = 0) -> Counts:
    created, updated = int(new.sum()), int(changed.sum())
    return Counts(created, updated, len(new) - created - updated, removed)


def _plan_qualifications(plan: Plan, data: pd.DataFrame, catalog: Catalog) -> None:
    rows = data.assign(key=data["code"].str.upper())
    merged = rows.merge(catalog.frame, on="key", how="left", suffixes=("", "_db"))
    new = merged["id"].isna()
    changed = ~new & (
        differs(merged["name"], merged["name_db"])
        | differs(merged["kind"], merged["kind_db"])
        | differs(merged["jurisdictional"], merged["jurisdictional_db"])
    )
    plan.qualifications_new = merged[new]
    plan.qualifications_changed = merged[changed]
    plan.counts[QUALIFICATIONS.name] = _counts(new, changed)


def _plan_agencies(plan: Plan, experts: pd.DataFrame) -> None:
    """Agencies by name, else by code, whatever the case; unknown names are new agencies."""
    known: dict[str, int] = {}
    agencies = list(Agency.objects.values_list("id", "code", "name"))
    known |= {code.lower(): pk for pk, code, _ in agencies}
    known |= {name.lower(): pk for pk, _, name in agencies}
    experts["agency_key"] = experts["agency"].str.lower()
    experts["agency_id"] = experts["agency_key"].map(known)
    unknown = experts[experts["agency_id"].isna()].drop_duplicates("agency_key")
    plan.agencies_new = unknown["agency"].tolist()
    plan.notes += [
        f"agencies: {name} is new: created with a fringe rate of 0 (set it in the admin)"
        for name in plan.agencies_new
    ]
    plan.agency_ids = known
    referenced = experts["agency_key"].nunique()
    plan.counts["agencies"] = Counts(created=len(unknown), unchanged=referenced - len(unknown))


def _existing_experts(keys: list[str]) -> pd.DataFrame:
    """The listed people already on the roster (one query per 10,000 emails)."""
    rows = rows_of(Expert.objects.annotate(key=Lower("email")), "key", keys, "id", "key", *EXPERT_FIELDS)
    frame = pd.DataFrame.from_records(rows, columns=["id", "key", *EXPERT_FIELDS])
    frame["hourly_rate"] = units(frame["hourly_rate"], 2)
    frame["max_travel_km"] = frame["max_travel_km"].astype("float64")
    frame["latitude"] = frame["latitude"].astype("float64")
    frame["longitude"] = frame["longitude"].astype("float64")
    return frame


def _plan_credentials(plan: Plan, data: pd.DataFrame, owners: dict[int, str]) -> pd.DataFrame:
    rows = data.assign(key=data["email"].str.lower(), code=data["qualification"].str.upper())
    old = rows_of(
        Credential.objects.all(),
        "expert_id",
        list(owners),
        "id",
        "expert_id",
        "qualification__code",
        "jurisdiction",
        "number",
        "verified",
        "expires_on",
        "verified_at",
        "verified_by_id",
    )
    existing = pd.DataFrame.from_records(
        old,
        columns=[
            "id",
            "expert_id",
            "code",
            "jurisdiction",
            "number",
            "verified",
            "expires_on",
            "verified_at",
            "verified_by_id",
        ],
    )
    existing["key"] = existing["expert_id"].map(owners).astype(object)
    existing = existing[existing["key"].notna()].copy()
    existing["code"] = existing["code"].astype(str).str.upper()
    existing["expires_on"] = from_dates(existing["expires_on"])
    merged = rows.merge(
        existing, on=["key", "code", "jurisdiction"], how="outer", suffixes=("", "_db"), indicator=True
    )
    both = merged["_merge"] == "both"
    merged["changed"] = both & (
        differs(merged["number"], merged["number_db"])
        | differs(merged["verified"], merged["verified_db"])
        | differs(merged["expires_on"], merged["expires_on_db"])
    )
    in_file = merged["_merge"] != "right_only"
    plan.counts[CREDENTIALS.name] = _counts(
        (merged["_merge"] == "left_only")[in_file],
        merged["changed"][in_file],
        removed=int((merged["_merge"] == "right_only").sum()),
    )
    return merged


def _plan_availability(plan: Plan, data: pd.DataFrame, owners: dict[int, str]) -> pd.DataFrame:
    rows = data.assign(key=data["email"].str.lower())[["key", "start", "end"]]
    old = rows_of(Availability.objects.all(), "expert_id", list(owners), "id", "expert_id", "start", "end")
    existing = pd.DataFrame.from_records(old, columns=["id", "expert_id", "start", "end"])
    existing["key"] = existing["expert_id"].map(owners).astype(object)
    existing = existing[existing["key"].notna()].copy()
    existing["start"] = from_dates(existing["start"])
    existing["end"] = from_dates(existing["end"])
    # Windows entered twice by hand: one is kept, the rest go.
    twice = existing.duplicated(["key", "start", "end"])
    merged = rows.merge(
        existing[~twice], on=["key", "start", "end"], how="outer", suffixes=("", "_db"), indicator=True
    )
    merged["changed"] = False
    in_file = merged["_merge"] != "right_only"
    gone = merged["_merge"] == "right_only"
    plan.counts[AVAILABILITY.name] = _counts(
        (merged["_merge"] == "left_only")[in_file],
        merged["changed"][in_file],
        removed=int(gone.sum() + twice.sum()),
    )
    plan.availability_twice = existing.loc[twice, "id"].astype(int).tolist()
    return merged


# --- Writing ------------------------------------------------------------------------------------


def _write(plan: Plan, *, by: User | None) -> None:
    """Apply the plan in bulk: a handful of statements per 2,000 rows, never one per row."""
    now = timezone.now()
    code_ids = dict(plan.catalog_ids)
    if plan.qualifications_new is not None and len(plan.qualifications_new):
        q = plan.qualifications_new
        created = Qualification.objects.bulk_create(
            Qualification(code=code, name=name, kind=kind, jurisdictional=bool(j))
            for code, name, kind, j in zip(q["code"], q["name"], q["kind"], q["jurisdictional"], strict=True)
        )
        code_ids |= {obj.code.upper(): obj.pk for obj in created}
    if plan.qualifications_changed is not None and len(plan.qualifications_changed):
        q = plan.qualifications_changed
        Qualification.objects.bulk_update(
            [
                Qualification(pk=int(pk), name=name, kind=kind, jurisdictional=bool(j))
                for pk, name, kind, j in zip(q["id"], q["name"], q["kind"], q["jurisdictional"], strict=True)
            ],
            ["name", "kind", "jurisdictional"],
            batch_size=BATCH,
        )
    agency_ids = dict(plan.agency_ids)
    if plan.agencies_new:
        taken = set(Agency.objects.values_list("code", flat=True))
        created_agencies = Agency.objects.bulk_create(
            Agency(name=name, code=_unique_code(name, taken)) for name in plan.agencies_new
        )
        agency_ids |= {obj.name.lower(): obj.pk for obj in created_agencies}
    assert plan.experts is not None
    with big_cache():
        expert_ids = _write_experts(plan.experts, agency_ids, now)
        if plan.credentials is not None:
            _write_credentials(plan.credentials, expert_ids, code_ids, now, by)
        if plan.availability is not None:
            _write_availability(plan.availability, plan.availability_twice, expert_ids)


def _unique_code(name: str, taken: set[str]) -> str:
    base = slugify(name)[:28] or "agency"
    code, n = base, 1
    while code in taken:
        n += 1
        code = f"{base}-{n}"
    taken.add(code)
    return code


def _expert_columns(rows: pd.DataFrame, agency_ids: dict[str, int]) -> dict[str, list[Any]]:
    return {
        "email": rows["email"].tolist(),
        "first_name": rows["first_name"].tolist(),
        "last_name": rows["last_name"].tolist(),
        "phone": rows["phone"].tolist(),
        "agency_id": rows["agency_key"].map(agency_ids).astype(int).tolist(),
        "home_place": rows["home_place"].tolist(),
        "latitude": rows["latitude"].astype(float).tolist(),
        "longitude": rows["longitude"].astype(float).tolist(),
        "max_travel_km": rows["max_travel_km"].astype(int).tolist(),
        "hourly_rate": [Decimal(int(cents)).scaleb(-2) for cents in rows["hourly_rate"].tolist()],
        "active": rows["active"].astype(bool).tolist(),
    }


def _write_experts(experts: pd.DataFrame, agency_ids: dict[str, int], now: datetime) -> dict[str, int]:
    """Create and update the experts; returns email key → id for every listed expert."""
    known = experts["id"].notna()
    ids = dict(zip(experts["key"][known], experts["id"][known].astype(int), strict=True))
    new = experts[~known]
    if len(new):
        insert(Expert, _expert_columns(new, agency_ids))
        ids |= dict(
            rows_of(Expert.objects.annotate(key=Lower("email")), "key", new["key"].tolist(), "key", "id")
        )
    changed = experts[experts["changed"]]
    if len(changed):
        # Only the columns that changed somewhere are written (a new rate for everyone leaves the
        # indexed names and emails alone).
        edited = {name for name in EXPERT_FIELDS if differs(changed[name], changed[f"{name}_db"]).any()}
        columns = {k: v for k, v in _expert_columns(changed, agency_ids).items() if k in edited}
        update(Expert, changed["id"].astype(int).tolist(), columns | {"updated_at": [now] * len(changed)})
    return ids


def _delete(model: type[Credential] | type[Availability], ids: list[int]) -> None:
    for part in chunks(ids):
        model.objects.filter(pk__in=part).delete()


def _write_credentials(
    merged: pd.DataFrame, expert_ids: dict[str, int], code_ids: dict[str, int], now: datetime, by: User | None
) -> None:
    """A credential marked verified is stamped as verified by this import (`by`, now) when it is
    new, was unverified, or its number changed; otherwise it keeps its earlier stamp."""
    _delete(Credential, merged.loc[merged["_merge"] == "right_only", "id"].astype(int).tolist())
    by_id = by.pk if by is not None else None
    new = merged[merged["_merge"] == "left_only"]
    if len(new):
        verified = new["verified"].astype(bool).tolist()
        insert(
            Credential,
            {
                "expert_id": new["key"].map(expert_ids).astype(int).tolist(),
                "qualification_id": new["code"].map(code_ids).astype(int).tolist(),
                "jurisdiction": new["jurisdiction"].tolist(),
                "number": new["number"].tolist(),
                "verified": verified,
                "verified_at": [now if v else None for v in verified],
                "verified_by_id": [by_id if v else None for v in verified],
                "expires_on": to_dates(new["expires_on"]),
            },
        )
    changed = merged[merged["changed"]]
    if len(changed):
        stamps: dict[str, list[Any]] = {"verified_at": [], "verified_by_id": []}
        for verified, was_verified, number, old_number, at, old_by in zip(
            changed["verified"],
            changed["verified_db"],
            changed["number"],
            changed["number_db"],
            changed["verified_at"],
            changed["verified_by_id"],
            strict=True,
        ):
            if verified and (not was_verified or number != old_number):
                at, old_by = now, by_id
            elif not verified:
                at, old_by = None, None
            stamps["verified_at"].append(None if pd.isna(at) else at)
            stamps["verified_by_id"].append(None if pd.isna(old_by) else int(old_by))
        update(
            Credential,
            changed["id"].astype(int).tolist(),
            {
                name: values
                for name, values in (
                    ("number", changed["number"].tolist()),
                    ("verified", changed["verified"].astype(bool).tolist()),
                    ("expires_on", to_dates(changed["expires_on"])),
                )
                if differs(changed[name], changed[f"{name}_db"]).any()
            }
            | stamps,
        )


def _write_availability(merged: pd.DataFrame, twice: list[int], expert_ids: dict[str, int]) -> None:
    gone = merged.loc[merged["_merge"] == "right_only", "id"].astype(int).tolist()
    _delete(Availability, gone + twice)
    new = merged[merged["_merge"] == "left_only"]
    if len(new):
        insert(
            Availability,
            {
                "expert_id": new["key"].map(expert_ids).astype(int).tolist(),
                "start": to_dates(new["start"]),
                "end": to_dates(new["end"]),
            },
        )
