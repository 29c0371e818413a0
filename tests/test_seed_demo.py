"""The demo response: rich enough that every persona sees real work, and safe to load twice."""

from __future__ import annotations

from io import StringIO
from itertools import pairwise

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from fixtures.demo import INCIDENT_NUMBER, load_demo
from incidents.access import visible
from incidents.models import (
    Deployment,
    EquipmentIssue,
    Event,
    Expense,
    Facility,
    HealthScreening,
    IncidentMembership,
    RoleRequest,
    TimeEntry,
)
from resources.models import Availability, Credential, Expert, Qualification

pytestmark = pytest.mark.django_db
MODELS = (
    Expert,
    Credential,
    Availability,
    Qualification,
    Facility,
    RoleRequest,
    Deployment,
    Event,
    HealthScreening,
    TimeEntry,
    Expense,
    EquipmentIssue,
    IncidentMembership,
)


def counts() -> dict[str, int]:
    return {m.__name__: m.objects.count() for m in MODELS}


def test_the_demo_is_a_statewide_response_with_work_in_every_state() -> None:
    load_demo()
    assert Expert.objects.count() >= 150
    assert Qualification.objects.count() >= 20
    assert Facility.objects.filter(incident__number=INCIDENT_NUMBER).count() >= 30
    assert set(Facility.objects.values_list("kind", flat=True)) >= {
        "hospital",
        "long_term_care",
        "alternate_care_site",
        "vaccination_site",
    }
    assert set(RoleRequest.objects.values_list("priority", flat=True)) == {"critical", "high", "normal"}
    assert set(Deployment.objects.values_list("status", flat=True)) == set(Deployment.Status.values)
    today = timezone.localdate()
    assert Credential.objects.filter(expires_on__lt=today).exists()
    assert Credential.objects.filter(verified=False).exists()
    assert Credential.objects.exclude(jurisdiction__in=["", "WA"]).exists()
    assert HealthScreening.objects.filter(result="fail").exists()
    assert TimeEntry.objects.exists()
    assert Expense.objects.filter(category="mileage").exists()


def test_every_deployment_has_the_event_log_that_explains_its_state() -> None:
    load_demo()
    logs = {}
    for deployment_id, before, after in Event.objects.order_by("id").values_list(
        "deployment_id", "data__from", "data__to"
    ):
        logs.setdefault(deployment_id, []).append((before, after))
    for d in Deployment.objects.all():
        log = logs[d.pk]
        assert log[0] == (None, "proposed")
        assert all(a[1] == b[0] for a, b in pairwise(log)), log
        assert log[-1][1] == d.status
    # Events are dated when they happened, in order, and never in the future.
    ats = list(Event.objects.order_by("id").values_list("at", flat=True))
    assert max(ats) <= timezone.now()
    assert min(ats) < timezone.now() - timezone.timedelta(days=20)


def test_each_persona_sees_real_work_at_first_login() -> None:
    load_demo(password="s3cret-demo")
    for username in ("commander", "finance", "viewer"):
        user = authenticate(username=username, password="s3cret-demo")
        assert user is not None
        assert visible(user, Deployment.objects.all()).count() > 50
    now = timezone.now()
    for k in range(1, 6):
        user = authenticate(username=f"responder{k}", password="s3cret-demo")
        assert user is not None, k
        mine = visible(user, Deployment.objects.all())
        assert mine.filter(status="offered", offer_expires_at__gt=now).exists(), k
        assert mine.filter(status="released").exists(), k
        assert mine.count() == Deployment.objects.filter(expert__user=user).exclude(status="proposed").count()
    admin = authenticate(username="admin", password="s3cret-demo")
    assert admin is not None and admin.is_superuser


def test_loading_twice_changes_nothing_and_a_bigger_roster_only_adds_people() -> None:
    load_demo()
    first = counts()
    emails = set(Expert.objects.values_list("email", flat=True))
    load_demo()
    assert counts() == first
    load_demo(experts=200)
    after = counts()
    assert after["Expert"] == first["Expert"] + 20
    assert emails < set(Expert.objects.values_list("email", flat=True))
    assert {k: v for k, v in after.items() if k not in {"Expert", "Credential", "Availability"}} == {
        k: v for k, v in first.items() if k not in {"Expert", "Credential", "Availability"}
    }


def test_reset_reloads_the_same_demo() -> None:
    load_demo()
    first = counts()
    statuses = dict(Deployment.objects.values_list("status").annotate(n=Count("id")))
    load_demo(reset=True)
    assert counts() == first
    assert dict(Deployment.objects.values_list("status").annotate(n=Count("id"))) == statuses


def test_the_command_prints_the_logins_and_warns_about_the_password() -> None:
    out = StringIO()
    call_command("seed_demo", "--password", "pw-for-test", stdout=out)
    text = out.getvalue()
    for login in ("commander", "finance", "viewer", "responder1", "responder5", "admin"):
        assert login in text
    assert "password 'pw-for-test'" in text
    assert f"Incident {INCIDENT_NUMBER} created" in text


def test_the_command_refuses_a_tiny_roster() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 10"):
        call_command("seed_demo", "--experts", "3", stdout=StringIO())
