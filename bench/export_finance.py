"""Benchmark: the finance export of 100,000 time entries, from the database to a finished xlsx.

Usage: .venv/bin/python bench/export_finance.py [--entries 100000] [--database-url URL] [--repeat 1]

Builds a throw-away database (a temporary SQLite file unless --database-url names one you may
wipe) with `--entries` approved time entries: deployments of 14 days (one per expert, so about
7,100 people for 100,000 entries) over 30 facilities and 4 agencies, and one mileage claim each.
Then, each in a fresh process of its own so that its peak memory is its own, times:

  ours        the finance export as `export_report finance … --format xlsx` writes it: the
              query, the cost of every row, five finished sheets (Labor, By person, Expenses,
              Summary with formulas, Daily burn) through XlsxWriter in constant-memory mode;
  bare        XlsxWriter in constant-memory mode writing the same rows of the same five sheets
              (same columns and number formats; formulas as plain numbers) from lists already in
              memory: the floor for this workbook — no database, no arithmetic, no title block;
  bare-labor  the same, Labor sheet only (100,000 rows × 16 columns), for reference;
  pandas      `DataFrame.to_excel` (openpyxl engine) of the Labor rows from a DataFrame.

The target compares ours with `bare` (the same rows); the Labor-only ratio is printed too.
Seconds are wall-clock time of the write alone (for bare and pandas, building the list or the
DataFrame is not counted), with the process's CPU time beside them: on a shared machine the
wall clock also counts other jobs' turns (on PostgreSQL, ours also waits for the server, whose
CPU time is not the process's). The target is judged on the wall clock; best of --repeat runs.
Peak memory is the peak resident set size of that process (getrusage ru_maxrss) — Python, Django
and everything loaded included — with the process's size before the work shown beside it.
Targets: ours ≤ 1.5 × bare, and ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAYS = 14
NUMBER = "BENCH-EXPORT"


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")
    import django

    django.setup()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(entries: int) -> dict[str, Any]:
    """Create the incident, its people and their approved hours, in bulk."""
    _setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone

    from incidents.models import Deployment, Expense, Facility, Incident, RoleRequest, TimeEntry
    from resources.models import Agency, Expert, Qualification

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    approver = User.objects.create(username="bench-finance")
    start = date(2026, 3, 2)
    now = timezone.now()
    incident = Incident.objects.create(
        number=NUMBER, name="Export benchmark", cost_code="FEMA-4481-DR-WA", start=start
    )
    agencies = Agency.objects.bulk_create(
        Agency(code=f"bench-{i}", name=f"Bench Agency {i}", fringe_rate=Decimal(rate))
        for i, rate in enumerate(["0.3250", "0.2875", "0.3100", "0.0000"])
    )
    quals = Qualification.objects.bulk_create(
        Qualification(code=f"BQ{i}", name=name)
        for i, name in enumerate(
            ["Registered Nurse", "Respiratory Therapist", "Epidemiologist", "Logistics Chief"]
        )
    )
    facilities = Facility.objects.bulk_create(
        Facility(
            incident=incident,
            code=f"BENCH-{i:02d}",
            name=f"Facility {i}",
            state="WA",
            latitude=47.0,
            longitude=-122.0,
        )
        for i in range(30)
    )
    people = -(-entries // DAYS)
    requests = RoleRequest.objects.bulk_create(
        RoleRequest(
            facility=f, qualification=q, quantity=people, start=start, end=start + timedelta(days=DAYS - 1)
        )
        for f in facilities
        for q in quals
    )
    experts = Expert.objects.bulk_create(
        Expert(
            email=f"bench{i}@example.org",
            first_name=f"Pat{i}",
            last_name=f"Bench{i % 997}",
            agency=agencies[i % len(agencies)],
            latitude=47.0,
            longitude=-122.0,
            max_travel_km=500,
            hourly_rate=Decimal(3000 + (i * 37) % 6000) / 100,
            overtime_multiplier=Decimal("1.50"),
        )
        for i in range(people)
    )
    deployments = Deployment.objects.bulk_create(
        Deployment(
            request=requests[i % len(requests)],
            expert=e,
            status=Deployment.Status.ON_SITE,
            start=start,
            end=start + timedelta(days=DAYS - 1),
            rest_until=start + timedelta(days=DAYS + 1),
            distance_km=40.0 + i % 300,
        )
        for i, e in enumerate(experts)
    )
    made = 0
    batch: list[TimeEntry] = []
    for i, d in enumerate(deployments):
        for day in range(DAYS):
            if made == entries:
                break
            batch.append(
                TimeEntry(
                    deployment=d,
                    date=start + timedelta(days=day),
                    regular_hours=Decimal(("8.00", "10.00", "12.00", "7.75")[(i + day) % 4]),
                    overtime_hours=Decimal(("0.00", "0.00", "2.00", "3.25")[(i * 3 + day) % 4]),
                    status="approved",
                    approved_by=approver,
                    approved_at=now,
                )
            )
            made += 1
        if len(batch) >= 10_000:
            TimeEntry.objects.bulk_create(batch)
            batch = []
    TimeEntry.objects.bulk_create(batch)
    Expense.objects.bulk_create(
        Expense(
            deployment=d,
            date=start,
            category="mileage",
            distance_km=2 * d.distance_km,
            amount=(Decimal(str(2 * d.distance_km)) * incident.mileage_rate).quantize(Decimal("0.01")),
            description="Home ↔ facility, round trip",
            status="approved",
            approved_by=approver,
            approved_at=now,
        )
        for d in deployments
    )
    return {"people": people, "entries": made, "seconds": time.perf_counter() - started}


def _sheets(labor_only: bool) -> list[tuple[str, list[Any], list[Any]]]:
    """Every sheet our export writes (or its Labor sheet alone): name, columns and rows, computed
    by our code beforehand (not timed) with formulas as their values, money as float."""
    from django.http import QueryDict

    from reports import service
    from reports.spec import Formula, Layout
    from reports.writers import _in_dependency_order

    query = QueryDict(mutable=True)
    query["incident"] = NUMBER
    filters = service.prepare("finance", query, user=None)
    report = service.build("finance", filters, user=None)
    layout, rows = Layout(), {}
    for sheet in _in_dependency_order(report):
        values = []
        for row in sheet.rows(layout):
            cells = (v.value if isinstance(v, Formula) else v for v in row)
            values.append(tuple(float(v) if isinstance(v, Decimal) else v for v in cells))
        layout.done(sheet, len(values))
        rows[sheet.key] = values
    return [
        (sheet.name, sheet.columns, rows[sheet.key])
        for sheet in report.sheets
        if sheet.key == "labor" or not labor_only
    ]


def ours(out: Path) -> dict[str, Any]:
    _setup()
    from django.http import QueryDict

    from reports import service
    from reports.writers import write_xlsx

    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    query = QueryDict(mutable=True)
    query["incident"] = NUMBER
    filters = service.prepare("finance", query, user=None)
    report = service.build("finance", filters, user=None)
    with out.open("wb") as target:
        counts = write_xlsx(report, target)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": _rss_mb(),
        "before_mb": before,
        "rows": counts,
        "bytes": out.stat().st_size,
    }


def bare(out: Path, *, labor_only: bool = False) -> dict[str, Any]:
    _setup()
    import xlsxwriter

    from reports.spec import Kind
    from reports.writers import NUMBER_FORMATS

    sheets = _sheets(labor_only)
    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    workbook = xlsxwriter.Workbook(str(out), {"constant_memory": True})
    formats = {kind: workbook.add_format({"num_format": code}) for kind, code in NUMBER_FORMATS.items()}
    bold = workbook.add_format({"bold": True})
    for name, columns, rows in sheets:
        ws = workbook.add_worksheet(name)
        for c, column in enumerate(columns):
            ws.set_column(c, c, column.width, formats.get(column.kind))
            ws.write_string(0, c, column.header, bold)
        kinds = [column.kind for column in columns]
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                kind = kinds[c]
                if value is None:
                    continue
                if kind is Kind.TEXT:
                    ws.write_string(r, c, value)
                elif kind is Kind.DATE:
                    ws.write_datetime(r, c, value, formats[kind])
                else:
                    ws.write_number(r, c, value, formats[kind])
    workbook.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": _rss_mb(),
        "before_mb": before,
        "rows": sum(len(rows) for _, _, rows in sheets),
        "bytes": out.stat().st_size,
    }


def pandas(out: Path) -> dict[str, Any]:
    _setup()
    import pandas as pd

    [(_, columns, rows)] = _sheets(labor_only=True)
    frame = pd.DataFrame(rows, columns=[c.header for c in columns])
    del rows
    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    frame.to_excel(out, engine="openpyxl", index=False, sheet_name="Labor")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": _rss_mb(),
        "before_mb": before,
        "rows": len(frame),
        "bytes": out.stat().st_size,
    }


def _inside(options: argparse.Namespace) -> None:
    out = Path(options.out) if options.out else Path(os.devnull)
    result = {
        "build": lambda: build(options.entries),
        "ours": lambda: ours(out),
        "bare": lambda: bare(out),
        "bare-labor": lambda: bare(out, labor_only=True),
        "pandas": lambda: pandas(out),
    }[options.inside]()
    print("RESULT " + json.dumps(result))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--database-url", help="a database you may wipe (default: a temporary SQLite file)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="time each contender this many times; keep the best"
    )
    parser.add_argument("--skip-pandas", action="store_true", help="leave out DataFrame.to_excel (slow)")
    parser.add_argument(
        "--inside", choices=["build", "ours", "bare", "bare-labor", "pandas"], help=argparse.SUPPRESS
    )
    parser.add_argument("--out", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inside:
        _inside(options)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "true", "SQLITE_PATH": str(Path(tmp) / "bench.sqlite3")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if options.database_url:
            env["DATABASE_URL"] = options.database_url

        def run(mode: str) -> dict[str, Any]:
            args = [sys.executable, __file__, "--inside", mode, "--entries", str(options.entries)]
            args += ["--out", str(Path(tmp) / f"{mode}.xlsx")]
            done = subprocess.run(args, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{mode} failed:\n{done.stderr}")
            line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
            return json.loads(line.removeprefix("RESULT "))

        built = run("build")
        engine = "PostgreSQL" if options.database_url else "SQLite"
        print(
            f"finance export on {engine}: {built['entries']:,} time entries of {built['people']:,} people "
            f"(database built in {built['seconds']:.1f} s); load average before: {_load()}"
        )
        modes = ["ours", "bare", "bare-labor"] + ([] if options.skip_pandas else ["pandas"])
        best: dict[str, dict[str, Any]] = {}
        for _ in range(options.repeat):
            for mode in modes:
                result = run(mode)
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
        labels = {
            "ours": "ours: database → 5-sheet xlsx",
            "bare": "bare XlsxWriter, the same 5 sheets",
            "bare-labor": "bare XlsxWriter, Labor sheet only",
            "pandas": "to_excel (openpyxl), Labor only",
        }
        for mode in modes:
            r = best[mode]
            print(
                f"  {labels[mode]:<34} {r['seconds']:6.2f} s (cpu {r['cpu']:5.2f} s)  "
                f"peak {r['peak_mb']:4.0f} MB "
                f"(process {r['before_mb']:.0f} MB before)   {r['bytes'] / 1e6:5.1f} MB file"
            )
        ratio = best["ours"]["seconds"] / best["bare"]["seconds"]
        ok_time, ok_memory = ratio <= 1.5, best["ours"]["peak_mb"] <= 200
        cpu_ratio = best["ours"]["cpu"] / best["bare"]["cpu"]
        print(
            f"  ours / bare   = {ratio:.2f}  (target ≤ 1.5: {'pass' if ok_time else 'FAIL'}); "
            f"in CPU time {cpu_ratio:.2f}"
        )
        print(f"  ours / bare Labor-only = {best['ours']['seconds'] / best['bare-labor']['seconds']:.2f}")
        if "pandas" in best:
            print(f"  ours / pandas = {best['ours']['seconds'] / best['pandas']['seconds']:.2f}")
        print(
            f"  ours peak {best['ours']['peak_mb']:.0f} MB "
            f"(target ≤ 200 MB: {'pass' if ok_memory else 'FAIL'})"
        )
        print(f"  load average after: {_load()} (2 cores, shared)")
        if not (ok_time and ok_memory):
            sys.exit(1)


if __name__ == "__main__":
    main()
