"""Admin for incidents, their deployments and records; deployment state moves only through workflow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.db.models import QuerySet
from django.http import HttpRequest

from deploy_tracker.errors import DomainError, InvalidInput
from incidents import workflow
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
from resources.admin import EXPERT_SEARCH

if TYPE_CHECKING:
    from django.contrib.admin.options import InlineModelAdmin
    from django.contrib.auth.models import User

# Through a record's deployment to the incident it belongs to, for filters and columns.
INCIDENT = "deployment__request__facility__incident"
# A deployment's records are listed by responder and incident, both joined into the page query.
RECORD_SELECT = ("deployment__expert", INCIDENT)
# Searching a deployment's records by the responder's name or email.
DEPLOYMENT_EXPERT_SEARCH = tuple(f"deployment__expert__{field}" for field in EXPERT_SEARCH)
# What the workflow alone writes on a deployment: its state and when it moved.
WORKFLOW_FIELDS = (
    "status",
    "proposed_at",
    "offered_at",
    "offer_expires_at",
    "responded_at",
    "checked_in_at",
    "released_at",
    "cancelled_at",
)


def incident_time(incident: Incident, moment: datetime | None) -> str | None:
    """A stored moment as the incident's people read it, zone named (None shows as the empty mark)."""
    if moment is None:
        return None
    return incident.local(moment).strftime("%Y-%m-%d %H:%M %Z")


class ReadOnlyMixin:
    """View only, for everyone including superusers: these rows are written by the workflow alone."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Incident, its people and facilities ----------------------------------------------------


class FacilityInline(admin.TabularInline):
    """An incident's facilities; the full record is one click away."""

    model = Facility
    extra = 0
    fields = ("code", "name", "kind", "state", "county", "latitude", "longitude")
    show_change_link = True


class IncidentMembershipInline(admin.TabularInline):
    """Who holds which role in the incident."""

    model = IncidentMembership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents with their policy, facilities and members."""

    list_display = ("number", "name", "kind", "status", "timezone", "start", "end")
    list_filter = ("status", "kind")
    search_fields = ("number", "name", "cost_code")
    date_hierarchy = "start"
    readonly_fields = ("created_at",)
    inlines = (FacilityInline, IncidentMembershipInline)


@admin.register(IncidentMembership)
class IncidentMembershipAdmin(admin.ModelAdmin):
    """Every role of every user, across incidents."""

    list_display = ("user", "role", "incident")
    list_filter = ("role", "incident")
    list_select_related = ("user", "incident")
    search_fields = ("user__username", "user__email", "user__last_name", "incident__number", "incident__name")
    autocomplete_fields = ("user", "incident")


class RoleRequestInline(admin.TabularInline):
    """A facility's role requests; who created one is recorded, not typed."""

    model = RoleRequest
    extra = 0
    fields = ("qualification", "quantity", "start", "end", "priority", "max_travel_km", "created_by")
    readonly_fields = ("created_by",)
    autocomplete_fields = ("qualification",)
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoleRequest]:
        return super().get_queryset(request).select_related("qualification", "created_by")


@admin.register(Facility)
class FacilityAdmin(admin.ModelAdmin):
    """Places people are sent to, with their role requests."""

    list_display = ("code", "name", "kind", "incident", "county", "state")
    list_filter = ("kind", "incident", "state")
    list_select_related = ("incident",)
    search_fields = ("code", "name", "county", "address", "incident__number")
    autocomplete_fields = ("incident",)
    inlines = (RoleRequestInline,)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        for instance in formset.save(commit=False):
            if isinstance(instance, RoleRequest) and instance.created_by_id is None:
                instance.created_by_id = request.user.pk
            instance.save()
        for instance in formset.deleted_objects:
            instance.delete()
        formset.save_m2m()


