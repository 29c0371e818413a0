"""Security at the doors: sign-in throttling, the Content-Security-Policy header, the deploy
checks, CSRF on every form, and the one-tap offer links.

The browser half of the CSP lives in tests/browser/test_csp.py; hostile uploads in
tests/test_uploads_security.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.core import signing
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from deploy_tracker.settings import _tile_source
from incidents import offers, workflow
from incidents.models import Deployment, EquipmentIssue, Expense, TimeEntry
from tests import factories
from tests.conftest import World
from tests.test_settings import production, run

Status = Deployment.Status
PASSWORD = "correct horse battery staple"  # every factory user's
ROOT = Path(__file__).resolve().parent.parent


# --- Sign-in throttling -------------------------------------------------------------------------------


def limit() -> int:
    failures: int = django_settings.AXES_FAILURE_LIMIT
    return failures


def fail(client: Client, url: str, username: str = "alice", **extra: Any) -> Any:
    if url == "/api/auth/token/":
        body = {"username": username, "password": "wrong"}
        return client.post(url, body, content_type="application/json", **extra)
    return client.post(url, {"username": username, "password": "wrong"}, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_login_pages_lock_a_username_and_address_out_after_the_limit(
    world: World, client: Client, url: str
) -> None:
    world.alice_user.is_staff = True  # so the admin would let her in
    world.alice_user.save()
    for _ in range(limit() - 1):
        assert fail(client, url).status_code == 200  # the form again, with its error
    locked = fail(client, url)
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    page = locked.content.decode()
    assert "Too many failed sign-ins for this username from your address" in page
    assert "blocked for 15 minutes from the last failed try, even with the right password" in page
    # Now even the right password is refused, and nobody is signed in.
    right = client.post(url, {"username": "alice", "password": PASSWORD})
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    assert "default-src 'self'" in right["Content-Security-Policy"]


@pytest.mark.django_db
def test_the_token_endpoint_locks_out_with_the_apis_error_shape(world: World, client: Client) -> None:
    url = reverse("api-token")
    first = fail(client, url)
    assert first.status_code == 400 and "non_field_errors" in first.json()
    for _ in range(limit() - 2):
        fail(client, url)
    locked = fail(client, url)
    assert locked.status_code == 429 and locked["Content-Type"] == "application/json"
    assert set(locked.json()) == {"error", "detail"} and locked.json()["error"] == "locked_out"
    assert locked["Retry-After"] == str(15 * 60)
    right = client.post(url, {"username": "alice", "password": PASSWORD}, content_type="application/json")
    assert right.status_code == 429 and not Token.objects.filter(user=world.alice_user).exists()


@pytest.mark.django_db
def test_the_lockout_is_per_username_and_address(world: World, client: Client) -> None:
    for _ in range(limit()):
        fail(client, "/login/")
    assert fail(client, "/login/").status_code == 429
    # Alice from another address, and Bob from the same one, still sign in.
    other_address = client.post(
        "/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.2"
    )
    assert other_address.status_code == 302
    bob = Client().post("/login/", {"username": "bob", "password": PASSWORD})
    assert bob.status_code == 302


@pytest.mark.django_db
def test_a_good_sign_in_clears_the_failures(world: World, client: Client) -> None:
    url = reverse("api-token")
    for _ in range(limit() - 1):
        fail(client, url)
    ok = client.post(url, {"username": "alice", "password": PASSWORD}, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["token"]
    world.alice_user.refresh_from_db()
    assert world.alice_user.last_login is not None  # a token handed out is a sign-in
    for _ in range(limit() - 1):
        assert fail(client, url).status_code == 400  # counted from zero again
    assert fail(client, url).status_code == 429


@pytest.mark.django_db
def test_the_lockout_ends_after_the_cool_off(world: World, client: Client) -> None:
    for _ in range(limit()):
        fail(client, "/login/")
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 429
    # Sixteen minutes pass (the attempts' clock is moved back: the cool-off is 15 minutes).
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert client.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_lockout_answers_on_the_asgi_path_too() -> None:
    """Daphne runs the middleware asynchronously, where Axes calls the lockout answer differently."""
    await sync_to_async(factories.UserFactory)(username="alice")
    client = AsyncClient()
    for _ in range(limit()):
        response = await client.post("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429 and "blocked for 15 minutes" in response.content.decode()
    token = await client.post(
        "/api/auth/token/", {"username": "alice", "password": PASSWORD}, content_type="application/json"
    )
    assert token.status_code == 429 and token.json()["error"] == "locked_out"
    await sync_to_async(connections.close_all)()  # the views' thread lets go of the test database


@pytest.mark.django_db
def test_sign_ins_without_a_request_skip_the_throttle_and_count_nothing(world: World) -> None:
    """Tests' Client.login and a shell have no client address; they reach the password check."""
    for _ in range(limit() + 2):
        assert authenticate(username="alice", password="wrong") is None
    assert authenticate(username="alice", password=PASSWORD) == world.alice_user
    assert Client().login(username="alice", password=PASSWORD)
    assert not AccessAttempt.objects.exists()


