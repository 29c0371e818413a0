"""What the incident API reads and writes (CONTRACTS.md, "HTTP API").

Read serializers give ids plus the human bits a screen needs (facility code and name,
qualification code, the expert's name and email). Input serializers parse one service's
arguments; the rules themselves stay in incidents/workflow.py and incidents/timesheets.py.
Money and other decimals travel as strings (DRF's default), dates as YYYY-MM-DD, moments in
ISO 8601 UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Model, QuerySet
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from deploy_tracker.errors import InvalidInput
from incidents import requests, workflow
from incidents.access import visible
from incidents.filters import MAX_ID
from incidents.models import (
    Approval,
    Deployment,
    Event,
    Expense,
    Facility,
    HealthScreening,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from resources.models import Expert, Qualification

# --- Errors ------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer[Any]):
    """Why a request was refused: a domain rule (deploy_tracker/errors.py) or DRF's own refusal."""

    error = serializers.CharField(
        required=False,
        help_text="The rule that refused: illegal_transition, expert_unavailable, request_full, "
        "release_blocked, not_allowed, invalid_input. Absent on DRF's own refusals (not signed in, "
        "not found, malformed body).",
    )
    detail = serializers.CharField(help_text="Why, in words.")
    field = serializers.CharField(required=False, help_text="invalid_input: the field at fault.")


