"""A commander and a responder, in two browsers, on the demo: matching, offers, a live accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.browser.conftest import PASSWORD

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}


def signed_in(browser: Any, site: str, username: str, viewport: dict[str, int]) -> tuple[Any, Any, list[str]]:
    """A fresh browser context signed in as `username`, and the console errors it logs."""
    context = browser.new_context(viewport=viewport, base_url=site)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return context, page, errors


def count(page: Any, selector: str) -> int:
    return int(re.match(r"\d+", page.locator(selector).inner_text()).group())  # type: ignore[union-attr]


def test_commander_matches_and_offers_then_sees_a_responders_accept_live(
    browser: Any, site: str, shots: Path
) -> None:
    commander, board, board_errors = signed_in(browser, site, "commander", DESKTOP)
    board.get_by_role("link", name=re.compile("WA-2026-01")).first.click()
    board.wait_for_selector("#live-state:text('live')")
    # The map draws a marker per facility even with no tile server reachable (none is set here).
    facilities = len(board.evaluate("JSON.parse(document.getElementById('map-points').textContent)"))
    assert facilities > 0 and board.locator("#map path.leaflet-interactive").count() == facilities
    board.get_by_role("button", name="Run matching").click()
    board.wait_for_load_state()
    assert "Matching proposed" in board.locator(".messages").inner_text()
    board.wait_for_selector("#live-state:text('live')")
    board.get_by_role("button", name="Send offers for all proposals").click()
    board.wait_for_load_state()
    assert re.search(r"\d+ offer\(s\) sent", board.locator(".messages").inner_text())
    board.wait_for_selector("#live-state:text('live')")
    board.screenshot(path=shots / "incident-desktop.png", full_page=True)
    accepted_before = count(board, "#fill .status.accepted")

    responder, phone, phone_errors = signed_in(browser, site, "responder1", PHONE)
    assert phone.url.endswith("/me/")
    phone.screenshot(path=shots / "my-deployments-phone.png", full_page=True)
    offer = phone.locator(".card", has=phone.get_by_role("button", name="Accept")).first
    offer.get_by_role("button", name="Accept").click()
    phone.wait_for_load_state()
    assert "Accepted:" in phone.locator(".messages").inner_text()

    # The commander's page changes by itself: no reload.
    board.wait_for_function(
        "n => parseInt(document.querySelector('#fill .status.accepted').textContent) === n",
        arg=accepted_before + 1,
        timeout=10_000,
    )
    assert board.locator("#alerts").count() == 1
    assert board_errors == [] and phone_errors == []
    commander.close()
    responder.close()


def test_pages_fit_a_phone(browser: Any, site: str, shots: Path) -> None:
    context, page, errors = signed_in(browser, site, "commander", PHONE)
    page.get_by_role("link", name=re.compile("WA-2026-01")).first.click()
    page.wait_for_selector("#live-state:text('live')")
    page.screenshot(path=shots / "incident-phone.png", full_page=True)
    # Nothing wider than the screen except inside the scrolling table wrapper.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    assert errors == []
    context.close()


def test_finance_officer_reads_the_cost_report_and_downloads_the_workbook(
    browser: Any, site: str, shots: Path, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    context, page, errors = signed_in(browser, site, "finance", DESKTOP)
    page.get_by_role("link", name="Finance report").first.click()  # from their home page
    page.wait_for_load_state()
    assert "WA-2026-01" in page.locator("h1").inner_text()
    assert page.locator("svg").count() >= 1, "the cost-burn chart is drawn"
    page.screenshot(path=shots / "finance-desktop.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Workbook (xlsx)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".xlsx"
    workbook = load_workbook(saved, read_only=True)
    assert workbook.sheetnames[:5] == ["Summary", "Labor", "By person", "Expenses", "Daily burn"]
    labor = workbook["Labor"]
    assert labor.max_row is not None and labor.max_row > 1, "the demo's logged hours are in the Labor sheet"
    assert errors == []
    context.close()
