"""The finance workbook's formulas, recalculated for real by LibreOffice, give the app's figures.

The cached values XlsxWriter stores beside each formula are zeroed first, and LibreOffice is told
to recalculate on load, so every number read back was computed by LibreOffice from the Labor
and Expenses rows. Needs `soffice` (Debian: libreoffice-calc-nogui); skipped where it is absent.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import zipfile
from datetime import timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path

import openpyxl
import pytest

from incidents.models import Approval, TimeEntry
from reports.spec import FIRST_ROW
from tests import factories
from tests.test_reports_world import START, FinanceWorld, build, entry, expected_costs, fetch, on_site, xlsx
from tests.test_reports_world import fw as fw  # the fixture

pytestmark = [
    pytest.mark.django_db,
    # In CI (.ci/run installs LibreOffice) a missing soffice fails the test instead of skipping it.
    pytest.mark.skipif(
        shutil.which("soffice") is None and not os.environ.get("CI"),
        reason="needs LibreOffice (soffice) to recalculate; CI installs it",
    ),
]
D = Decimal
RECALC_ALWAYS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">
  <prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def without_cached_values(source: bytes, target: Path) -> int:
    """Copy the workbook with every formula's stored result set to 0; the number of formulas."""
    count = 0
    with zipfile.ZipFile(BytesIO(source)) as src, zipfile.ZipFile(target, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/"):
                data, n = re.subn(rb"(<f>[^<]*</f>)<v>[^<]*</v>", rb"\1<v>0</v>", data)
                count += n
            out.writestr(item, data)
    return count


def recalculated(book: bytes, tmp: Path) -> openpyxl.Workbook:
    stripped = tmp / "stripped.xlsx"
    assert without_cached_values(book, stripped) > 0
    profile = tmp / "profile"
    (profile / "user").mkdir(parents=True)
    (profile / "user" / "registrymodifications.xcu").write_text(RECALC_ALWAYS)
    subprocess.run(
        [
            "soffice",
            "--headless",
            "--norestore",
            f"-env:UserInstallation={profile.as_uri()}",
            "--convert-to",
            "xlsx",
            "--outdir",
            str(tmp / "out"),
            str(stripped),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return openpyxl.load_workbook(tmp / "out" / "stripped.xlsx", data_only=True)


def cents(value: object) -> Decimal:
    return D(str(value)).quantize(D("0.01"))


def test_libreoffice_recalculates_the_summary_and_burn_to_the_apps_figures(
    fw: FinanceWorld, tmp_path: Path
) -> None:
    # Plenty of rows with awkward rates and hours, so floating-point sums are put to the test.
    rng = random.Random(7)
    world = fw.world
    for i in range(40):
        agency = (fw.county, fw.state)[i % 2]
        expert = factories.ExpertFactory(
            agency=agency,
            hourly_rate=D(f"{rng.randint(2500, 9000) / 100:.2f}"),
            overtime_multiplier=D("1.50"),
        )
        d = on_site(world, expert, facility=fw.north if i % 3 else None)
        for day in range(rng.randint(3, 9)):
            entry(
                world,
                d,
                START + timedelta(days=day),
                f"{rng.randint(0, 48) / 4:.2f}",
                f"{rng.randint(0, 16) / 4:.2f}",
            )
    entries = list(
        TimeEntry.objects.filter(
            deployment__request__facility__incident=world.incident, status=Approval.APPROVED
        ).select_related("deployment__expert__agency")
    )
    _, expenses = fetch([], fw.expenses)
    costs = expected_costs(entries, expenses)
    report = build("finance", incident="WA-2026-01")
    book = recalculated(xlsx(report).getvalue(), tmp_path)

    summary = book["Summary"]
    agencies = sorted(costs.by_agency)
    for n, agency in enumerate(agencies, start=FIRST_ROW + 1):
        row = [c.value for c in summary[n]]
        want = costs.by_agency[agency]
        spent = costs.expenses_by_agency.get(agency, D(0))
        assert row[0] == agency
        assert [cents(v) for v in row[4:12]] == [
            want["regular_hours"],
            want["overtime_hours"],
            want["regular"],
            want["overtime"],
            want["fringe"],
            want["total"],
            spent,
            want["total"] + spent,
        ]
    total = [c.value for c in summary[FIRST_ROW + 1 + len(agencies)]]
    assert total[0] == "All agencies"
    grand = sum(c["total"] for c in costs.labor.values()) + sum(costs.expenses_by_agency.values())
    assert cents(total[11]) == grand

    burn = book["Daily burn"]
    running = D(0)
    days = sorted(set(costs.by_day) | set(costs.expenses_by_day))
    for n, day in enumerate(days, start=FIRST_ROW + 1):
        labor, spent = costs.by_day.get(day, D(0)), costs.expenses_by_day.get(day, D(0))
        running += labor + spent
        row = [c.value for c in burn[n]]
        assert row[0].date() == day
        assert [cents(v) for v in row[1:5]] == [labor, spent, labor + spent, running]
    assert running == grand