@admin.register(RoleRequest)
class RoleRequestAdmin(admin.ModelAdmin):
    """Resource requests across incidents; searchable by id, facility and qualification."""

    list_display = (
        "id",
        "qualification",
        "quantity",
        "facility",
        "facility__incident",
        "start",
        "end",
        "priority",
    )
    list_display_links = ("id", "qualification")
    list_filter = ("priority", "facility__incident", "qualification__kind")
    list_select_related = ("facility__incident", "qualification")
    search_fields = (
        "id__exact",
        "facility__code",
        "facility__name",
        "facility__incident__number",
        "qualification__code",
        "qualification__name",
    )
    autocomplete_fields = ("facility", "qualification", "created_by")
    readonly_fields = ("created_at",)
    date_hierarchy = "start"

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoleRequest]:
        # str() names the qualification and facility, and autocomplete lists 20 at a time. The
        # changelist skips list_select_related once a select_related is set, so it is the same one.
        return super().get_queryset(request).select_related(*self.list_select_related)

    def save_model(self, request: HttpRequest, obj: RoleRequest, form: Any, change: bool) -> None:
        if obj.created_by_id is None:
            obj.created_by_id = request.user.pk
        super().save_model(request, obj, form, change)


# --- Deployments and what hangs off them ----------------------------------------------------


class HealthScreeningInline(ReadOnlyMixin, admin.TabularInline):
    """Screenings of this deployment, as check-in recorded them."""

    model = HealthScreening
    extra = 0
    fields = ("screened_at", "result", "temperature_c", "spo2", "symptoms", "reasons", "screener", "notes")

    def get_queryset(self, request: HttpRequest) -> QuerySet[HealthScreening]:
        return super().get_queryset(request).select_related("screener")


class TimeEntryInline(admin.TabularInline):
    """Hours worked on this deployment, day by day."""

    model = TimeEntry
    extra = 0
    fields = ("date", "regular_hours", "overtime_hours", "notes", "status", "approved_by", "approved_at")
    autocomplete_fields = ("approved_by",)


class ExpenseInline(admin.TabularInline):
    """Costs claimed for this deployment."""

    model = Expense
    extra = 0
    fields = (
        "date",
        "category",
        "amount",
        "distance_km",
        "description",
        "status",
        "approved_by",
        "approved_at",
    )
    autocomplete_fields = ("approved_by",)


class EquipmentIssueInline(admin.TabularInline):
    """Equipment handed to this responder; release waits until it is back."""

    model = EquipmentIssue
    extra = 0
    fields = ("item", "quantity", "issued_at", "returned_at", "notes")


class EventInline(ReadOnlyMixin, admin.TabularInline):
    """The deployment's history from the append-only log."""

    model = Event
    extra = 0
    fields = ("id", "at", "at_incident_time", "type", "actor", "data")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).select_related("incident", "actor")

    @admin.display(description="at (incident time)")
    def at_incident_time(self, event: Event) -> str | None:
        return incident_time(event.incident, event.at)


