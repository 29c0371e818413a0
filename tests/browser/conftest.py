"""Browser tests: the real app served by Daphne on the demo data, driven by Debian's Chromium.

One site per test module (a temporary SQLite database, migrated and loaded with `seed_demo`,
served over ASGI), so a test sees exactly what a newcomer sees after `make run`. Chromium is the
system's (`/usr/bin/chromium`, installed by `.ci/run`); Playwright never downloads a browser.
Screenshots go to `artifacts/screenshots/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import daphne, free_port

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "demo"
# Flags for a sandboxed CI machine with no network: no GPU, no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists() or os.environ.get("CI"):
        return  # in CI a missing browser fails the tests, it never skips them
    skip = pytest.mark.skip(reason="needs Debian's chromium (apt-get install chromium); CI installs it")
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The demo, served on a free port; yields its base URL."""
    folder = Path(tempfile.mkdtemp(prefix="deploy-tracker-browser-"))
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TASK_BACKEND")
    }
    env.update(
        SQLITE_PATH=str(folder / "site.sqlite3"),
        DEBUG="true",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL=f"http://127.0.0.1:{port}",
        EMAIL_URL="locmem://",
        MAP_TILES_URL="none",  # no tile server on a CI machine: the markers must do without
    )
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo", "--password", PASSWORD]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    try:
        with daphne(env, port) as address:
            yield f"http://{address}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