# DRF's validation errors: {"<field or parameter>": ["what is wrong", ...]}, a nested object for
# an item of a list; `non_field_errors` for the body as a whole. One of the two shapes answers a
# 400: this one from parsing, the Error shape (`invalid_input`) from a service's own checks.
_VALIDATION_ERRORS = {
    "type": "object",
    "title": "ValidationErrors",
    "description": "Each key names a field of the body or a query parameter (non_field_errors: the "
    "body as a whole); each value lists what is wrong with it.",
    "additionalProperties": {
        "oneOf": [
            {"type": "array", "items": {"type": "string"}},
            {"type": "object", "additionalProperties": True},
        ]
    },
}
_ERROR_RESPONSES = {
    400: OpenApiResponse(
        {"oneOf": [{"$ref": "#/components/schemas/Error"}, _VALIDATION_ERRORS]},
        description="Invalid input: DRF's validation errors keyed by field or query parameter, or "
        "`invalid_input` naming the `field` a rule refused.",
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        description="Not signed in, or signed in without the right to do this (`not_allowed`).",
    ),
    404: OpenApiResponse(
        ErrorSerializer, description="No such record among those you may see (or no such page)."
    ),
    409: OpenApiResponse(
        ErrorSerializer,
        description="Not possible in the record's present state; `error` names the rule, `detail` says why.",
    ),
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The documented error answers of an operation, for `extend_schema(responses=...)`."""
    return {code: _ERROR_RESPONSES[code] for code in codes}


class VisibleRecord[M: Model](serializers.PrimaryKeyRelatedField[M]):
    """A related record by id, among those the user may see: the others "do not exist" (400)."""

    def get_queryset(self) -> QuerySet[M]:
        request = self.context.get("request")  # none while the schema is generated
        queryset = super().get_queryset()
        assert queryset is not None  # every VisibleRecord is declared with its queryset
        return queryset.none() if request is None else visible(request.user, queryset)


def actor(context: Mapping[str, Any]) -> User:
    """The signed-in user of a serializer's request (the views let only real users through)."""
    user = context["request"].user
    assert isinstance(user, User)
    return user


# --- Incidents and facilities --------------------------------------------------------------------


class IncidentSerializer(serializers.ModelSerializer[Incident]):
    role = serializers.ChoiceField(
        choices=IncidentMembership.Role.choices,
        read_only=True,
        allow_null=True,
        help_text="Your role in this incident; null for a superuser who is not a member.",
    )

    class Meta:
        model = Incident
        fields = (
            "id number name kind status timezone cost_code start end max_deployment_days "
            "max_extended_days rest_days default_radius_km mileage_rate offer_response_hours "
            "created_at role"
        ).split()
        read_only_fields = fields


class FacilitySerializer(serializers.ModelSerializer[Facility]):
    incident_number = serializers.CharField(source="incident.number", read_only=True)
    # Often unknown: an empty string then, which an OpenAPI "email" format would refuse.
    contact_email = serializers.CharField(read_only=True, help_text="An email address, or empty.")

    class Meta:
        model = Facility
        fields = (
            "id incident incident_number code name kind address county state latitude longitude "
            "contact_name contact_phone contact_email reporting_instructions"
        ).split()
        read_only_fields = fields


# --- Role requests ------------------------------------------------------------------------------


class RoleRequestSerializer(serializers.ModelSerializer[RoleRequest]):
    """A request, read and written: only commanders of the facility's incident write it."""

    incident = serializers.IntegerField(source="facility.incident_id", read_only=True)
    facility = VisibleRecord(
        queryset=Facility.objects.select_related("incident"),
        help_text="Facility id (one of an incident you command).",
    )
    facility_code = serializers.CharField(source="facility.code", read_only=True)
    facility_name = serializers.CharField(source="facility.name", read_only=True)
    qualification = serializers.SlugRelatedField(
        slug_field="code", queryset=Qualification.objects.all(), help_text="Qualification code, e.g. RN."
    )
    qualification_name = serializers.CharField(source="qualification.name", read_only=True)
    max_travel_km = serializers.IntegerField(
        min_value=1,
        max_value=40_000,
        required=False,
        allow_null=True,
        help_text="Blank: the incident's default.",
    )
    filled = serializers.IntegerField(
        read_only=True, help_text="Slots proposed, offered, accepted or on site (the rest are open)."
    )

    class Meta:
        model = RoleRequest
        fields = (
            "id incident facility facility_code facility_name qualification qualification_name "
            "quantity start end priority max_travel_km notes filled created_at"
        ).split()
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"quantity": {"max_value": 10_000}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        before = self.instance

        def value(name: str) -> Any:  # what the request will hold: the new value or the kept one
            return attrs[name] if name in attrs else getattr(before, name)

        try:
            requests.check(
                actor(self.context),
                facility=value("facility"),
                qualification=value("qualification"),
                quantity=value("quantity"),
                start=value("start"),
                end=value("end"),
                existing=before,
            )
        except InvalidInput as exc:
            raise serializers.ValidationError({exc.field or "non_field_errors": exc.message}) from None
        return attrs


# --- Deployments --------------------------------------------------------------------------------


class DeploymentSerializer(serializers.ModelSerializer[Deployment]):
    incident = serializers.IntegerField(source="request.facility.incident_id", read_only=True)
    facility = serializers.IntegerField(source="request.facility_id", read_only=True)
    facility_code = serializers.CharField(source="request.facility.code", read_only=True)
    facility_name = serializers.CharField(source="request.facility.name", read_only=True)
    qualification = serializers.CharField(source="request.qualification.code", read_only=True)
    priority = serializers.ChoiceField(
        source="request.priority", choices=RoleRequest.Priority.choices, read_only=True
    )
    expert_name = serializers.CharField(source="expert.full_name", read_only=True)
    expert_email = serializers.EmailField(source="expert.email", read_only=True)
    agency = serializers.CharField(source="expert.agency.code", read_only=True)

    class Meta:
        model = Deployment
        fields = (
            "id status incident request facility facility_code facility_name qualification "
            "priority expert expert_name expert_email agency start end rest_until distance_km why "
            "locked extension_approved travel_method travel_arranged planned_release "
            "offer_expires_at reason proposed_at offered_at responded_at checked_in_at "
            "released_at cancelled_at"
        ).split()
        read_only_fields = fields


class ProposeInput(serializers.Serializer[dict[str, Any]]):
    """A commander's manual assignment: this expert for one slot of this request."""

    request = VisibleRecord(queryset=RoleRequest.objects.all(), help_text="Role request id.")
    expert = VisibleRecord(queryset=Expert.objects.all(), help_text="Expert id.")
    start = serializers.DateField(required=False, help_text="Default: the request's start.")
    end = serializers.DateField(required=False, help_text="Default: the request's end.")
    extension_approved = serializers.BooleanField(
        default=False, help_text="Approved to run past the incident's maximum deployment days."
    )


class OfferInput(serializers.Serializer[dict[str, Any]]):
    expires_at = serializers.DateTimeField(
        required=False, help_text="Response deadline; default: the incident's offer response hours."
    )


class DeclineInput(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class CancelInput(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=2000, help_text="Why; the responder is told.")


class ReleaseInput(serializers.Serializer[dict[str, Any]]):
    travel_arranged = serializers.BooleanField(
        required=False, help_text="Record that return travel is arranged (omit to leave it as it is)."
    )


class CheckInInput(serializers.Serializer[dict[str, Any]]):
    """The fitness-for-duty screening at the door (incidents/workflow.py, `check_in`)."""

    temperature_c = serializers.DecimalField(
        max_digits=4, decimal_places=1, min_value=Decimal("30"), max_value=Decimal("45"), help_text="°C."
    )
    spo2 = serializers.IntegerField(min_value=50, max_value=100, help_text="Oxygen saturation, %.")
    symptoms = serializers.ListField(
        child=serializers.ChoiceField(choices=list(workflow.SYMPTOMS.items())),
        required=False,
        default=list,
        max_length=len(workflow.SYMPTOMS),
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ScreeningSerializer(serializers.ModelSerializer[HealthScreening]):
    symptoms = serializers.ListField(child=serializers.CharField(), read_only=True)
    reasons = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Why it failed, if it did."
    )

    class Meta:
        model = HealthScreening
        fields = ["id", "screened_at", "temperature_c", "spo2", "symptoms", "result", "reasons", "notes"]
        read_only_fields = fields


class CheckInResult(serializers.Serializer[Any]):
    deployment = DeploymentSerializer(help_text="on_site when the screening passed, cancelled when not.")
    screening = ScreeningSerializer()


# --- The event log ------------------------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer[Event]):
    actor = serializers.CharField(
        source="actor.username", read_only=True, allow_null=True, help_text="null: the system."
    )
    # DRF's metaclass takes declared fields off the class, so this does not hide `Serializer.data`.
    data = serializers.DictField(  # type: ignore[assignment]
        read_only=True, help_text='Compact facts of the move (ARCHITECTURE.md, "The event log").'
    )

    class Meta:
        model = Event
        fields = ["id", "type", "incident", "deployment", "expert", "actor", "at", "data"]
        read_only_fields = fields


# --- Time and expenses --------------------------------------------------------------------------


class ApprovalStatusField(serializers.ChoiceField):
    """A time entry's or an expense's approval status: one enum in the schema for both."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Approval.choices, **kwargs)


class _ApprovalStatusSchema(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    # drf-spectacular names enums after their field; "status" of two components with the same
    # choices would be an unnamed collision, so the choice set is one named component.
    target_class = ApprovalStatusField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name="ApprovalStatusEnum",
            type=ResolvedComponent.SCHEMA,
            object="ApprovalStatusEnum",
            schema={
                "type": "string",
                "enum": Approval.values,
                "description": "\n".join(f"* `{value}` - {label}" for value, label in Approval.choices),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return dict(component.ref)


class _RecordSerializer(serializers.ModelSerializer[Any]):
    status = ApprovalStatusField(read_only=True)
    incident = serializers.IntegerField(source="deployment.request.facility.incident_id", read_only=True)
    facility_code = serializers.CharField(source="deployment.request.facility.code", read_only=True)
    expert = serializers.IntegerField(source="deployment.expert_id", read_only=True)
    expert_name = serializers.CharField(source="deployment.expert.full_name", read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, allow_null=True)


_RECORD_FIELDS = "incident facility_code expert expert_name status approved_by approved_at".split()


class TimeEntrySerializer(_RecordSerializer):
    class Meta:
        model = TimeEntry
        fields = [
            *"id deployment date regular_hours overtime_hours notes".split(),
            *_RECORD_FIELDS,
            "created_at",
        ]
        read_only_fields = fields


class ExpenseSerializer(_RecordSerializer):
    class Meta:
        model = Expense
        fields = [
            *"id deployment date category amount distance_km description".split(),
            *_RECORD_FIELDS,
            "created_at",
        ]
        read_only_fields = fields


class _OnDeployment(serializers.Serializer[dict[str, Any]]):
    deployment = VisibleRecord(queryset=Deployment.objects.all(), help_text="Deployment id.")
    date = serializers.DateField()


def _hours(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=4, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("24"), **kwargs
    )


class TimeEntryInput(_OnDeployment):
    """One day's hours; sending a day again corrects it until it is approved."""

    regular_hours = _hours()
    overtime_hours = _hours(default=Decimal("0"))
    notes = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class ExpenseInput(_OnDeployment):
    category = serializers.ChoiceField(choices=Expense.Category.choices)
    amount = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        allow_null=True,
        help_text="Leave out for mileage: it is the distance home ↔ facility × the incident's rate.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class ReviewInput(serializers.Serializer[dict[str, Any]]):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        allow_empty=False,
        max_length=5000,
        help_text="Records to review; every one must be among those you may see.",
    )
    approve = serializers.BooleanField(help_text="true approves, false rejects.")
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", help_text="Required to reject."
    )


