"""`manage.py export_report`: writes the file and exits 0; refuses bad arguments by name."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import openpyxl
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import World, database_url
from tests.test_reports_world import START, entry, on_site

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worked(world: World) -> World:
    d = on_site(world, world.alice)
    entry(world, d, START, "8.00")
    return world


def export(*args: str) -> str:
    out = StringIO()
    call_command("export_report", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["finance", "demobilization", "logistics", "roster"])
def test_each_report_is_written_to_xlsx(worked: World, tmp_path: Path, kind: str) -> None:
    target = tmp_path / f"{kind}.xlsx"
    said = export(kind, "--incident", "WA-2026-01", "--format", "xlsx", "--output", str(target))
    assert f"Wrote the {kind} report of WA-2026-01" in said
    book = openpyxl.load_workbook(target)
    assert book.worksheets[0]["A1"].value.startswith("WA-2026-01 Respiratory surge")
    assert not list(tmp_path.glob(".*partial"))


def test_csv_by_suffix_with_dates_and_a_sheet(worked: World, tmp_path: Path) -> None:
    target = tmp_path / "time.csv"
    said = export(
        "finance",
        "--incident",
        "WA-2026-01",
        "--output",
        str(target),
        "--from",
        str(START),
        "--to",
        str(START),
    )
    assert "sheet labor, 1 row)" in said and f"days {START} – {START}" in said
    assert target.read_bytes().startswith(b"\xef\xbb\xbfDate,Name")
    export("finance", "--incident", "WA-2026-01", "--output", str(target), "--sheet", "summary")
    assert target.read_bytes().startswith(b"\xef\xbb\xbfAgency,Cost code")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--from", "2026-02-30"], "--from"),
        (["--to", "2026-12-01", "--from", "2026-12-31"], "--to"),
        (["--status", "paid"], "--status"),
        (["--facility", "NOPE"], "--facility"),
        (["--sheet", "everything"], "--sheet"),
    ],
)
def test_bad_arguments_are_named_and_exit_1(
    worked: World, tmp_path: Path, args: list[str], named: str
) -> None:
    target = tmp_path / "out.xlsx"
    with pytest.raises(CommandError, match=f"^{named}:") as caught:
        export("finance", "--incident", "WA-2026-01", "--output", str(target), *args)
    assert caught.value.returncode == 1
    assert not target.exists() and not list(tmp_path.iterdir())


def test_a_format_it_cannot_tell_is_refused(worked: World, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--format"):
        export("finance", "--incident", "WA-2026-01", "--output", str(tmp_path / "out.pdf"))


def test_a_missing_folder_is_refused(worked: World, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--output"):
        export("finance", "--incident", "WA-2026-01", "--output", str(tmp_path / "no" / "out.xlsx"))


def test_an_unknown_incident_exits_2(worked: World, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No incident 'XX-1'") as caught:
        export("finance", "--incident", "XX-1", "--output", str(tmp_path / "out.xlsx"))
    assert caught.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_from_the_command_line_the_exit_codes_are_real(world: World, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url(), "DEBUG": "true"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "export_report", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = run("roster", "--incident", "WA-2026-01", "--output", str(tmp_path / "r.csv"))
    assert ok.returncode == 0, ok.stderr
    unknown = run("roster", "--incident", "NOPE", "--output", str(tmp_path / "r.csv"))
    assert unknown.returncode == 2 and "No incident 'NOPE'" in unknown.stderr
    bad = run("roster", "--incident", "WA-2026-01", "--output", str(tmp_path / "r.csv"), "--from", "soon")
    assert bad.returncode == 1 and "--from: Enter a valid date." in bad.stderr
    kind = run("payroll", "--incident", "WA-2026-01", "--output", str(tmp_path / "r.csv"))
    assert kind.returncode == 2 and "invalid choice" in kind.stderr
