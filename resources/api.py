"""Roster API doors: the experts a user may see and the qualification catalog (read-only)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from incidents.access import visible
from incidents.serializers import errors
from resources.filters import ExpertFilterSet, QualificationFilterSet
from resources.models import Credential, Expert, Qualification
from resources.serializers import ExpertSerializer, QualificationSerializer


@extend_schema_view(
    list=extend_schema(responses={200: ExpertSerializer(many=True), **errors(400, 403, 404)}),
    retrieve=extend_schema(responses={200: ExpertSerializer, **errors(403, 404)}),
)
class ExpertViewSet(viewsets.ReadOnlyModelViewSet[Expert]):
    """The roster: commanders see all of it, finance officers and viewers the people deployed in
    their incidents, a responder themself (incidents/access.py)."""

    queryset = (
        Expert.objects.select_related("agency")
        .prefetch_related(
            Prefetch("credentials", queryset=Credential.objects.select_related("qualification"))
        )
        .order_by("last_name", "first_name", "pk")  # namesakes too need a stable place across pages
    )
    serializer_class = ExpertSerializer
    filterset_class = ExpertFilterSet

    def get_queryset(self) -> QuerySet[Expert]:
        return visible(self.request.user, super().get_queryset())


@extend_schema_view(
    list=extend_schema(responses={200: QualificationSerializer(many=True), **errors(400, 403, 404)}),
    retrieve=extend_schema(responses={200: QualificationSerializer, **errors(403, 404)}),
)
class QualificationViewSet(viewsets.ReadOnlyModelViewSet[Qualification]):
    """The qualification catalog: reference data every signed-in user reads (requests name it)."""

    queryset = Qualification.objects.all()
    serializer_class = QualificationSerializer
    filterset_class = QualificationFilterSet

    def get_queryset(self) -> QuerySet[Qualification]:
        return visible(self.request.user, super().get_queryset())