def test_the_limit_and_cool_off_come_from_the_environment() -> None:
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()))"
    )
    assert run("-c", show, LOGIN_FAILURE_LIMIT="", LOGIN_COOLOFF_MINUTES="").stdout.split() == ["5", "900"]
    changed = run("-c", show, LOGIN_FAILURE_LIMIT="10", LOGIN_COOLOFF_MINUTES="60")
    assert changed.stdout.split() == ["10", "3600"]
    bad = run("manage.py", "check", LOGIN_FAILURE_LIMIT="0")
    assert bad.returncode != 0 and "LOGIN_FAILURE_LIMIT=0 must be at least 1" in bad.stderr


def test_the_token_endpoint_documents_its_429(client: Client) -> None:
    schema = client.get("/api/schema/?format=json").json()
    answers = schema["paths"]["/api/auth/token/"]["post"]["responses"]
    assert answers["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


# --- Content-Security-Policy -------------------------------------------------------------------------


def policy(header: str) -> dict[str, list[str]]:
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


@pytest.mark.django_db
def test_every_answer_carries_the_strict_policy(client: Client) -> None:
    expected = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", *_tile_source(django_settings.MAP_TILES_URL)],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    for url, status in [
        ("/login/", 200),
        ("/api/incidents/", 403),
        ("/no/such/page/", 404),
        ("/api/docs/", 200),
    ]:
        response = client.get(url)
        assert response.status_code == status, url
        assert policy(response["Content-Security-Policy"]) == expected, url
    assert "unsafe" not in client.get("/login/")["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("tiles", "source"),
    [
        ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
        ("https://{s}.tiles.example.org:8443/osm/{z}/{x}/{y}.png", "https://*.tiles.example.org:8443"),
        ("none", None),
        ("/tiles/{z}/{x}/{y}.png", None),
    ],
    ids=["osm", "subdomains-and-port", "none", "own-path"],
)
def test_the_map_tile_host_is_the_only_other_image_source(tiles: str, source: str | None) -> None:
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print([str(v) for v in s.SECURE_CSP['img-src']])"
    )
    printed = run("-c", show, MAP_TILES_URL=tiles)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == str(["'self'", "data:", *([source] if source else [])])


@pytest.mark.parametrize("tiles", ["javascript:alert(1)", "ftp://tiles.example.org/{z}/{x}/{y}.png"])
def test_a_tile_url_that_is_not_http_stops_the_start(tiles: str) -> None:
    result = run("manage.py", "check", MAP_TILES_URL=tiles)
    assert (
        result.returncode != 0 and "MAP_TILES_URL=" in result.stderr and "must be an http(s)" in result.stderr
    )


def test_the_api_docs_run_from_files_not_inline_code(client: Client) -> None:
    page = client.get("/api/docs/").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) and "<style" not in page
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert any("?script" in s for s in scripts)
    start = client.get(next(s for s in scripts if "?script" in s).replace("&amp;", "&"))
    assert start.status_code == 200 and start["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in start.content.decode()


TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
INLINE = {
    "an inline style attribute": re.compile(r"""\sstyle\s*=""", re.I),
    "a <style> element": re.compile(r"<style[\s>]", re.I),
    "an inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "an event-handler attribute": re.compile(r"""\son[a-z]+\s*=\s*["']""", re.I),
    "a javascript: URL": re.compile(r"javascript:", re.I),
}


def test_no_template_has_inline_script_style_or_handlers() -> None:
    """What the policy would refuse, caught before a browser has to: every page of the app."""
    templates = [p for folder in TEMPLATE_DIRS for p in folder.rglob("*.html")]
    assert len(templates) > 20
    found = [
        f"{path.relative_to(ROOT)}: {what}"
        for path in templates
        for what, pattern in INLINE.items()
        if pattern.search(path.read_text())
    ]
    assert found == []


# --- The deploy checks --------------------------------------------------------------------------------


def test_production_settings_pass_check_deploy_with_nothing_silenced() -> None:
    variables = production(EMAIL_URL="smtp+tls://deploy:example@mail.example.org:587")
    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **variables)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0, "
        "s.SECURE_SSL_REDIRECT, 'axes.middleware.AxesMiddleware' in s.MIDDLEWARE, bool(s.SECURE_CSP))"
    )
    assert run("-c", show, **variables).stdout.split() == ["False"] + ["True"] * 6


