"""The Content-Security-Policy holds in a real browser: every page each persona works in runs
without one violation, the map still draws its markers, the live updates still connect, and the
API docs still render.

Violations are caught twice: the `securitypolicyviolation` event (listened to before any page
script runs, via an init script) and Chromium's console, where it reports each refusal.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}

LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(
  `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber} ${e.sample}`
));
"""


class Visit:
    """A signed-in browser context that records every CSP violation of every page it opens."""

    def __init__(self, browser: Any, site: str, username: str | None, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, base_url=site)
        self.context.add_init_script(LISTEN)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        if username:
            self.page.goto("/login/")
            self.page.get_by_label("Username").fill(username)
            self.page.get_by_label("Password").fill(PASSWORD)
            self.page.get_by_role("button", name="Sign in").click()
            self.page.wait_for_load_state()

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.console.append(f"{self.page.url}: {message.text}")
        elif message.type == "error":
            self.errors.append(f"{self.page.url}: {message.text}")

    def open(self, path: str) -> Any:
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        assert "default-src 'self'" in response.headers["content-security-policy"]
        return self.page

    def violations(self) -> list[str]:
        """This page's violations so far (the listener starts afresh on each document)."""
        found: list[str] = self.page.evaluate("window.__csp")
        return [f"{self.page.url}: {v}" for v in found]

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def incident_id(browser: Any, site: str) -> int:
    visit = Visit(browser, site, "commander", DESKTOP)
    visit.page.get_by_role("link", name=re.compile("WA-2026-01")).first.click()
    visit.page.wait_for_load_state()
    found = re.search(r"/incidents/(\d+)/", visit.page.url)
    visit.close()
    assert found
    return int(found.group(1))


def test_the_commanders_pages_run_without_a_csp_violation(browser: Any, site: str, incident_id: int) -> None:
    visit = Visit(browser, site, "commander", DESKTOP)
    seen: list[str] = []
    incident = f"/incidents/{incident_id}/"

    page = visit.open(incident)
    # The socket opens under connect-src 'self' (ws: to the same host), and Leaflet draws a marker
    # per facility, styled through element.style and SVG attributes, which the policy allows.
    page.wait_for_selector("#live-state:text('live')")
    facilities = len(page.evaluate("JSON.parse(document.getElementById('map-points').textContent)"))
    assert facilities > 0 and page.locator("#map path.leaflet-interactive").count() == facilities
    page.locator("#map path.leaflet-interactive").first.hover()
    page.wait_for_selector(".leaflet-tooltip")
    # A responder accepts on their phone: the page fetches the fill fragment, swaps it in
    # (innerHTML) and redraws the map, all under the policy.
    accepted = int(page.locator("#fill .status.accepted").inner_text().split()[0])
    phone = Visit(browser, site, "responder2", PHONE)
    phone.open("/me/").get_by_role("button", name="Accept").first.click()
    phone.page.wait_for_load_state()
    page.wait_for_function(
        "n => parseInt(document.querySelector('#fill .status.accepted').textContent) === n",
        arg=accepted + 1,
        timeout=10_000,
    )
    assert page.locator("#map path.leaflet-interactive").count() == facilities
    seen += visit.violations() + phone.violations()
    assert phone.console == [] and phone.errors == []
    phone.close()

    for path in (
        f"{incident}matching/",
        f"{incident}demobilization/",
        f"{incident}check-in/",
        f"{incident}requests/new/",
        f"{incident}approvals/",
        "/reports/",
        "/reports/finance/?incident=WA-2026-01",
        "/reports/demobilization/?incident=WA-2026-01",
        "/reports/logistics/?incident=WA-2026-01",
        "/reports/roster/?incident=WA-2026-01",
        "/imports/incident/",
    ):
        visit.open(path)
        visit.page.wait_for_load_state("networkidle")
        seen += visit.violations()
    # The finance page's cost-burn chart is inline SVG, drawn and styled without style attributes.
    visit.open("/reports/finance/?incident=WA-2026-01")
    assert visit.page.locator("svg.burn rect.bar").count() > 0
    seen += visit.violations()

    assert seen == [] and visit.console == [] and visit.errors == []
    visit.close()


def test_a_responders_phone_page_runs_without_a_csp_violation(browser: Any, site: str) -> None:
    visit = Visit(browser, site, "responder1", PHONE)
    page = visit.open("/me/")
    assert page.get_by_role("button", name="Accept").count() > 0
    seen = visit.violations()
    assert seen == [] and visit.console == [] and visit.errors == []
    visit.close()


def test_the_sign_in_page_and_the_api_docs_run_without_a_csp_violation(browser: Any, site: str) -> None:
    visit = Visit(browser, site, None, DESKTOP)
    visit.open("/login/")
    seen = visit.violations()
    page = visit.open("/api/docs/")
    # Swagger UI starts from its own script file and renders every operation of the schema.
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 20
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body")
    seen += visit.violations()
    assert seen == [] and visit.console == [] and visit.errors == []
    visit.close()


def test_the_admin_runs_without_a_csp_violation(browser: Any, site: str, incident_id: int) -> None:
    visit = Visit(browser, site, None, DESKTOP)
    page = visit.open("/admin/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    seen = visit.violations()
    for path in (
        "/admin/",
        "/admin/resources/expert/",
        f"/admin/incidents/incident/{incident_id}/change/",
        "/admin/axes/accessattempt/",
    ):
        visit.open(path)
        seen += visit.violations()
    # (Chromium asks the admin, which names no icon, for /favicon.ico: a 404 error, not a violation.)
    assert seen == [] and visit.console == []
    visit.close()


def test_an_inline_script_would_be_caught(browser: Any, site: str) -> None:
    """The listener is live: a script injected inline is refused and reported."""
    visit = Visit(browser, site, None, DESKTOP)
    page = visit.open("/login/")
    page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.ran = 1";
                   document.body.append(s);
                   const d = document.createElement("div"); d.innerHTML = '<p style="color: red">x</p>';
                   document.body.append(d); }"""
    )
    page.wait_for_function("window.__csp.length >= 2")
    assert page.evaluate("window.ran") is None
    found = " ".join(visit.violations())
    assert "script-src-elem blocked inline" in found and "style-src-attr blocked inline" in found
    visit.close()