class ReviewResult(serializers.Serializer[Any]):
    changed = serializers.IntegerField(help_text="How many were still submitted and changed now.")


# --- Matching, confirming offers, background jobs --------------------------------------------------


class MatchOptions(serializers.Serializer[dict[str, Any]]):
    """The options of `manage.py match`, as a JSON body; `background` runs it as a job."""

    dry_run = serializers.BooleanField(default=False)
    radius_km = serializers.FloatField(required=False, allow_null=True, min_value=0.001)
    include_unverified = serializers.BooleanField(default=False)
    background = serializers.BooleanField(
        default=False,
        help_text="Run outside the request: answers 202 with the job; progress and the end "
        "arrive on the incident's WebSocket; the document is the job's result.",
    )


class JobSerializer(serializers.ModelSerializer[Job]):
    url = serializers.HyperlinkedIdentityField(view_name="api-job")

    class Meta:
        model = Job
        fields = (
            "id url incident kind status options created_at started_at finished_at progress result error"
        ).split()
        read_only_fields = fields


_COUNTS = serializers.DictField(child=serializers.IntegerField())
MatchDocument = inline_serializer(
    "MatchDocument",
    {
        "incident": serializers.CharField(),
        "proposals": serializers.ListField(
            child=inline_serializer(
                "MatchProposal",
                {
                    "request": serializers.IntegerField(),
                    "facility": serializers.CharField(),
                    "qualification": serializers.CharField(),
                    "priority": serializers.CharField(),
                    "expert": serializers.EmailField(),
                    "distance_km": serializers.FloatField(),
                    "why": serializers.CharField(),
                },
            )
        ),
        "unfilled": serializers.ListField(
            child=inline_serializer(
                "MatchUnfilled",
                {
                    "request": serializers.IntegerField(),
                    "facility": serializers.CharField(),
                    "qualification": serializers.CharField(),
                    "priority": serializers.CharField(),
                    "missing": serializers.IntegerField(),
                    "reasons": _COUNTS,
                },
            )
        ),
        "summary": inline_serializer(
            "MatchSummary",
            {
                "filled": _COUNTS,
                "open": _COUNTS,
                "proposed": serializers.IntegerField(),
                "total_distance_km": serializers.FloatField(),
                "seconds": serializers.FloatField(),
            },
        ),
    },
)


class OfferRequest(serializers.Serializer[dict[str, Any]]):
    """Which proposals to confirm (all of the incident's when omitted), and until when."""

    deployments = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        required=False,
        allow_empty=False,
        max_length=10_000,
    )
    expires_at = serializers.DateTimeField(
        required=False, help_text="Response deadline; default: the incident's offer response hours."
    )


OfferResult = inline_serializer(
    "OfferResult",
    {
        "offered": serializers.ListField(child=serializers.IntegerField()),
        "skipped": serializers.ListField(
            child=inline_serializer(
                "OfferSkipped", {"deployment": serializers.IntegerField(), "reason": serializers.CharField()}
            )
        ),
    },
)
