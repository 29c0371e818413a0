"""The import pages: who may open them, uploads checked whole, the size limit enforced at the door."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pytest_django import Settings

from incidents.models import Facility, Incident
from resources.models import Expert
from tests import factories
from tests.conftest import World
from tests.test_import_incident import facility, incident_book, incident_row
from tests.test_import_roster import expert, roster

pytestmark = pytest.mark.django_db
ROSTER = reverse("import-roster")
INCIDENT = reverse("import-incident")


@pytest.fixture
def admin(world: World) -> User:
    factories.QualificationFactory(code="RN")
    return factories.UserFactory(username="admin", is_staff=True)


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


# --- Roster ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "superuser"])
def test_administrators_import_the_roster(
    world: World, admin: User, client: Client, tmp_path: Path, who: str
) -> None:
    client.force_login(admin if who == "admin" else world.superuser)
    assert client.get(ROSTER).status_code == 200
    page = client.post(ROSTER, {"file": upload(roster(tmp_path))})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Imported roster.xlsx" in html
    assert '<tr id="counts-experts"><th scope="row">experts</th><td>1</td><td>0</td><td>0</td>' in html
    assert Expert.objects.filter(email="ana@example.org").exists()


def test_a_dry_run_from_the_page_writes_nothing(admin: User, client: Client, tmp_path: Path) -> None:
    client.force_login(admin)
    page = client.post(ROSTER, {"file": upload(roster(tmp_path)), "dry_run": "on"})
    assert "Dry run: nothing was written" in page.content.decode()
    assert not Expert.objects.filter(email="ana@example.org").exists()


def test_the_page_lists_the_problems_and_writes_nothing(admin: User, client: Client, tmp_path: Path) -> None:
    client.force_login(admin)
    page = client.post(ROSTER, {"file": upload(roster(tmp_path, experts=[expert(latitude=95)]))})
    assert page.status_code == 400
    assert "<code>experts:2:latitude: latitude 95 is outside -90…90</code>" in page.content.decode()
    assert not Expert.objects.filter(email="ana@example.org").exists()


def test_an_unreadable_file_and_a_missing_file_are_explained(admin: User, client: Client) -> None:
    client.force_login(admin)
    page = client.post(ROSTER, {"file": SimpleUploadedFile("roster.xlsx", b"not a workbook")})
    assert page.status_code == 400
    assert "roster.xlsx is not an xlsx workbook or CSV file." in page.content.decode()
    page = client.post(ROSTER, {})
    assert page.status_code == 400 and "Choose a file to import." in page.content.decode()


def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    admin: User, client: Client, settings: Settings
) -> None:
    settings.IMPORT_MAX_BYTES = 100 * 1024
    client.force_login(admin)
    page = client.post(ROSTER, {"file": SimpleUploadedFile("big.xlsx", b"PK\x03\x04" + b"\x00" * 200 * 1024)})
    assert page.status_code == 413
    assert "an import takes files of at most 0.1 MB" in page.content.decode()


def test_an_upload_just_over_the_limit_is_stopped_while_it_is_parsed(
    admin: User, client: Client, settings: Settings
) -> None:
    settings.IMPORT_MAX_BYTES = 100 * 1024  # the body's declared length passes; the file does not
    client.force_login(admin)
    page = client.post(ROSTER, {"file": SimpleUploadedFile("big.xlsx", b"PK\x03\x04" + b"\x00" * 110 * 1024)})
    assert page.status_code == 413
    assert "an import takes files of at most 0.1 MB" in page.content.decode()


@pytest.mark.parametrize("who", ["commander", "alice_user", "outsider"])
def test_others_may_not_import_the_roster(world: World, client: Client, tmp_path: Path, who: str) -> None:
    client.force_login(getattr(world, who))
    assert client.get(ROSTER).status_code == 403
    assert client.post(ROSTER, {"file": upload(roster(tmp_path))}).status_code == 403
    assert client.get(reverse("import-template", args=["roster"])).status_code == 403
    assert not Expert.objects.filter(email="ana@example.org").exists()


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    assert client.get(ROSTER).status_code == 302
    assert client.post(INCIDENT).status_code == 302


def test_the_upload_needs_the_csrf_token(admin: User, tmp_path: Path) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.post(ROSTER, {"file": upload(roster(tmp_path))}).status_code == 403
    assert not Expert.objects.filter(email="ana@example.org").exists()


def test_the_template_downloads(admin: User, client: Client) -> None:
    client.force_login(admin)
    response = client.get(reverse("import-template", args=["roster"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="roster-template.xlsx"'
    assert response.content.startswith(b"PK\x03\x04")
    assert client.get(reverse("import-template", args=["nothing"])).status_code == 404


# --- Incident ----------------------------------------------------------------------------------------


def test_a_commander_imports_their_incident_from_the_page(
    world: World, admin: User, client: Client, tmp_path: Path
) -> None:
    client.force_login(world.commander)
    assert client.get(INCIDENT).status_code == 200
    path = incident_book(
        tmp_path, incident=[incident_row(number="WA-2026-01")], facilities=[facility("NEW-01")], requests=[]
    )
    page = client.post(INCIDENT, {"file": upload(path)})
    assert page.status_code == 200, page.content.decode()
    assert Facility.objects.filter(incident=world.incident, code="NEW-01").exists()


@pytest.mark.parametrize("number", ["OR-2026-07", "NEW-2026-01"])
def test_a_commander_may_not_import_another_or_a_new_incident(
    world: World, admin: User, client: Client, tmp_path: Path, number: str
) -> None:
    client.force_login(world.commander)
    page = client.post(
        INCIDENT, {"file": upload(incident_book(tmp_path, incident=[incident_row(number=number)]))}
    )
    assert page.status_code == 403
    assert f"You may not import incident {number}" in page.content.decode()
    assert not Facility.objects.filter(code="HOSP-SPK-01").exists()


@pytest.mark.parametrize("who", ["viewer", "finance", "alice_user", "outsider"])
def test_people_who_command_nothing_cannot_open_the_incident_import(
    world: World, client: Client, who: str
) -> None:
    client.force_login(getattr(world, who))
    assert client.get(INCIDENT).status_code == 403


def test_an_administrator_creates_an_incident_from_the_page(
    admin: User, client: Client, tmp_path: Path
) -> None:
    client.force_login(admin)
    page = client.post(INCIDENT, {"file": upload(incident_book(tmp_path))})
    assert page.status_code == 200
    assert Incident.objects.filter(number="WA-2026-09").exists()
