"""Benchmark: matching end to end from the database — load, solve, write the proposals.

Usage: .venv/bin/python bench/matching_db.py [--experts 20000] [--slots 5000] [--database-url URL]

Builds a throw-away database (a temporary SQLite file unless --database-url names one you may
wipe): the demo roster generator's experts, the 42 Washington facilities and requests totalling
`--slots` open slots. Then times `incidents.matching.loader.run`: a dry run (load + solve) and a
real run that also replaces the proposals, each as the `match` command would do it.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_and_time(experts: int, slots: int) -> None:
    """Runs inside a process whose environment already points at the benchmark database."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from fixtures.roster import PRIMARY, agencies, catalog, insert_roster
    from fixtures.story import facilities
    from incidents.matching.loader import Options, load, run
    from incidents.models import Incident, RoleRequest

    call_command("migrate", verbosity=0)
    today = timezone.localdate()
    started = time.perf_counter()
    quals = catalog()
    insert_roster(experts, today, quals, agencies())
    incident = Incident.objects.create(number="BENCH-1", name="Benchmark", start=today, default_radius_km=300)
    facilities(incident)
    rng = random.Random(5)
    sites = list(incident.facilities.all())
    codes, weights = list(PRIMARY), [w for w, _ in PRIMARY.values()]
    rows, total = [], 0
    while total < slots:
        quantity = min(rng.randint(1, 5), slots - total)
        start = today + timedelta(days=rng.randint(3, 20))
        rows.append(
            RoleRequest(
                facility=rng.choice(sites),
                qualification=quals[rng.choices(codes, weights)[0]],
                quantity=quantity,
                start=start,
                end=start + timedelta(days=13),
                priority=rng.choice(["critical", "high", "normal"]),
            )
        )
        total += quantity
    RoleRequest.objects.bulk_create(rows)
    built = time.perf_counter() - started

    engine = django.db.connection.vendor
    t0 = time.perf_counter()
    loaded = load(incident, Options(dry_run=True), today=today)
    t1 = time.perf_counter()
    dry = run(incident, by=None, options=Options(dry_run=True), today=today)
    t2 = time.perf_counter()
    real = run(incident, by=None, today=today)
    t3 = time.perf_counter()
    again = run(incident, by=None, today=today)  # replaces every unlocked proposal
    t4 = time.perf_counter()
    print(
        f"matching from the database on {engine}: {experts:,} experts, "
        f"{len(rows):,} requests, {total:,} slots"
    )
    print(f"  (building the database took {built:.1f} s)")
    print(f"  load only              : {t1 - t0:6.2f} s  ({len(loaded.expert_ids):,} active experts)")
    print(f"  dry run (load + solve) : {t2 - t1:6.2f} s  ({dry['summary']['proposed']:,} proposals)")
    print(f"  run (load, solve, write): {t3 - t2:6.2f} s  ({real['summary']['proposed']:,} written)")
    print(f"  re-run (replaces them) : {t4 - t3:6.2f} s  ({again['summary']['proposed']:,} written)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experts", type=int, default=20_000)
    parser.add_argument("--slots", type=int, default=5_000)
    parser.add_argument("--database-url", help="a database you may wipe (default: a temporary SQLite file)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.inside:
        build_and_time(options.experts, options.slots)
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "true", "SQLITE_PATH": str(Path(tmp) / "bench.sqlite3")}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        if options.database_url:
            env["DATABASE_URL"] = options.database_url
        args = [__file__, "--inside", "--experts", str(options.experts), "--slots", str(options.slots)]
        subprocess.run([sys.executable, *args], env=env, check=True)


if __name__ == "__main__":
    main()
