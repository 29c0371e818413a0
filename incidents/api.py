"""Incident API doors: thin views over the services (CONTRACTS.md, "HTTP API")."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from incidents import jobs, workflow
from incidents.access import visible
from incidents.matching.loader import Options, run
from incidents.models import Incident, Job


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
        fields = [
            "id",
            "url",
            "incident",
            "kind",
            "status",
            "options",
            "created_at",
            "started_at",
            "finished_at",
            "result",
            "error",
        ]
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


class MatchView(APIView):
    """Run matching on an incident (its commanders only); a dry run writes nothing."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=MatchOptions,
        responses={200: MatchDocument, 202: JobSerializer},
        operation_id="incidents_match",
    )
    def post(self, request: Request, pk: int) -> Response:
        # Someone who cannot see the incident learns nothing about it, not even that it exists.
        incident = get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)
        options = MatchOptions(data=request.data)
        options.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated let only a real user through
        settings = dict(options.validated_data)
        if settings.pop("background"):
            job = jobs.start(incident, Job.Kind.MATCHING, by=request.user, options=settings)
            job.refresh_from_db()  # an immediate backend has already run it
            return Response(JobSerializer(job, context={"request": request}).data, status=202)
        return Response(run(incident, by=request.user, options=Options(**settings)))


class JobView(APIView):
    """A background job of an incident the asker belongs to: its state, then its result."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: JobSerializer}, operation_id="jobs_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        job = get_object_or_404(visible(request.user, Job.objects.all()), pk=pk)
        return Response(JobSerializer(job, context={"request": request}).data)


class OfferRequest(serializers.Serializer[dict[str, Any]]):
    """Which proposals to confirm (all of the incident's when omitted), and until when."""

    deployments = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, allow_empty=False, max_length=10_000
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


class OffersView(APIView):
    """Confirm proposals: each becomes an offer with a deadline and an email, in one action."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=OfferRequest, responses={200: OfferResult}, operation_id="incidents_offers")
    def post(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)
        body = OfferRequest(data=request.data)
        body.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        done = workflow.offer_proposals(
            incident,
            by=request.user,
            deployments=body.validated_data.get("deployments"),
            expires_at=body.validated_data.get("expires_at"),
        )
        return Response(
            {
                "offered": [d.pk for d in done.offered],
                "skipped": [{"deployment": pk, "reason": why} for pk, why in sorted(done.skipped.items())],
            }
        )
