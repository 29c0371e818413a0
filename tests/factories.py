"""factory_boy factories: one small, valid world that each test bends to its case."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from incidents.models import (
    Deployment,
    Facility,
    Incident,
    IncidentMembership,
    RoleRequest,
)
from resources.models import Agency, Availability, Credential, Expert, Qualification

START = date(2026, 12, 1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class AgencyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agency
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"agency-{n}")
    name = factory.Sequence(lambda n: f"Agency {n}")
    fringe_rate = Decimal("0.3000")


class QualificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Qualification
        django_get_or_create = ("code",)

    code = "RN"
    name = "Registered Nurse"
    kind = Qualification.Kind.LICENSE
    jurisdictional = True


class ExpertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Expert

    email = factory.Sequence(lambda n: f"expert{n}@example.org")
    first_name = factory.Sequence(lambda n: f"Pat{n}")
    last_name = "Lee"
    agency = factory.SubFactory(AgencyFactory)
    home_place = "Tacoma"
    latitude = 47.2529
    longitude = -122.4443
    max_travel_km = 400
    hourly_rate = Decimal("52.00")


class CredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Credential

    expert = factory.SubFactory(ExpertFactory)
    qualification = factory.SubFactory(QualificationFactory)
    number = factory.Sequence(lambda n: f"RN{60000000 + n}")
    jurisdiction = "WA"
    verified = True
    verified_at = factory.LazyFunction(timezone.now)


class AvailabilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Availability

    expert = factory.SubFactory(ExpertFactory)
    start = START - timedelta(days=30)
    end = START + timedelta(days=90)


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident
        django_get_or_create = ("number",)

    number = factory.Sequence(lambda n: f"WA-2026-{n:02d}")
    name = "Respiratory surge"
    kind = Incident.Kind.PANDEMIC
    start = START - timedelta(days=10)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IncidentMembership

    user = factory.SubFactory(UserFactory)
    incident = factory.SubFactory(IncidentFactory)
    role = IncidentMembership.Role.COMMANDER


class FacilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Facility

    incident = factory.SubFactory(IncidentFactory)
    code = factory.Sequence(lambda n: f"HOSP-SEA-{n:02d}")
    name = "Harborview Medical Center"
    kind = Facility.Kind.HOSPITAL
    state = "WA"
    county = "King"
    latitude = 47.6043
    longitude = -122.3240


class RoleRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RoleRequest

    facility = factory.SubFactory(FacilityFactory)
    qualification = factory.SubFactory(QualificationFactory)
    quantity = 2
    start = START
    end = START + timedelta(days=13)
    priority = RoleRequest.Priority.CRITICAL


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment written straight to a state, for tests that start mid-workflow."""

    class Meta:
        model = Deployment

    request = factory.SubFactory(RoleRequestFactory)
    expert = factory.SubFactory(ExpertFactory)
    status = Deployment.Status.PROPOSED
    start = factory.LazyAttribute(lambda d: d.request.start)
    end = factory.LazyAttribute(lambda d: d.request.end)
    rest_until = factory.LazyAttribute(lambda d: d.end + timedelta(days=2))
    distance_km = 41.7
    offer_expires_at = factory.LazyAttribute(
        lambda d: timezone.now() + timedelta(hours=24) if d.status == Deployment.Status.OFFERED else None
    )
