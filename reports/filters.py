"""The parameters every report takes, one FilterSet for the page's form, the API and the command.

`incident` (its number, e.g. WA-2026-01) is required; `facility` (code) or `facility_id`,
`agency` (code) or `agency_id`, `from` and `to` (dates, inclusive) and `status` (repeatable)
narrow it. What a date or a status means differs per report; each report module subclasses
`ReportFilterSet` with its own statuses, default statuses and date rule.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

import django_filters
from django import forms
from django.db.models import Model, Q, QuerySet
from django.http import QueryDict

from incidents.access import visible
from incidents.models import Deployment, Incident
from resources.models import Agency

if TYPE_CHECKING:
    from incidents.access import Actor


def scope[M: Model](user: Actor | None, queryset: QuerySet[M]) -> QuerySet[M]:
    """`visible(user, …)` for people; the command line (user None) is the operator and sees all."""
    return queryset if user is None else visible(user, queryset)


class ReportFilterSet(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
    """Incident, facility, agency, dates and status — the filters of every report."""

    # The path from the model a queryset holds to its Deployment: "" or "deployment__".
    deployment: ClassVar[str] = ""
    status_choices: ClassVar[list[tuple[str, str]]] = []
    default_status: ClassVar[tuple[str, ...]] = ()
    # Deployment states a report lists at all (a proposal or a declined offer is nobody's record).
    deployment_states: ClassVar[tuple[str, ...]] = (
        Deployment.Status.ACCEPTED,
        Deployment.Status.ON_SITE,
        Deployment.Status.RELEASED,
    )

    incident = django_filters.ModelChoiceFilter(
        label="Incident",
        to_field_name="number",
        queryset=Incident.objects.none(),
        method="filter_incident",
        required=True,
        empty_label=None,
    )
    facility = django_filters.ChoiceFilter(
        label="Facility", method="filter_facility", empty_label="All facilities"
    )
    facility_id = django_filters.NumberFilter(
        label="Facility id", method="filter_facility_id", min_value=1, widget=forms.HiddenInput
    )
    agency = django_filters.ChoiceFilter(label="Agency", method="filter_agency", empty_label="All agencies")
    agency_id = django_filters.NumberFilter(
        label="Agency id", method="filter_agency_id", min_value=1, widget=forms.HiddenInput
    )
    date_from = django_filters.DateFilter(
        label="From", method="filter_from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = django_filters.DateFilter(
        label="To", method="filter_to", widget=forms.DateInput(attrs={"type": "date"})
    )
    status = django_filters.MultipleChoiceFilter(
        label="Status", method="filter_status", widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Deployment
        fields: ClassVar[list[str]] = []

    def __init__(self, data: QueryDict | None = None, *, user: Actor | None, **kwargs: Any) -> None:
        query = data.copy() if data is not None else QueryDict(mutable=True)
        if "status" not in query:
            query.setlist("status", list(self.default_status))
        super().__init__(query, **kwargs)
        self.user = user
        incidents = scope(user, Incident.objects.all())
        number = query.get("incident")
        self.selected: Incident | None = incidents.filter(number=number).first() if number else None
        self.filters["incident"].queryset = incidents
        self.filters["status"].extra["choices"] = self.status_choices
        facilities: list[tuple[str, str]] = []
        agencies: list[tuple[str, str]] = []
        if self.selected is not None:
            facilities = [
                (code, f"{code} {name}")
                for code, name in self.selected.facilities.order_by("code").values_list("code", "name")
            ]
            agencies = list(
                Agency.objects.filter(experts__deployments__request__facility__incident=self.selected)
                .distinct()
                .order_by("name")
                .values_list("code", "name")
            )
        self.filters["facility"].extra["choices"] = facilities
        self.filters["agency"].extra["choices"] = agencies

    # --- filtering (each path starts from the queryset's model to its deployment) ---------------

    def _q(self, path: str, value: Any) -> Q:
        return Q(**{f"{self.deployment}{path}": value})

    def filter_incident(self, qs: QuerySet[Any], name: str, value: Incident) -> QuerySet[Any]:
        return qs.filter(
            self._q("request__facility__incident", value), self._q("status__in", self.deployment_states)
        )

    def filter_facility(self, qs: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return qs.filter(self._q("request__facility__code", value))

    def filter_facility_id(self, qs: QuerySet[Any], name: str, value: int) -> QuerySet[Any]:
        return qs.filter(self._q("request__facility_id", value))

    def filter_agency(self, qs: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return qs.filter(self._q("expert__agency__code", value))

    def filter_agency_id(self, qs: QuerySet[Any], name: str, value: int) -> QuerySet[Any]:
        return qs.filter(self._q("expert__agency_id", value))

    def filter_from(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        raise NotImplementedError

    def filter_to(self, qs: QuerySet[Any], name: str, value: date) -> QuerySet[Any]:
        raise NotImplementedError

    def filter_status(self, qs: QuerySet[Any], name: str, value: list[str]) -> QuerySet[Any]:
        return qs.filter(status__in=value)

    # --- reading the validated parameters -----------------------------------------------------------

    @property
    def cleaned(self) -> dict[str, Any]:
        data: dict[str, Any] = self.form.cleaned_data
        return data

    @property
    def date_range(self) -> tuple[date | None, date | None]:
        return self.cleaned.get("from"), self.cleaned.get("to")

    def describe(self) -> str:
        """The filters line of the report: every filter, "all" where none was set."""
        data = self.cleaned
        facility = data.get("facility") or (f"#{data['facility_id']}" if data.get("facility_id") else "all")
        agency = data.get("agency") or (f"#{data['agency_id']}" if data.get("agency_id") else "all")
        start, end = self.date_range
        if start and end:
            dates = f"{start:%Y-%m-%d} – {end:%Y-%m-%d}"
        elif start:
            dates = f"from {start:%Y-%m-%d}"
        elif end:
            dates = f"until {end:%Y-%m-%d}"
        else:
            dates = "all"
        labels = dict(self.status_choices)
        statuses = ", ".join(str(labels[s]) for s in data.get("status") or ()) or "all"
        return (
            f"facility {facility} · agency {agency} · {self.date_label} {dates} · "
            f"{self.status_label} {statuses}"
        )

    date_label: ClassVar[str] = "dates"
    status_label: ClassVar[str] = "status"


# `from` and `to` are Python keywords, so they are declared as date_from/date_to above and carry
# their public names here: ?from=2026-12-01&to=2026-12-14, as `export_report --from/--to`.
PUBLIC_NAMES = {"date_from": "from", "date_to": "to"}
ReportFilterSet.declared_filters = OrderedDict(
    (PUBLIC_NAMES.get(name, name), f) for name, f in ReportFilterSet.declared_filters.items()
)
ReportFilterSet.base_filters = ReportFilterSet.get_filters()
