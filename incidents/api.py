"""Incident API doors: thin views over the services (CONTRACTS.md, "HTTP API").

Every queryset goes through `access.visible`, so a record outside the asker's scope is a 404
(its existence is not given away); a record they see but may not act on is the services'
`NotAllowed` (403). Workflow moves are POST actions that call incidents/workflow.py and answer
the fresh deployment; time and expenses go through incidents/timesheets.py. Domain errors are
mapped once, in deploy_tracker/api.py: 409 with `{"error", "detail"}`, 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView, get_object_or_404
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deploy_tracker.errors import IllegalTransition, NotAllowed
from incidents import access, jobs, timesheets, workflow
from incidents.access import visible
from incidents.filters import (
    DeploymentFilterSet,
    EventFilterSet,
    ExpenseFilterSet,
    FacilityFilterSet,
    IncidentFilterSet,
    RoleRequestFilterSet,
    TimeEntryFilterSet,
)
from incidents.matching.loader import Options, run
from incidents.models import (
    Deployment,
    Event,
    Expense,
    Facility,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from incidents.serializers import (
    CancelInput,
    CheckInInput,
    CheckInResult,
    DeclineInput,
    DeploymentSerializer,
    EventSerializer,
    ExpenseInput,
    ExpenseSerializer,
    FacilitySerializer,
    IncidentSerializer,
    JobSerializer,
    MatchDocument,
    MatchOptions,
    OfferInput,
    OfferRequest,
    OfferResult,
    ProposeInput,
    ReleaseInput,
    ReviewInput,
    ReviewResult,
    RoleRequestSerializer,
    ScreeningSerializer,
    TimeEntryInput,
    TimeEntrySerializer,
    errors,
)

Status = Deployment.Status


def _user(request: Request) -> User:
    """The signed-in user (IsAuthenticated lets only real users through)."""
    assert isinstance(request.user, User)
    return request.user


def _parse(request: Request, serializer: type[serializers.Serializer[Any]], view: APIView) -> dict[str, Any]:
    """The request's body, validated by `serializer` (400 naming each field at fault)."""
    body = serializer(data=request.data, context={"request": request, "view": view})
    body.is_valid(raise_exception=True)
    return dict(body.validated_data)


def _reads[V: Callable[..., Any]](serializer: type[serializers.BaseSerializer[Any]]) -> Callable[[V], V]:
    """The documented answers of a read-only collection: a page, one record, or an error."""
    return extend_schema_view(
        list=extend_schema(responses={200: serializer(many=True), **errors(400, 403, 404)}),
        retrieve=extend_schema(responses={200: serializer, **errors(403, 404)}),
    )


class _Scoped[M: Any](viewsets.GenericViewSet[M]):
    """A collection narrowed to what the asker may see; JSON bodies only."""

    parser_classes = [JSONParser]

    def get_queryset(self) -> QuerySet[M]:
        return visible(self.request.user, super().get_queryset())


# --- Incidents and facilities ------------------------------------------------------------------


@_reads(IncidentSerializer)
class IncidentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped[Incident]):
    """Incidents the asker is a member of (every incident for a superuser), with their role."""

    queryset = Incident.objects.all()
    serializer_class = IncidentSerializer
    filterset_class = IncidentFilterSet

    def get_queryset(self) -> QuerySet[Incident]:
        role = IncidentMembership.objects.filter(incident=OuterRef("pk"), user_id=self.request.user.pk or 0)
        return super().get_queryset().annotate(role=Subquery(role.values("role")[:1]))


@_reads(FacilitySerializer)
class FacilityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped[Facility]):
    """Facilities of the asker's incidents."""

    queryset = Facility.objects.select_related("incident")
    serializer_class = FacilitySerializer
    filterset_class = FacilityFilterSet


# --- Role requests ------------------------------------------------------------------------------

_WRITES = ("update", "partial_update", "destroy")


