"""Report pages: who sees them, the filter form, pagination and the download links."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.test import Client
from django.urls import reverse

from reports.views import PER_PAGE
from tests import factories
from tests.conftest import World
from tests.test_reports_world import START, entry, on_site

pytestmark = pytest.mark.django_db
KINDS = ["finance", "demobilization", "logistics", "roster"]


def page(client: Client, kind: str, **params: str):  # type: ignore[no-untyped-def]
    params.setdefault("incident", "WA-2026-01")
    return client.get(reverse("report", args=[kind]), params)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("who", ["commander", "finance", "viewer", "superuser", "outsider", "alice_user"])
def test_who_sees_each_report_page(world: World, client: Client, kind: str, who: str) -> None:
    client.force_login(getattr(world, who))
    status = page(client, kind).status_code
    if who in ("outsider", "alice_user"):
        assert status == 404
    elif who == "viewer" and kind == "finance":
        assert status == 403
    else:
        assert status == 200


def test_anonymous_is_sent_to_sign_in(world: World, client: Client) -> None:
    response = page(client, "finance")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_index_lists_the_reports_each_role_may_open(world: World, client: Client) -> None:
    client.force_login(world.viewer)
    html = client.get(reverse("reports")).content.decode()
    assert "/reports/logistics/?incident=WA-2026-01" in html and "/reports/finance/" not in html
    client.force_login(world.finance)
    assert "/reports/finance/?incident=WA-2026-01" in client.get(reverse("reports")).content.decode()


def test_without_an_incident_the_form_asks_for_one(world: World, client: Client) -> None:
    client.force_login(world.commander)
    response = client.get(reverse("report", args=["logistics"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="WA-2026-01">' in html and "OR-2026-07" not in html  # only their incidents


def test_bad_filters_show_the_form_with_the_reason(world: World, client: Client) -> None:
    client.force_login(world.commander)
    response = page(client, "roster", **{"from": "not a date"})
    assert response.status_code == 400
    assert "from: Enter a valid date." in response.content.decode()


def test_the_form_offers_the_incidents_facilities_and_keeps_the_choices(world: World, client: Client) -> None:
    on_site(world, world.alice)
    client.force_login(world.commander)
    code = world.request.facility.code
    html = page(client, "roster", facility=code, status="on_site").content.decode()
    assert f'<option value="{code}" selected>' in html
    assert re.search(r'value="on_site" id="[^"]+" checked>', html)
    assert re.search(r'value="released" id="[^"]+">', html)
    csv_link = re.search(r'href="/api/reports/roster/\?([^"]*format=csv[^"]*)"', html)
    assert csv_link is not None
    assert parse_qs(csv_link.group(1).replace("&amp;", "&")) == {
        "incident": ["WA-2026-01"],
        "facility": [code],
        "status": ["on_site"],
        "format": ["csv"],
    }


def test_long_tables_are_paginated_keeping_the_filters(world: World, client: Client) -> None:
    for _ in range(PER_PAGE + 3):
        d = on_site(world, factories.ExpertFactory())
        entry(world, d, START + timedelta(days=1), "8.00")
    client.force_login(world.finance)
    first = page(client, "finance").content.decode()
    assert f"Page 1 of 2 · {PER_PAGE + 3} rows" in first
    assert (
        "?incident=WA-2026-01&amp;status=approved&amp;page=2" not in first
    )  # status is the default, not in the query
    assert "?incident=WA-2026-01&amp;page=2" in first
    second = page(client, "finance", page="2").content.decode()
    assert "Page 2 of 2" in second
