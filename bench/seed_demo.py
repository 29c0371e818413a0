"""Benchmark: `seed_demo --experts N` on a fresh database, and a second (idempotent) run.

Usage: .venv/bin/python bench/seed_demo.py [--experts 100000] [--database-url URL]
Without --database-url it uses a throw-away SQLite file (the embedded default). Point
--database-url only at a database you may wipe: the benchmark migrates and fills it.
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


def manage(*args: str, env: dict[str, str]) -> float:
    """Run one manage.py command; return its wall-clock seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experts", type=int, default=100_000)
    parser.add_argument("--database-url", help="a database you may wipe (default: a temporary SQLite file)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DEBUG": "true", "SQLITE_PATH": str(Path(tmp) / "bench.sqlite3")}
        env.pop("DATABASE_URL", None)
        if options.database_url:
            env["DATABASE_URL"] = options.database_url
        engine = "PostgreSQL" if options.database_url else "SQLite"
        manage("migrate", "--noinput", env=env)
        first = manage("seed_demo", "--experts", str(options.experts), "--reset", env=env)
        again = manage("seed_demo", "--experts", str(options.experts), env=env)
    print(f"seed_demo --experts {options.experts} on {engine} ({os.cpu_count()} cores)")
    rate = options.experts / first
    print(f"  first load : {first:7.1f} s  ({rate:,.0f} experts/s, incl. the incident story)")
    print(f"  second run : {again:7.1f} s  (idempotent: nothing new to write)")


if __name__ == "__main__":
    main()