@extend_schema_view(
    list=extend_schema(responses={200: RoleRequestSerializer(many=True), **errors(400, 403, 404)}),
    retrieve=extend_schema(responses={200: RoleRequestSerializer, **errors(403, 404)}),
    create=extend_schema(responses={201: RoleRequestSerializer, **errors(400, 403, 409)}),
    update=extend_schema(responses={200: RoleRequestSerializer, **errors(400, 403, 404, 409)}),
    partial_update=extend_schema(responses={200: RoleRequestSerializer, **errors(400, 403, 404, 409)}),
    destroy=extend_schema(responses={204: None, **errors(403, 404, 409)}),
)
class RoleRequestViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _Scoped[RoleRequest],
):
    """Resource requests: members read them; commanders of the incident create, change and delete.

    A request with live deployments keeps its facility, qualification and their dates, and asks
    for at least as many people (409 otherwise); one that has any deployment is not deleted (409:
    cancel what must go, and lower the quantity instead).
    """

    queryset = (
        RoleRequest.objects.select_related("facility__incident", "qualification")
        .annotate(filled=Count("deployments", filter=Q(deployments__status__in=Deployment.FILLING)))
        # An aggregate drops the model's ordering; pages need one.
        .order_by("facility__incident__number", "facility__code", "start", "pk")
    )
    serializer_class = RoleRequestSerializer
    filterset_class = RoleRequestFilterSet

    def get_object(self) -> RoleRequest:
        role_request = super().get_object()
        if self.action in _WRITES:  # a member who may read it but not write it is told why
            incident = role_request.facility.incident
            if not access.can_command(self.request.user, incident):
                raise NotAllowed(f"Only a commander of incident {incident.number} can change its requests.")
            # As workflow.propose does: no proposal slips in between the checks and the write.
            RoleRequest.objects.select_for_update().filter(pk=role_request.pk).exists()
        return role_request

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            return super().update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with transaction.atomic():
            return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer: serializers.BaseSerializer[RoleRequest]) -> None:
        serializer.save(created_by=_user(self.request))
        self._reread(serializer)

    def perform_update(self, serializer: serializers.BaseSerializer[RoleRequest]) -> None:
        serializer.save()
        self._reread(serializer)

    def _reread(self, serializer: serializers.BaseSerializer[RoleRequest]) -> None:
        # The answer carries `filled`, an annotation of the queryset a saved instance lacks.
        assert serializer.instance is not None
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    def perform_destroy(self, instance: RoleRequest) -> None:
        made = instance.deployments.count()
        if made:
            raise IllegalTransition(
                f"Request #{instance.pk} has {made} deployment(s) on record and is kept; cancel the "
                "live ones and lower its quantity instead."
            )
        instance.delete()


# --- Deployments and their workflow -------------------------------------------------------------


def _move[F: Callable[..., Any]](
    request_body: type[serializers.Serializer[Any]] | None = None, **kwargs: Any
) -> Callable[[F], F]:
    """The schema of a workflow action: its body, the fresh deployment, and how it can fail."""
    return extend_schema(
        request=request_body,
        responses={200: DeploymentSerializer, **errors(400, 403, 404, 409)},
        **kwargs,
    )


