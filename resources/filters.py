"""The filters of the roster API's collections; the conventions are incidents/filters.py's."""

from __future__ import annotations

from datetime import date

import django_filters
from django.db.models import QuerySet
from django.utils import timezone

from incidents.filters import BooleanFilter, IdFilter, choices, search
from resources.models import Availability, Credential, Expert, Qualification

_CREDENTIAL_FILTERS = ("qualification", "qualification_id", "verified")


class ExpertFilterSet(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
    """`/api/experts/`: by agency, qualification held, availability, active; search name, email, home."""

    agency = django_filters.CharFilter(field_name="agency__code", lookup_expr="iexact", label="Agency code.")
    agency_id = IdFilter(field_name="agency__id", label="Agency id.")
    qualification = django_filters.CharFilter(
        method="filter_qualification", label="Holds a credential of this qualification (code, e.g. RN)."
    )
    qualification_id = IdFilter(
        method="filter_qualification_id", label="Holds a credential of this qualification (id)."
    )
    verified = BooleanFilter(
        method="filter_verified",
        label="true: only people whose credential (of `qualification` when given) is verified and unexpired.",
    )
    available_on = django_filters.DateFilter(
        method="filter_available_on", label="Available on this day (YYYY-MM-DD)."
    )
    active = BooleanFilter(field_name="active", label="On the active roster.")
    search = django_filters.CharFilter(
        method="filter_search",
        label="Words to find (case-insensitive, all must match) in the name, email and home place.",
    )

    class Meta:
        model = Expert
        fields: list[str] = []

    def _credentials(self) -> QuerySet[Credential]:
        """The credentials the query asks about: of the qualification, verified if asked."""
        held = Credential.objects.all()
        data = self.form.cleaned_data
        if data.get("qualification"):
            held = held.filter(qualification__code__iexact=data["qualification"])
        if data.get("qualification_id"):
            held = held.filter(qualification_id=data["qualification_id"])
        if data.get("verified"):
            today = timezone.localdate()
            held = held.filter(verified=True).exclude(expires_on__lt=today)
        return held

    def _holding(self, queryset: QuerySet[Expert], name: str) -> QuerySet[Expert]:
        # The three credential filters make one subquery, applied by the first of them given.
        given = [n for n in _CREDENTIAL_FILTERS if self.form.cleaned_data.get(n)]
        if not given or given[0] != name:
            return queryset
        return queryset.filter(id__in=self._credentials().values("expert_id"))

    def filter_qualification(self, queryset: QuerySet[Expert], name: str, value: str) -> QuerySet[Expert]:
        return self._holding(queryset, name)

    def filter_qualification_id(self, queryset: QuerySet[Expert], name: str, value: int) -> QuerySet[Expert]:
        return self._holding(queryset, name)

    def filter_verified(self, queryset: QuerySet[Expert], name: str, value: bool) -> QuerySet[Expert]:
        return self._holding(queryset, name)

    def filter_available_on(self, queryset: QuerySet[Expert], name: str, value: date) -> QuerySet[Expert]:
        windows = Availability.objects.filter(start__lte=value, end__gte=value)
        return queryset.filter(id__in=windows.values("expert_id"))

    def filter_search(self, queryset: QuerySet[Expert], name: str, value: str) -> QuerySet[Expert]:
        return search(queryset, ("first_name", "last_name", "email", "home_place"), value)


class QualificationFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    """`/api/qualifications/`: by kind, jurisdictional; search code and name."""

    code = django_filters.CharFilter(field_name="code", lookup_expr="iexact", label="Code, e.g. RN.")
    kind = choices(Qualification.Kind.choices, "Kind (repeatable).", "kind")
    jurisdictional = BooleanFilter(
        field_name="jurisdictional", label="The credential must be issued by the facility's state."
    )
    search = django_filters.CharFilter(
        method="filter_search", label="Words to find (case-insensitive, all must match) in code and name."
    )

    class Meta:
        model = Qualification
        fields: list[str] = []

    def filter_search(
        self, queryset: QuerySet[Qualification], name: str, value: str
    ) -> QuerySet[Qualification]:
        return search(queryset, ("code", "name"), value)