# --- CSRF on every form --------------------------------------------------------------------------------


class Forms(HTMLParser):
    """The POST forms of a page, each with the values a browser would send (every box ticked)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.open: dict[str, Any] | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.open = {
                "method": a.get("method", "get").lower(),
                "action": a.get("action", ""),
                "fields": {},
            }
            self.forms.append(self.open)
            if "id" in a:
                self.by_id[a["id"]] = self.open
            return
        owner = self.by_id.get(a["form"]) if "form" in a else self.open
        if owner is None or "name" not in a:
            return
        fields = owner["fields"]
        if tag == "input" and a.get("type") != "file":
            ticked = "on" if a.get("type") in ("checkbox", "radio") else ""
            fields.setdefault(a["name"], a.get("value") or FILL.get(a["name"]) or ticked)
        elif tag == "button" and a.get("type", "submit") == "submit":
            fields.setdefault(a["name"], a.get("value", ""))
        elif tag == "select":
            fields.setdefault(a["name"], FILL.get(a["name"], ""))
        elif tag == "textarea":
            fields.setdefault(a["name"], FILL.get(a["name"], "text"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.open = None


# What a person would type; posted as is, each form would change something.
FILL = {
    "temperature_c": "36.8",
    "spo2": "98",
    "regular_hours": "7.5",
    "overtime_hours": "0",
    "amount": "12.50",
    "category": "lodging",
    "reason": "cannot make it",
    "username": "alice",
    "password": PASSWORD,
    "notes": "",
    "description": "hotel",
    "radius_km": "",
}


def post_forms(client: Client, url: str) -> list[tuple[str, dict[str, str]]]:
    page = client.get(url)
    assert page.status_code == 200, url
    parser = Forms()
    parser.feed(page.content.decode())
    posts = [f for f in parser.forms if f["method"] == "post"]
    assert posts, f"{url} has no POST form"
    return [(urljoin(url, f["action"]), f["fields"]) for f in posts]


def everything() -> dict[str, list[dict[str, Any]]]:
    """Every row the app keeps, to prove a refused post changed nothing at all."""
    models = [
        *apps.get_app_config("incidents").get_models(),
        *apps.get_app_config("resources").get_models(),
        User,
        Session,
        Token,
        AccessAttempt,
    ]
    return {m._meta.label: list(m.objects.order_by("pk").values()) for m in models}


@pytest.mark.django_db
def test_every_post_form_carries_the_csrf_token_and_nothing_happens_without_it(world: World) -> None:
    today = timezone.localdate()
    now_request = factories.RoleRequestFactory(
        facility=world.request.facility,
        start=today - timedelta(days=3),
        end=today + timedelta(days=2),
        quantity=5,
    )
    factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.OFFERED)
    # The emailed link of someone without a login (Alice answers hers on her page).
    linked = factories.DeploymentFactory(request=world.request, status=Status.OFFERED)
    on_site = factories.DeploymentFactory(request=now_request, expert=world.alice, status=Status.ON_SITE)
    factories.DeploymentFactory(request=now_request, expert=world.bob, status=Status.ACCEPTED, start=today)
    factories.DeploymentFactory(request=world.request, status=Status.PROPOSED)
    EquipmentIssue.objects.create(deployment=on_site, item="Radio", issued_at=timezone.now())
    TimeEntry.objects.create(deployment=on_site, date=today, regular_hours=8)
    Expense.objects.create(deployment=on_site, date=today, category="lodging", amount=120)
    incident = f"/incidents/{world.incident.pk}/"
    pages = {
        None: ["/login/", "/admin/login/", reverse("offer-answer", args=[offers.answer_token(linked)])],
        world.alice_user: ["/me/"],
        world.commander: [
            incident,
            f"{incident}matching/",
            f"{incident}demobilization/",
            f"{incident}check-in/",
            f"{incident}requests/new/",
            f"{incident}requests/{world.request.pk}/",
            f"{incident}approvals/",
            "/imports/incident/",
            "/reports/finance/?incident=WA-2026-01",
        ],
        world.superuser: ["/imports/roster/", "/admin/"],
    }
    checked: list[tuple[Client, Any, str, str, dict[str, str]]] = []
    for user, urls in pages.items():
        client = Client(enforce_csrf_checks=True)  # keeps the CSRF cookie of the pages it reads
        if user:
            client.force_login(user)
        for url in urls:
            for action, fields in post_forms(client, url):
                assert fields.get("csrfmiddlewaretoken"), f"{url}: a form to {action} has no CSRF token"
                without = {k: v for k, v in fields.items() if k != "csrfmiddlewaretoken"}
                before = everything()
                refused = client.post(action, without)
                assert refused.status_code == 403, f"{url} → {action}: {refused.status_code}"
                assert everything() == before, f"{url} → {action} changed something"
                checked.append((client, user, url, action, fields))
    assert len(checked) >= 25

    # The same posts with their token go through (so the 403s were CSRF's), and change things.
    changed = set()
    for client, user, _url, action, fields in checked:
        # As the same person again (an earlier form may have signed out), with the CSRF secret of
        # the cookie as the token: signing in renews it, so the page's copy may be stale.
        if user:
            client.force_login(user)
        token = client.cookies["csrftoken"].value
        before = everything()
        assert client.post(action, {**fields, "csrfmiddlewaretoken": token}).status_code != 403, action
        if everything() != before:
            path = urlsplit(action).path
            changed.add("/offers/" if path.startswith("/offers/") else re.sub(r"\d+", "N", path))
    assert {
        "/offers/",
        "/me/deployments/N/accept/",
        "/me/deployments/N/time/",
        "/incidents/N/check-in/",
        "/incidents/N/approvals/",
        "/incidents/N/matching/",
        "/logout/",
    } <= changed


# --- The offer links --------------------------------------------------------------------------------------
# tests/test_offers_and_pages.py has: only a POST answers, an answered link refuses a second
# answer, an expired deadline, a tampered signature, someone else signed in. Added here: the page
# of a used link offers nothing to press, a link dies when the offer is made again, and a link
# signed with another key (what a forger has) is refused.


@pytest.mark.django_db
def test_a_used_link_shows_no_form_any_more(
    world: World, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        d = workflow.offer(
            workflow.propose(world.request, world.alice, by=world.commander), by=world.commander
        )
    url = reverse("offer-answer", args=[offers.answer_token(d)])
    assert client.post(url, {"answer": "accept"}).status_code == 200
    again = client.get(url)
    assert again.status_code == 409 and "already answered" in again.content.decode()
    assert "<form" not in again.content.decode().split("<main>")[1]


@pytest.mark.django_db
def test_a_link_dies_when_the_offer_is_made_again(world: World, client: Client) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.OFFERED)
    old = reverse("offer-answer", args=[offers.answer_token(d)])
    assert client.get(old).status_code == 200
    # The offer goes out again with a new deadline (a fresh email, a fresh link).
    assert d.offer_expires_at is not None
    Deployment.objects.filter(pk=d.pk).update(offer_expires_at=d.offer_expires_at + timedelta(hours=12))
    d.refresh_from_db()
    refused = client.post(old, {"answer": "accept"})
    assert refused.status_code == 409 and "earlier offer" in refused.content.decode()
    assert (
        client.post(reverse("offer-answer", args=[offers.answer_token(d)]), {"answer": "accept"}).status_code
        == 200
    )


@pytest.mark.django_db
def test_a_link_signed_with_another_key_is_refused(world: World, client: Client) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status=Status.OFFERED)
    assert d.offer_expires_at is not None
    payload = {"d": d.pk, "e": world.alice.pk, "x": int(d.offer_expires_at.timestamp())}
    forged = signing.Signer(key="a guess at the secret key", salt=offers.SALT).sign_object(
        payload, compress=True
    )
    genuine = offers.answer_token(d)
    assert forged.split(":")[0] == genuine.split(":")[0]  # the same offer, only the signature differs
    response = client.post(reverse("offer-answer", args=[forged]), {"answer": "accept"})
    assert response.status_code == 403 and "not valid" in response.content.decode()
    d.refresh_from_db()
    assert d.status == Status.OFFERED