class ProposalForm(forms.ModelForm):
    """Adding a deployment is proposing it: workflow.propose checks the rules and writes the Event."""

    actor: User  # set per request by DeploymentAdmin.get_form

    start = forms.DateField(
        required=False, widget=widgets.AdminDateWidget, help_text="Blank: the request's start."
    )
    end = forms.DateField(
        required=False, widget=widgets.AdminDateWidget, help_text="Blank: the request's end."
    )

    class Meta:
        model = Deployment
        fields = ("request", "expert", "start", "end", "why", "locked", "extension_approved")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        # The workflow validates and writes in one step (its checks run under the lock it takes), so
        # the proposal is made here; the admin's per-page transaction undoes it if a later step fails.
        try:
            self.instance = workflow.propose(
                cleaned["request"],
                cleaned["expert"],
                by=self.actor,
                start=cleaned["start"],
                end=cleaned["end"],
                why=cleaned["why"],
                locked=cleaned["locked"],
                extension_approved=cleaned["extension_approved"],
            )
        except InvalidInput as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        except DomainError as exc:
            self.add_error(None, exc.message)
        else:
            cleaned.update(start=self.instance.start, end=self.instance.end)
        return cleaned


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    """Deployments: added through workflow.propose, moved only by the workflow actions below."""

    list_display = (
        "id",
        "expert",
        "request",
        "request__facility__incident",
        "status",
        "start",
        "end",
        "offer_expires_incident_time",
    )
    list_display_links = ("id", "expert")
    list_filter = ("status", "request__priority", "travel_method", "locked", "request__facility__incident")
    list_select_related = ("expert", "request__facility__incident", "request__qualification")
    search_fields = (
        "id__exact",
        *(f"expert__{field}" for field in EXPERT_SEARCH),
        "request__facility__code",
        "request__facility__incident__number",
    )
    autocomplete_fields = ("request", "expert")
    date_hierarchy = "start"
    actions = ("offer_selected", "expire_selected")
    inlines = (HealthScreeningInline, TimeEntryInline, ExpenseInline, EquipmentIssueInline, EventInline)
    fieldsets = (
        (
            None,
            {"fields": ("request", "expert", "status", "start", "end", "rest_until", "distance_km", "why")},
        ),
        (
            "Logistics",
            {
                "fields": (
                    "travel_method",
                    "travel_arranged",
                    "planned_release",
                    "locked",
                    "extension_approved",
                )
            },
        ),
        ("Workflow record", {"fields": ("reason", *WORKFLOW_FIELDS[1:])}),
    )
    # Besides the workflow's own fields, the slot (who, where, when) is fixed once proposed: editing
    # it here would skip the no-overlap rule (PostgreSQL refuses it with an IntegrityError anyway).
    # To change it, cancel and propose again.
    readonly_fields = (
        *WORKFLOW_FIELDS,
        "request",
        "expert",
        "start",
        "end",
        "rest_until",
        "distance_km",
        "reason",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Deployment]:
        # str() names the expert, qualification and facility, and autocomplete lists 20 at a time.
        # The changelist skips list_select_related once a select_related is set, so it is the same one.
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_fieldsets(self, request: HttpRequest, obj: Deployment | None = None) -> Any:
        if obj is None:
            return ((None, {"fields": ProposalForm.Meta.fields}),)
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Deployment | None = None) -> tuple[str, ...]:
        return () if obj is None else tuple(self.readonly_fields)

    def get_inlines(
        self, request: HttpRequest, obj: Deployment | None
    ) -> list[type[InlineModelAdmin[Any, Any]]]:
        return [] if obj is None else list(self.inlines)

    def get_form(
        self, request: HttpRequest, obj: Deployment | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is not None:
            return super().get_form(request, obj, change, **kwargs)
        form: Any = super().get_form(request, obj, change, form=ProposalForm, **kwargs)
        form.actor = request.user  # a fresh class per call, so this never leaks across requests
        return form

    def save_model(self, request: HttpRequest, obj: Deployment, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        # An added deployment was written by workflow.propose already (ProposalForm.clean).

    @admin.display(description="offer expires (incident time)", ordering="offer_expires_at")
    def offer_expires_incident_time(self, deployment: Deployment) -> str | None:
        return incident_time(deployment.request.facility.incident, deployment.offer_expires_at)

    @admin.action(description="Offer selected proposals", permissions=["change"])
    def offer_selected(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        self._move_each(request, queryset, workflow.offer, "offered")

    @admin.action(description="Expire lapsed offers", permissions=["change"])
    def expire_selected(self, request: HttpRequest, queryset: QuerySet[Deployment]) -> None:
        self._move_each(request, queryset, workflow.expire, "expired")

    def _move_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Deployment],
        move: Callable[..., Deployment],
        done: str,
    ) -> None:
        """Apply one workflow move to each selected deployment; name each refusal and say why."""
        selected = list(queryset.order_by("pk"))
        moved = 0
        for deployment in selected:
            try:
                move(deployment.pk, by=request.user)
            except DomainError as exc:
                self.message_user(
                    request,
                    f"Deployment #{deployment.pk} ({deployment.expert}): {exc.message}",
                    level=messages.ERROR,
                )
            else:
                moved += 1
        self.message_user(
            request,
            f"{moved} of {len(selected)} selected deployment(s) {done}.",
            level=messages.SUCCESS if moved else messages.WARNING,
        )


@admin.register(HealthScreening)
class HealthScreeningAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Fitness-for-duty screenings: written only by workflow.check_in, every result kept."""

    list_display = (
        "screened_at",
        "screened_incident_time",
        "deployment__expert",
        INCIDENT,
        "result",
        "temperature_c",
        "spo2",
        "screener",
    )
    list_filter = ("result", INCIDENT)
    list_select_related = ("deployment__expert", INCIDENT, "screener")
    search_fields = DEPLOYMENT_EXPERT_SEARCH
    date_hierarchy = "screened_at"

    @admin.display(description="screened at (incident time)", ordering="screened_at")
    def screened_incident_time(self, screening: HealthScreening) -> str | None:
        return incident_time(screening.deployment.request.facility.incident, screening.screened_at)


class ApprovableAdmin(admin.ModelAdmin):
    """What time entries and expenses share: their responder, incident and approval."""

    list_select_related = (*RECORD_SELECT, "approved_by")
    autocomplete_fields = ("deployment", "approved_by")
    readonly_fields = ("created_at",)
    date_hierarchy = "date"


@admin.register(TimeEntry)
class TimeEntryAdmin(ApprovableAdmin):
    """Hours worked, by responder and incident, with their approval."""

    list_display = (
        "date",
        "deployment__expert",
        INCIDENT,
        "regular_hours",
        "overtime_hours",
        "status",
        "approved_by",
    )
    list_filter = ("status", INCIDENT)
    search_fields = (*DEPLOYMENT_EXPERT_SEARCH, "notes")


@admin.register(Expense)
class ExpenseAdmin(ApprovableAdmin):
    """Reimbursable costs, by responder and incident, with their approval."""

    list_display = ("date", "deployment__expert", INCIDENT, "category", "amount", "status", "approved_by")
    list_filter = ("status", "category", INCIDENT)
    search_fields = (*DEPLOYMENT_EXPERT_SEARCH, "description")


@admin.register(Exclusion)
class ExclusionAdmin(admin.ModelAdmin):
    """People a commander excluded from a request; matching never proposes them there."""

    list_display = ("request", "expert", "reason", "created_by", "created_at")
    list_filter = ("request__facility__incident",)
    list_select_related = ("request__facility", "request__qualification", "expert", "created_by")
    search_fields = (*(f"expert__{field}" for field in EXPERT_SEARCH), "request__facility__code")
    autocomplete_fields = ("request", "expert", "created_by")


@admin.register(Job)
class JobAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Background work (matching runs, big exports): who asked, how it ended, why it failed."""

    list_display = ("id", "incident", "kind", "status", "requested_by", "created_at", "finished_at")
    list_filter = ("kind", "status", "incident")
    list_select_related = ("incident", "requested_by")
    date_hierarchy = "created_at"


@admin.register(EquipmentIssue)
class EquipmentIssueAdmin(admin.ModelAdmin):
    """Equipment handed out, by responder and incident; filter on what is still out."""

    list_display = ("item", "quantity", "deployment__expert", INCIDENT, "issued_incident_time", "returned_at")
    list_filter = (("returned_at", admin.EmptyFieldListFilter), INCIDENT)
    list_select_related = RECORD_SELECT
    search_fields = ("item", *DEPLOYMENT_EXPERT_SEARCH)
    autocomplete_fields = ("deployment",)
    date_hierarchy = "issued_at"

    @admin.display(description="issued at (incident time)", ordering="issued_at")
    def issued_incident_time(self, issue: EquipmentIssue) -> str | None:
        return incident_time(issue.deployment.request.facility.incident, issue.issued_at)


@admin.register(Event)
class EventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The append-only log: readable by administrators, never added to, changed or deleted here."""

    list_display = ("id", "at", "at_incident_time", "type", "incident", "deployment", "actor")
    list_filter = ("incident",)
    list_select_related = (
        "incident",
        "actor",
        "deployment__expert",
        "deployment__request__facility",
        "deployment__request__qualification",
    )
    search_fields = ("type", "incident__number", "deployment__id__exact", "actor__username")
    date_hierarchy = "at"
    # The log grows fastest; a second COUNT over all of it only feeds the "(N total)" hint.
    show_full_result_count = False

    @admin.display(description="at (incident time)", ordering="at")
    def at_incident_time(self, event: Event) -> str | None:
        return incident_time(event.incident, event.at)
