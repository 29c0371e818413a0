"""The admin: every model opens, lists stay within a query budget, state moves only through workflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.messages import get_messages
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from incidents import events, workflow
from incidents.admin import WORKFLOW_FIELDS
from incidents.models import (
    Deployment,
    EquipmentIssue,
    Event,
    Exclusion,
    Expense,
    Facility,
    HealthScreening,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from resources.models import Agency, Availability, Credential, Expert, Qualification
from tests import factories
from tests.conftest import World, offered

pytestmark = pytest.mark.django_db

Status = Deployment.Status

MODELS: list[type[models.Model]] = [
    Agency,
    Qualification,
    Expert,
    Credential,
    Availability,
    Incident,
    IncidentMembership,
    Facility,
    RoleRequest,
    Deployment,
    Event,
    HealthScreening,
    TimeEntry,
    Expense,
    EquipmentIssue,
    Exclusion,
    Job,
]
READ_ONLY = {Event, HealthScreening, Job}


def url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def shown(response: Any) -> list[tuple[int, str]]:
    """The messages the request queued for the user, as (level, text)."""
    return [(m.level, m.message) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def admin_client(client: Client, world: World) -> Client:
    client.force_login(world.superuser)
    return client


@pytest.fixture
def records(world: World) -> dict[type[models.Model], models.Model]:
    """One row of every model, the workflow's own rows written by the workflow."""
    deployment = workflow.propose(world.request, world.alice, by=world.commander)
    workflow.offer(deployment, by=world.commander)
    workflow.accept(deployment, by=world.alice_user)
    deployment, screening = workflow.check_in(deployment, by=world.commander, temperature_c="36.8", spo2=98)
    now = timezone.now()
    return {
        Agency: world.alice.agency,
        Qualification: world.request.qualification,
        Expert: world.alice,
        Credential: factories.CredentialFactory(
            expert=world.alice, qualification=world.request.qualification
        ),
        Availability: factories.AvailabilityFactory(expert=world.alice),
        Incident: world.incident,
        IncidentMembership: IncidentMembership.objects.filter(user=world.commander).get(),
        Facility: world.request.facility,
        RoleRequest: world.request,
        Deployment: deployment,
        Event: Event.objects.filter(deployment=deployment).last(),
        HealthScreening: screening,
        TimeEntry: TimeEntry.objects.create(deployment=deployment, date=deployment.start, regular_hours=8),
        Expense: Expense.objects.create(
            deployment=deployment, date=deployment.start, category="lodging", amount=Decimal("120.00")
        ),
        EquipmentIssue: EquipmentIssue.objects.create(deployment=deployment, item="N95 mask", issued_at=now),
        Exclusion: Exclusion.objects.create(
            request=world.request, expert=world.bob, created_by=world.commander
        ),
        Job: Job.objects.create(
            incident=world.incident, kind=Job.Kind.MATCHING, requested_by=world.commander
        ),
    }


# --- Every model opens ------------------------------------------------------------------------


@pytest.mark.parametrize("app_label", ["resources", "incidents"])
def test_every_model_of_the_app_is_registered(app_label: str) -> None:
    models_of_app = set(apps.get_app_config(app_label).get_models())
    assert models_of_app <= set(MODELS)
    assert all(admin.site.is_registered(model) for model in models_of_app)


