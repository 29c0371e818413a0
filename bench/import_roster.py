"""Benchmark: the roster import end to end — read the xlsx, check every cell, write in bulk.

Usage: .venv/bin/python bench/import_roster.py [--experts 100000] [--database-url URL] [--workbook PATH]
       [--readers]

Writes a roster workbook of `--experts` people (the demo generator's realistic mix: experts,
credentials, availability and the qualification catalog) with XlsxWriter in constant-memory
mode, or reuses `--workbook` if that file exists. Then, in a throw-away database (a temporary
SQLite file unless --database-url names one you may wipe), times `import_roster` as the command
runs it: a dry run, the real import into the empty roster, a re-import of the same file
(everything unchanged, nothing written), and a re-import after every expert's rate and every
credential's number were changed in the database (all of them updated). The target: 100,000
experts imported in at most 30 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 30.0


def write_workbook(path: Path, experts: int) -> None:
    """The demo roster generator's first `experts` people, as an import workbook."""
    import xlsxwriter
    from django.utils import timezone

    from fixtures import washington
    from fixtures.roster import AGENCIES, _specs
    from resources.models import Agency, Qualification

    today = timezone.localdate()
    quals = {
        q.code: Qualification(code=q.code, name=q.name, kind=q.kind, jurisdictional=q.jurisdictional)
        for q in washington.QUALIFICATIONS
    }
    agencies = [Agency(code=code, name=name) for code, name, _ in AGENCIES]
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheets = {
        "experts": book.add_worksheet("experts"),
        "credentials": book.add_worksheet("credentials"),
        "availability": book.add_worksheet("availability"),
        "qualifications": book.add_worksheet("qualifications"),
    }
    headers = {
        "experts": "email first_name last_name phone agency home_place latitude longitude max_travel_km "
        "hourly_rate active",
        "credentials": "email qualification number jurisdiction verified expires_on",
        "availability": "email start end",
        "qualifications": "code name kind jurisdictional",
    }
    for name, sheet in sheets.items():
        sheet.write_row(0, 0, headers[name].split())
    # constant_memory writes row by row, so each sheet is filled in one pass of its own.
    specs = list(_specs(experts, today, quals, agencies))
    for row, spec in enumerate(specs, start=1):
        e = spec.expert
        sheets["experts"].write_row(
            row,
            0,
            [
                e.email,
                e.first_name,
                e.last_name,
                e.phone,
                e.agency.name,
                e.home_place,
                e.latitude,
                e.longitude,
                e.max_travel_km,
                float(e.hourly_rate),
                "yes" if e.active else "no",
            ],
        )
    row = 1
    for spec in specs:
        for c in spec.credentials:
            sheet = sheets["credentials"]
            sheet.write_row(
                row,
                0,
                [
                    spec.expert.email,
                    c.qualification.code,
                    c.number,
                    c.jurisdiction,
                    "yes" if c.verified else "no",
                ],
            )
            if c.expires_on:
                sheet.write_datetime(row, 5, c.expires_on, day)
            row += 1
    row = 1
    for spec in specs:
        for a in spec.availability:
            sheet = sheets["availability"]
            sheet.write_string(row, 0, spec.expert.email)
            sheet.write_datetime(row, 1, a.start, day)
            sheet.write_datetime(row, 2, a.end, day)
            row += 1
    for row, q in enumerate(washington.QUALIFICATIONS, start=1):
        sheets["qualifications"].write_row(
            row, 0, [q.code, q.name, q.kind, "yes" if q.jurisdictional else "no"]
        )
    book.close()


def compare_readers(path: Path) -> None:
    """Reading the experts sheet: pandas with openpyxl, pandas with calamine, and calamine as the
    import calls it (into pandas, keeping Excel's row numbers)."""
    import pandas as pd
    from python_calamine import CalamineWorkbook

    def ours() -> object:
        rows = (
            CalamineWorkbook.from_path(str(path))
            .get_sheet_by_name("experts")
            .to_python(skip_empty_area=False)
        )
        return pd.DataFrame(rows[1:], columns=rows[0], dtype=object)

    readers = {
        "pandas + openpyxl": lambda: pd.read_excel(
            path, sheet_name="experts", engine="openpyxl", dtype=object
        ),
        "pandas + calamine": lambda: pd.read_excel(
            path, sheet_name="experts", engine="calamine", dtype=object
        ),
        "calamine → pandas (the import)": ours,
    }
    for label, read in readers.items():
        started = time.perf_counter()
        frame = read()
        print(f"  read the experts sheet, {label:<31}: {time.perf_counter() - started:6.2f} s  {frame.shape}")  # type: ignore[attr-defined]


def run(experts: int, workbook: Path | None, readers: bool) -> None:
    """Runs inside a process whose environment already points at the benchmark database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from resources.importing import import_roster
    from resources.models import Availability, Credential, Expert

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = workbook or Path(tmp) / f"roster-{experts}.xlsx"
        if not path.exists():
            started = time.perf_counter()
            write_workbook(path, experts)
            print(f"(writing the workbook took {time.perf_counter() - started:.1f} s)")
        size = path.stat().st_size / 1024 / 1024
        load = os.getloadavg()
        print(f"roster import on {connection.vendor}: {path.name}, {size:.1f} MB")
        print(f"  load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
        if readers:
            compare_readers(path)
        phases = (("dry run", True), ("import", False), ("re-import", False), ("update all", False))
        for label, dry_run in phases:
            if label == "update all":
                # Every rate and license number edited since: the file brings them all back.
                Expert.objects.update(hourly_rate=F("hourly_rate") + 1)
                Credential.objects.update(number=Concat(F("number"), Value("-old")))
            started = time.perf_counter()
            result = import_roster(path, dry_run=dry_run)
            total = time.perf_counter() - started
            rows = sum(c.created + c.updated + c.unchanged for c in result.counts.values())
            stages = "  ".join(f"{stage} {seconds:5.2f}" for stage, seconds in result.seconds.items())
            print(f"  {label:<10}: {total:6.2f} s  ({stages})  {rows / total:,.0f} rows/s")
            for sheet, counts in result.counts.items():
                print(f"      {sheet:<15} {counts}")
            if label == "import":
                verdict = "PASS" if total <= TARGET_SECONDS else "FAIL"
                print(f"  {verdict}: {total:.1f} s for {experts:,} experts (target ≤ {TARGET_SECONDS:.0f} s)")
        print(
            f"  in the database: {Expert.objects.count():,} experts, {Credential.objects.count():,} "
            f"credentials, {Availability.objects.count():,} availability windows"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experts", type=int, default=100_000)
    parser.add_argument("--database-url", help="a database you may wipe (default: a temporary SQLite file)")
    parser.add_argument("--workbook", type=Path, help="reuse this workbook (written there first if missing)")
    parser.add_argument(
        "--readers", action="store_true", help="also time pandas+openpyxl and pandas+calamine"
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inside:
        run(options.experts, options.workbook, options.readers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "true", "SQLITE_PATH": str(Path(tmp) / "bench.sqlite3")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if options.database_url:
            env["DATABASE_URL"] = options.database_url
        args = [__file__, "--inside", "--experts", str(options.experts)]
        if options.workbook:
            args += ["--workbook", str(options.workbook.resolve())]
        if options.readers:
            args.append("--readers")
        subprocess.run([sys.executable, *args], env=env, check=True)


if __name__ == "__main__":
    main()