@extend_schema_view(
    list=extend_schema(responses={200: DeploymentSerializer(many=True), **errors(400, 403, 404)}),
    retrieve=extend_schema(responses={200: DeploymentSerializer, **errors(403, 404)}),
)
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped[Deployment]):
    """Deployments: members see their incidents'; a responder their own from the offer on.

    POST proposes (commanders); the actions move one deployment along its workflow and answer
    it as it is now. 409 when the move is not possible from its state, 403 when the asker may see
    it but not move it, 404 when they may not see it.
    """

    queryset = Deployment.objects.select_related(
        "request__facility", "request__qualification", "expert__agency"
    )
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilterSet

    def _answer(self, deployment: Deployment, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=deployment.pk)
        return Response(DeploymentSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        request=ProposeInput,
        responses={201: DeploymentSerializer, **errors(400, 403, 409)},
        description="Propose an expert for one slot of a request (commanders of its incident): a "
        "draft the responder does not see until it is offered.",
    )
    def create(self, request: Request) -> Response:
        body = _parse(request, ProposeInput, self)
        deployment = workflow.propose(
            body["request"],
            body["expert"],
            by=_user(request),
            start=body.get("start"),
            end=body.get("end"),
            extension_approved=body["extension_approved"],
        )
        return self._answer(deployment, status.HTTP_201_CREATED)

    @_move(OfferInput, description="Offer a proposal to its expert, with a deadline (commanders).")
    @action(detail=True, methods=["post"])
    def offer(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        body = _parse(request, OfferInput, self)
        return self._answer(workflow.offer(deployment, by=_user(request), expires_at=body.get("expires_at")))

    @_move(description="Accept an open offer (the responder, or a commander on their behalf).")
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        return self._answer(workflow.accept(self.get_object(), by=_user(request)))

    @_move(DeclineInput, description="Decline an open offer (the responder, or a commander on their behalf).")
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        body = _parse(request, DeclineInput, self)
        return self._answer(workflow.decline(deployment, by=_user(request), reason=body["reason"]))

    @extend_schema(
        request=CheckInInput,
        responses={200: CheckInResult, **errors(400, 403, 404, 409)},
        description="Screen an arriving responder (commanders): a pass puts them on site, a fail "
        "cancels the deployment and reopens the slot. The screening is kept either way.",
    )
    @action(detail=True, methods=["post"], url_path="check-in")
    def check_in(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        body = _parse(request, CheckInInput, self)
        moved, screening = workflow.check_in(
            deployment,
            by=_user(request),
            temperature_c=body["temperature_c"],
            spo2=body["spo2"],
            symptoms=body["symptoms"],
            notes=body["notes"],
        )
        context = self.get_serializer_context()
        return Response(
            {
                "deployment": DeploymentSerializer(
                    self.get_queryset().get(pk=moved.pk), context=context
                ).data,
                "screening": ScreeningSerializer(screening, context=context).data,
            }
        )

    @_move(
        ReleaseInput,
        description="Demobilize a responder on site once check-out is complete: equipment back, time "
        "approved, return travel arranged (commanders). 409 `release_blocked` lists what is missing.",
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        body = _parse(request, ReleaseInput, self)
        return self._answer(
            workflow.release(deployment, by=_user(request), travel_arranged=body.get("travel_arranged"))
        )

    @_move(
        CancelInput,
        description="Cancel a proposal, an open offer or an accepted deployment (commanders); a "
        "responder may withdraw from their own accepted deployment.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        deployment = self.get_object()
        body = _parse(request, CancelInput, self)
        return self._answer(workflow.cancel(deployment, by=_user(request), reason=body["reason"]))


@extend_schema(responses={200: DeploymentSerializer(many=True), **errors(400, 403, 404)})
class MyDeploymentsView(ListAPIView[Deployment]):
    """The signed-in responder's own deployments from the offer on, open offers first.

    Offers past their deadline are expired as they are read (as on the /me/ page). Someone
    without a roster record of their own has none: an empty list.
    """

    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilterSet

    def get_queryset(self) -> QuerySet[Deployment]:
        user = self.request.user
        mine = Deployment.objects.filter(expert__user_id=user.pk or 0).exclude(status=Status.PROPOSED)
        open_offers_first = Case(
            When(status=Status.OFFERED, then=Value(0)), default=1, output_field=IntegerField()
        )
        return (
            visible(user, mine)
            .select_related("request__facility", "request__qualification", "expert__agency")
            .order_by(open_offers_first, "start", "pk")
        )

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        expert = getattr(request.user, "expert", None)
        if expert is not None:
            workflow.expire_due_offers(expert_id=expert.pk)
        return super().list(request, *args, **kwargs)


# --- The event log ------------------------------------------------------------------------------


@_reads(EventSerializer)
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped[Event]):
    """The activity log in id order: an incident's for its members, a responder's own events."""

    queryset = Event.objects.select_related("actor")
    serializer_class = EventSerializer
    filterset_class = EventFilterSet


# --- Time and expenses --------------------------------------------------------------------------


_RECORD_RELATED = ("deployment__request__facility", "deployment__expert", "approved_by")


class _Reviewable[R: (TimeEntry, Expense)](mixins.ListModelMixin, mixins.RetrieveModelMixin, _Scoped[R]):
    """Records a commander or finance officer approves or rejects in bulk."""

    @extend_schema(
        request=ReviewInput,
        responses={200: ReviewResult, **errors(400, 403)},
        description="Approve or reject submitted records (commanders and finance officers of their "
        "incidents); records already reviewed stay as they are. Every id must be among the records "
        "you may see, else nothing changes and the answer is 400 naming `ids`.",
    )
    @action(detail=False, methods=["post"])
    def review(self, request: Request) -> Response:
        body = _parse(request, ReviewInput, self)
        wanted = body["ids"]
        records = list(self.get_queryset().filter(pk__in=wanted))
        unknown = sorted(set(wanted) - {r.pk for r in records})
        if unknown:
            shown = ", ".join(map(str, unknown[:20])) + (" …" if len(unknown) > 20 else "")
            raise serializers.ValidationError({"ids": [f"No such record among those you may see: {shown}."]})
        changed = timesheets.review(
            records, by=_user(request), approve=body["approve"], reason=body["reason"]
        )
        return Response({"changed": changed})

    def _answer(self, record: R) -> Response:
        fresh = self.get_queryset().get(pk=record.pk)
        return Response(self.get_serializer(fresh).data, status=status.HTTP_201_CREATED)


@_reads(TimeEntrySerializer)
class TimeEntryViewSet(_Reviewable[TimeEntry]):
    """Hours per day: the responder's own, or their incidents' for members."""

    queryset = TimeEntry.objects.select_related(*_RECORD_RELATED)
    serializer_class = TimeEntrySerializer
    filterset_class = TimeEntryFilterSet

    @extend_schema(
        request=TimeEntryInput,
        responses={201: TimeEntrySerializer, **errors(400, 403, 409)},
        description="Log (or correct, until approved) one day's hours of a deployment on site or "
        "released: the responder, or a commander or finance officer for them.",
    )
    def create(self, request: Request) -> Response:
        body = _parse(request, TimeEntryInput, self)
        entry = timesheets.log_time(
            body["deployment"],
            by=_user(request),
            day=body["date"],
            regular_hours=body["regular_hours"],
            overtime_hours=body["overtime_hours"],
            notes=body["notes"],
        )
        return self._answer(entry)


@_reads(ExpenseSerializer)
class ExpenseViewSet(_Reviewable[Expense]):
    """Expenses: the responder's own, or their incidents' for members."""

    queryset = Expense.objects.select_related(*_RECORD_RELATED)
    serializer_class = ExpenseSerializer
    filterset_class = ExpenseFilterSet

    @extend_schema(
        request=ExpenseInput,
        responses={201: ExpenseSerializer, **errors(400, 403, 409)},
        description="Claim an expense of a deployment on site or released; mileage is computed "
        "(leave `amount` out).",
    )
    def create(self, request: Request) -> Response:
        body = _parse(request, ExpenseInput, self)
        expense = timesheets.add_expense(
            body["deployment"],
            by=_user(request),
            day=body["date"],
            category=body["category"],
            amount=body.get("amount"),
            description=body["description"],
        )
        return self._answer(expense)


# --- Matching, confirming offers, background jobs -----------------------------------------------


class MatchView(APIView):
    """Run matching on an incident (its commanders only); a dry run writes nothing."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=MatchOptions,
        responses={200: MatchDocument, 202: JobSerializer, **errors(400, 403, 404, 409)},
        operation_id="incidents_match",
    )
    def post(self, request: Request, pk: int) -> Response:
        # Someone who cannot see the incident learns nothing about it, not even that it exists.
        incident = get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)
        options = MatchOptions(data=request.data)
        options.is_valid(raise_exception=True)
        settings = dict(options.validated_data)
        if settings.pop("background"):
            job = jobs.start(incident, Job.Kind.MATCHING, by=_user(request), options=settings)
            job.refresh_from_db()  # an immediate backend has already run it
            return Response(JobSerializer(job, context={"request": request}).data, status=202)
        return Response(run(incident, by=_user(request), options=Options(**settings)))


class JobView(APIView):
    """A background job: its state and progress while it runs, then its result or why it failed.

    Seen by the person who started it (while they may still see its incident; an import belongs
    to none) and by whoever may read its kind of result on its incident: every member for
    matching, the report's readers for an export. Others get 404.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: JobSerializer, **errors(403, 404)}, operation_id="jobs_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        job = Job.objects.select_related("incident").filter(pk=pk).first()
        if job is None or not jobs.may_see(request.user, job):
            raise NotFound("No such job among those you may see.")
        return Response(JobSerializer(job, context={"request": request}).data)


class OffersView(APIView):
    """Confirm proposals: each becomes an offer with a deadline and an email, in one action."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=OfferRequest,
        responses={200: OfferResult, **errors(400, 403, 404, 409)},
        operation_id="incidents_offers",
    )
    def post(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)
        body = OfferRequest(data=request.data)
        body.is_valid(raise_exception=True)
        done = workflow.offer_proposals(
            incident,
            by=_user(request),
            deployments=body.validated_data.get("deployments"),
            expires_at=body.validated_data.get("expires_at"),
        )
        return Response(
            {
                "offered": [d.pk for d in done.offered],
                "skipped": [{"deployment": pk, "reason": why} for pk, why in sorted(done.skipped.items())],
            }
        )