@pytest.mark.parametrize("query", ["", "?q=x", "?q=Alice", "?q=1"])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_superuser_opens_the_changelist_with_and_without_a_search(
    admin_client: Client,
    records: dict[type[models.Model], models.Model],
    model: type[models.Model],
    query: str,
) -> None:
    response = admin_client.get(url(model, "changelist") + query)
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_list_filter_choice_opens(
    admin_client: Client, records: dict[type[models.Model], models.Model], model: type[models.Model]
) -> None:
    changelist = url(model, "changelist")
    cl = admin_client.get(changelist).context["cl"]
    choices = [choice["query_string"] for spec in cl.filter_specs for choice in spec.choices(cl)]
    for query in choices:
        assert admin_client.get(changelist + query).status_code == 200, query


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_add_page_opens_except_for_the_append_only_records(
    admin_client: Client, model: type[models.Model]
) -> None:
    response = admin_client.get(url(model, "add"))
    assert response.status_code == (403 if model in READ_ONLY else 200)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_change_page_of_an_existing_row_opens(
    admin_client: Client, records: dict[type[models.Model], models.Model], model: type[models.Model]
) -> None:
    response = admin_client.get(url(model, "change", records[model].pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", sorted(READ_ONLY, key=lambda m: m.__name__), ids=lambda m: m.__name__)
def test_append_only_records_cannot_be_changed_or_deleted(
    admin_client: Client, records: dict[type[models.Model], models.Model], model: type[models.Model]
) -> None:
    row = records[model]
    response = admin_client.get(url(model, "change", row.pk))
    assert not response.context["has_change_permission"]
    assert not response.context["has_delete_permission"]
    assert admin_client.post(url(model, "delete", row.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=row.pk).exists()


def test_non_staff_user_is_sent_to_the_admin_login(client: Client, world: World) -> None:
    client.force_login(world.commander)
    for page in (reverse("admin:index"), url(Deployment, "changelist")):
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# --- Query budgets ----------------------------------------------------------------------------


def test_expert_changelist_queries_do_not_grow_with_the_roster(
    admin_client: Client, world: World, django_assert_max_num_queries: Any
) -> None:
    for _ in range(3):
        factories.ExpertFactory(user=factories.UserFactory())
    changelist = url(Expert, "changelist")
    # 1 session, 2 the logged-in user, 3 agencies for the "agency" filter, 4 COUNT of experts,
    # 5 one page of experts joined to their agency and user. (No full-roster COUNT: it is off.)
    with django_assert_max_num_queries(5):
        response = admin_client.get(changelist)
    assert response.context["cl"].result_count == 5  # Alice, Bob and the 3 above
    for _ in range(30):
        factories.ExpertFactory(user=factories.UserFactory())
    with django_assert_max_num_queries(5):
        response = admin_client.get(changelist)
    assert response.context["cl"].result_count == 35


def _deployment() -> Deployment:
    return factories.DeploymentFactory(offer_expires_at=timezone.now())


def _event() -> Event:
    deployment = _deployment()
    event = events.deployment_event(
        deployment, "deployment.proposed", actor=factories.UserFactory(), at=timezone.now(), previous=None
    )
    event.save()
    return event


def _screening() -> HealthScreening:
    return HealthScreening.objects.create(
        deployment=_deployment(),
        screened_at=timezone.now(),
        screener=factories.UserFactory(),
        temperature_c=Decimal("36.8"),
        spo2=98,
        result=HealthScreening.Result.PASS,
    )


# One more row of each model, each with its own related rows, so a per-row query would show.
NEW_ROW: dict[type[models.Model], Callable[[], models.Model]] = {
    Agency: factories.AgencyFactory,
    Qualification: lambda: factories.QualificationFactory(code=f"Q{Qualification.objects.count()}"),
    Expert: lambda: factories.ExpertFactory(user=factories.UserFactory()),
    Credential: factories.CredentialFactory,
    Availability: factories.AvailabilityFactory,
    Incident: factories.IncidentFactory,
    IncidentMembership: factories.MembershipFactory,
    Facility: factories.FacilityFactory,
    RoleRequest: lambda: factories.RoleRequestFactory(created_by=factories.UserFactory()),
    Deployment: _deployment,
    Event: _event,
    HealthScreening: _screening,
    TimeEntry: lambda: TimeEntry.objects.create(
        deployment=_deployment(), date=factories.START, regular_hours=8, approved_by=factories.UserFactory()
    ),
    Expense: lambda: Expense.objects.create(
        deployment=_deployment(),
        date=factories.START,
        category=Expense.Category.LODGING,
        amount=Decimal("120.00"),
        approved_by=factories.UserFactory(),
    ),
    Exclusion: lambda: Exclusion.objects.create(
        request=factories.RoleRequestFactory(), expert=factories.ExpertFactory()
    ),
    EquipmentIssue: lambda: EquipmentIssue.objects.create(
        deployment=_deployment(), item="Radio", issued_at=timezone.now()
    ),
    Job: lambda: Job.objects.create(
        incident=factories.IncidentFactory(), kind=Job.Kind.MATCHING, requested_by=factories.UserFactory()
    ),
}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_queries_do_not_grow_with_rows(admin_client: Client, model: type[models.Model]) -> None:
    # Each column that names a related row (expert, request, facility, incident, user) is joined
    # into the one page query, so 3 rows and 23 rows cost the same number of queries.
    changelist = url(model, "changelist")
    for _ in range(3):
        NEW_ROW[model]()
    with CaptureQueriesContext(connection) as few:
        response = admin_client.get(changelist)
    assert response.context["cl"].result_count == model.objects.count()
    for _ in range(20):
        NEW_ROW[model]()
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(changelist).status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]


# --- Incident time ----------------------------------------------------------------------------


def test_event_list_shows_the_moment_in_the_incidents_time_zone(admin_client: Client, world: World) -> None:
    world.incident.timezone = "America/Los_Angeles"
    world.incident.save()
    at = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    Event.objects.create(incident=world.incident, type="incident.note", actor=world.commander, at=at)
    response = admin_client.get(url(Event, "changelist"))
    assert "2026-12-01 12:00 PST" in response.content.decode()


# --- Deployments: state moves only through the workflow ---------------------------------------


def _act(admin_client: Client, action: str, *deployments: Deployment) -> Any:
    return admin_client.post(
        url(Deployment, "changelist"),
        {"action": action, "index": 0, "_selected_action": [d.pk for d in deployments]},
    )


def test_offer_action_offers_a_proposal_and_logs_it(admin_client: Client, world: World) -> None:
    deployment = factories.DeploymentFactory(request=world.request, expert=world.alice)
    response = _act(admin_client, "offer_selected", deployment)
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == Status.OFFERED
    assert deployment.offered_at is not None
    event = Event.objects.get(deployment=deployment)
    assert (event.type, event.actor) == ("deployment.offered", world.superuser)
    assert shown(response) == [(messages.SUCCESS, "1 of 1 selected deployment(s) offered.")]


def test_offer_action_reports_the_workflows_refusal_and_changes_nothing(
    admin_client: Client, world: World
) -> None:
    deployment = offered(world)
    before = Deployment.objects.values().get(pk=deployment.pk)
    response = _act(admin_client, "offer_selected", deployment)
    assert response.status_code == 302
    assert Deployment.objects.values().get(pk=deployment.pk) == before
    assert not Event.objects.exists()
    assert shown(response) == [
        (
            messages.ERROR,
            f"Deployment #{deployment.pk} (Alice Lee): Cannot offer deployment #{deployment.pk}: "
            "it is offered (it must be proposed).",
        ),
        (messages.WARNING, "0 of 1 selected deployment(s) offered."),
    ]


def test_offer_action_moves_what_it_can_and_names_what_it_cannot(admin_client: Client, world: World) -> None:
    proposal = factories.DeploymentFactory(request=world.request, expert=world.bob)
    already = offered(world)
    response = _act(admin_client, "offer_selected", proposal, already)
    assert Deployment.objects.get(pk=proposal.pk).status == Status.OFFERED
    levels = [(level, text.split(":")[0]) for level, text in shown(response)]
    assert levels == [
        (messages.ERROR, f"Deployment #{already.pk} (Alice Lee)"),
        (messages.SUCCESS, "1 of 2 selected deployment(s) offered."),
    ]


def test_expire_action_expires_lapsed_offers_only(admin_client: Client, world: World) -> None:
    now = timezone.now()
    lapsed = offered(world, offer_expires_at=now - timedelta(minutes=1))
    open_offer = offered(world, expert=world.bob, offer_expires_at=now + timedelta(hours=1))
    response = _act(admin_client, "expire_selected", lapsed, open_offer)
    assert Deployment.objects.get(pk=lapsed.pk).status == Status.EXPIRED
    assert Deployment.objects.get(pk=open_offer.pk).status == Status.OFFERED
    assert Event.objects.get().type == "deployment.expired"
    assert [level for level, _ in shown(response)] == [messages.ERROR, messages.SUCCESS]


def test_adding_a_deployment_proposes_it_through_the_workflow(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        url(Deployment, "add"),
        {"request": world.request.pk, "expert": world.alice.pk, "start": "", "end": "", "why": "closest RN"},
    )
    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert (deployment.status, deployment.start, deployment.end) == (
        Status.PROPOSED,
        world.request.start,
        world.request.end,
    )
    event = Event.objects.get()
    assert (event.type, event.actor, event.data["why"]) == (
        "deployment.proposed",
        world.superuser,
        "closest RN",
    )


def test_adding_a_deployment_shows_the_workflows_refusal(admin_client: Client, world: World) -> None:
    world.alice.active = False
    world.alice.save()
    response = admin_client.post(
        url(Deployment, "add"), {"request": world.request.pk, "expert": world.alice.pk}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"expert": ["Alice Lee is not active on the roster."]}
    assert not Deployment.objects.exists()
    assert not Event.objects.exists()


def test_change_form_cannot_move_state_or_workflow_times(admin_client: Client, world: World) -> None:
    deployment = offered(world)
    change = url(Deployment, "change", deployment.pk)
    page = admin_client.get(change)
    assert not set(WORKFLOW_FIELDS) & set(page.context["adminform"].form.fields)
    data: dict[str, Any] = {
        "travel_method": Deployment.TravelMethod.AIR,
        "travel_arranged": "on",
        "why": "",
        "status": Status.RELEASED,
        "released_at_0": "2026-12-20",
        "released_at_1": "10:00:00",
    }
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    assert admin_client.post(change, data).status_code == 302
    deployment.refresh_from_db()
    assert (deployment.status, deployment.released_at) == (Status.OFFERED, None)
    assert (deployment.travel_method, deployment.travel_arranged) == (Deployment.TravelMethod.AIR, True)
