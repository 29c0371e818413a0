"""GET /api/reports/{kind}/: who may download what, the files it answers, and every bad input."""

from __future__ import annotations

import warnings
from io import BytesIO

import openpyxl
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import World
from tests.test_reports_world import START, entry, on_site

pytestmark = pytest.mark.django_db
KINDS = ["finance", "demobilization", "logistics", "roster"]


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def get(user: User | None, kind: str, **params: object):  # type: ignore[no-untyped-def]
    params.setdefault("incident", "WA-2026-01")
    params.setdefault("format", "xlsx")
    return client_for(user).get(reverse("api-report", args=[kind]), params)


@pytest.fixture
def worked(world: World) -> World:
    d = on_site(world, world.alice)
    entry(world, d, START, "8.00")
    return world


ALLOWED = {
    "finance": {"commander", "finance", "superuser"},
    "demobilization": {"commander", "finance", "viewer", "superuser"},
    "logistics": {"commander", "finance", "viewer", "superuser"},
    "roster": {"commander", "finance", "viewer", "superuser"},
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "who", ["commander", "finance", "viewer", "superuser", "other_commander", "outsider", "alice_user"]
)
def test_the_permission_matrix(worked: World, kind: str, who: str) -> None:
    response = get(getattr(worked, who), kind)
    if who in ALLOWED[kind]:
        assert response.status_code == 200, response.content
    elif who == "viewer":
        assert response.status_code == 403
        assert (
            response.json()["detail"]
            == "The finance report of WA-2026-01 is for its finance officers and commanders."
        )
    else:  # not a member: the incident does not exist for them
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "detail": "No incident 'WA-2026-01' that you can see.",
        }


@pytest.mark.parametrize("kind", KINDS)
def test_anonymous_is_refused(worked: World, kind: str) -> None:
    assert get(None, kind).status_code in (401, 403)


def test_xlsx_is_an_attachment_named_after_the_incident_and_report(worked: World) -> None:
    response = get(worked.finance, "finance")
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"].startswith('attachment; filename="WA-2026-01-finance-')
    assert response["Content-Disposition"].endswith('.xlsx"')
    body = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(body)
    book = openpyxl.load_workbook(BytesIO(body))
    assert book.sheetnames == ["Summary", "Labor", "By person", "Expenses", "Daily burn"]


def test_csv_is_one_sheet_utf8_with_bom(worked: World) -> None:
    response = get(worked.finance, "finance", format="csv", sheet="expenses")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"].endswith('.csv"')
        and "-finance-expenses-" in response["Content-Disposition"]
    )
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbfDate,Name,Agency,Cost code,Facility,Category")
    labor = b"".join(get(worked.finance, "finance", format="csv").streaming_content)
    assert labor.startswith(b"\xef\xbb\xbfDate,Name,Agency,Cost code,Job title")


def test_filters_travel_in_the_query(worked: World) -> None:
    response = get(worked.finance, "finance", format="csv", **{"from": "2030-01-01"})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.count("\r\n") == 1  # the header alone


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"incident": ""}, "incident"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-12-10", "to": "2026-12-01"}, "to"),
        ({"format": ""}, "format"),
        ({"format": "pdf"}, "format"),
        ({"format": "csv", "sheet": "everything"}, "sheet"),
        ({"status": "paid"}, "status"),
        ({"facility": "NOPE-01"}, "facility"),
        ({"facility_id": "abc"}, "facility_id"),
        ({"agency": "nobody"}, "agency"),
        ({"agency_id": "0"}, "agency_id"),
        ({"facilty": "HOSP-SEA-01"}, "facilty"),
    ],
)
def test_bad_parameters_answer_400_naming_them(worked: World, params: dict[str, str], field: str) -> None:
    response = get(worked.finance, "finance", **params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_input" and body["field"] == field
    assert body["detail"].startswith(f"{field}:")


def test_a_missing_incident_is_named(worked: World) -> None:
    response = client_for(worked.finance).get(reverse("api-report", args=["finance"]), {"format": "xlsx"})
    assert response.status_code == 400 and response.json()["field"] == "incident"


def test_an_unknown_report_or_incident_is_404(worked: World) -> None:
    assert get(worked.finance, "payroll").status_code == 404
    assert get(worked.finance, "finance", incident="XX-0000-00").json()["error"] == "not_found"


def test_the_schema_describes_the_report_download(worked: World) -> None:
    schema = client_for(worked.commander).get(reverse("api-schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/reports/{kind}/"]["get"]
    assert operation["operationId"] == "reports_retrieve"
    names = {p["name"] for p in operation["parameters"]}
    assert {"kind", "incident", "format", "from", "to", "status", "facility", "agency", "sheet"} <= names


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_file_streams_in_blocks_from_an_async_iterator(world: World) -> None:
    # Django reads a synchronous iterator whole (with a warning) before sending it over ASGI.
    client = AsyncClient()
    await client.aforce_login(world.finance)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="StreamingHttpResponse must consume")
        response = await client.get(
            reverse("api-report", args=["roster"]), {"incident": "WA-2026-01", "format": "csv"}
        )
        assert response.status_code == 200 and response.is_async
        body = b"".join([block async for block in response.streaming_content])
    assert body.startswith(b"\xef\xbb\xbfName,Email")
    # The view ran in asgiref's thread; its connection would outlive the test (PostgreSQL then
    # refuses to drop the test database).
    await sync_to_async(connections.close_all)()
