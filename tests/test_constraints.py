"""The database itself refuses bad rows, whichever door they come through."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents.models import Deployment, Event, HealthScreening
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def refused(make: Callable[[], Any]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        make()


def test_expert_email_is_unique_ignoring_case() -> None:
    factories.ExpertFactory(email="a.lee@example.org")
    refused(lambda: factories.ExpertFactory(email="A.Lee@example.org"))


def test_incident_number_is_unique() -> None:
    factories.IncidentFactory(number="WA-2026-01")
    refused(lambda: factories.IncidentFactory._meta.model.objects.create(number="WA-2026-01", name="x"))


def test_facility_code_is_unique_per_incident_only() -> None:
    first = factories.FacilityFactory(code="HOSP-SPK-01")
    refused(lambda: factories.FacilityFactory(code="HOSP-SPK-01", incident=first.incident))
    factories.FacilityFactory(code="HOSP-SPK-01", incident=factories.IncidentFactory())


@pytest.mark.parametrize(
    ("factory", "fields"),
    [
        (factories.RoleRequestFactory, {"quantity": 0}),
        (factories.ExpertFactory, {"latitude": 90.5}),
        (factories.ExpertFactory, {"longitude": -181}),
        (factories.FacilityFactory, {"latitude": -91}),
        (factories.ExpertFactory, {"hourly_rate": Decimal("-0.01")}),
        (factories.ExpertFactory, {"overtime_multiplier": Decimal("0.5")}),
        (factories.AgencyFactory, {"fringe_rate": Decimal("-0.1")}),
        (factories.IncidentFactory, {"mileage_rate": Decimal("-1")}),
        (factories.IncidentFactory, {"max_deployment_days": 40, "max_extended_days": 30}),
        (factories.CredentialFactory, {"verified": False}),  # verified_at without verification
        (factories.CredentialFactory, {"jurisdiction": "wa"}),
        (factories.FacilityFactory, {"state": "Wa"}),
    ],
)
def test_check_constraints_refuse_out_of_range_values(factory: Any, fields: dict[str, Any]) -> None:
    refused(lambda: factory(**fields))


@pytest.mark.parametrize(
    "factory", [factories.RoleRequestFactory, factories.AvailabilityFactory, factories.IncidentFactory]
)
def test_end_before_start_is_refused(factory: Any) -> None:
    start = timezone.localdate()
    refused(lambda: factory(start=start, end=start - timedelta(days=1)))


def test_money_and_hours_on_records(world: World) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status="on_site")
    refused(lambda: d.expenses.create(date=d.start, category="lodging", amount=Decimal("-5")))
    refused(lambda: d.time_entries.create(date=d.start, regular_hours=20, overtime_hours=5))
    d.time_entries.create(date=d.start, regular_hours=12, overtime_hours=12)
    refused(lambda: d.time_entries.create(date=d.start, regular_hours=1))  # one entry a day


@pytest.mark.parametrize(("temperature", "spo2"), [(Decimal("29.9"), 98), (Decimal("37"), 101)])
def test_screening_readings_stay_plausible(world: World, temperature: Decimal, spo2: int) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status="accepted")
    refused(
        lambda: HealthScreening.objects.create(
            deployment=d,
            screened_at=timezone.now(),
            screener=world.commander,
            temperature_c=temperature,
            spo2=spo2,
            result="pass",
        )
    )


def test_one_live_deployment_per_person_per_request(world: World) -> None:
    factories.DeploymentFactory(request=world.request, expert=world.alice, status="offered")
    refused(lambda: factories.DeploymentFactory(request=world.request, expert=world.alice))
    # After a decline the same person may be asked again.
    Deployment.objects.filter(expert=world.alice).update(status="declined")
    factories.DeploymentFactory(request=world.request, expert=world.alice)


def test_an_offer_always_has_a_deadline(world: World) -> None:
    refused(
        lambda: factories.DeploymentFactory(request=world.request, status="offered", offer_expires_at=None)
    )


def test_approval_fields_match_the_status(world: World) -> None:
    d = factories.DeploymentFactory(request=world.request, expert=world.alice, status="on_site")
    refused(lambda: d.time_entries.create(date=d.start, regular_hours=8, status="approved"))
    refused(lambda: d.time_entries.create(date=d.start, regular_hours=8, approved_at=timezone.now()))
    refused(lambda: d.expenses.create(date=d.start, category="lodging", amount=1, status="approved"))
    refused(lambda: d.expenses.create(date=d.start, category="mileage", amount=10))  # no distance
    d.expenses.create(
        date=d.start,
        category="mileage",
        amount=10,
        distance_km=24,
        status="approved",
        approved_by=world.finance,
        approved_at=timezone.now(),
    )


def test_unknown_status_is_refused(world: World) -> None:
    refused(lambda: factories.DeploymentFactory(request=world.request, status="lost"))


@pytest.mark.postgresql
def test_postgresql_refuses_overlapping_holding_deployments_rest_days_included(world: World) -> None:
    first = factories.DeploymentFactory(request=world.request, expert=world.alice, status="accepted")
    other = factories.RoleRequestFactory(facility=world.request.facility)
    # Starts the day after `first` ends: inside its two rest days.
    day_after = first.end + timedelta(days=1)
    with pytest.raises(IntegrityError, match="deployment_no_overlap_per_expert"), transaction.atomic():
        factories.DeploymentFactory(
            request=other, expert=world.alice, status="offered", start=day_after, end=day_after
        )
    # The same dates are fine while it is only a proposal, and for somebody else.
    factories.DeploymentFactory(request=other, expert=world.alice, start=day_after, end=day_after)
    factories.DeploymentFactory(
        request=other, expert=world.bob, status="offered", start=day_after, end=day_after
    )


def test_events_are_append_only(world: World) -> None:
    event = Event.objects.create(incident=world.incident, type="test.note", at=timezone.now())
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        Event.objects.filter(pk=event.pk).update(type="changed")
