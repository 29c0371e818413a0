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

from incidents.access import visible
from incidents.matching.loader import Options, run
from incidents.models import Incident


class MatchOptions(serializers.Serializer[dict[str, Any]]):
    """The options of `manage.py match`, as a JSON body."""

    dry_run = serializers.BooleanField(default=False)
    radius_km = serializers.FloatField(required=False, allow_null=True, min_value=0.001)
    include_unverified = serializers.BooleanField(default=False)


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

    @extend_schema(request=MatchOptions, responses={200: MatchDocument}, operation_id="incidents_match")
    def post(self, request: Request, pk: int) -> Response:
        # Someone who cannot see the incident learns nothing about it, not even that it exists.
        incident = get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)
        options = MatchOptions(data=request.data)
        options.is_valid(raise_exception=True)
        assert isinstance(request.user, User)  # IsAuthenticated let only a real user through
        return Response(run(incident, by=request.user, options=Options(**options.validated_data)))
