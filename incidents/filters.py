"""The filters of the incident API's collections (CONTRACTS.md, "HTTP API").

The same conventions on every collection (resources/filters.py follows them too):
- a related record by its natural key — `incident` (number), `facility` (code), `qualification`
  (code), `agency` (code), `expert` (email) — or by id beside it: `incident_id`, `facility_id`, …;
- dates by `<field>_after` / `<field>_before`, both inclusive (`start_after=2026-12-01`);
- `status` (and `kind`, `priority`, `category`, `type`) repeatable: `?status=offered&status=accepted`;
- `search`: every word must appear (case-insensitive) in one of the fields the FilterSet names.
A value that does not parse (a bad date, an unknown status, `active=maybe`) answers 400 with
DRF's validation shape, keyed by the parameter's name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, Model, Q, QuerySet
from django_filters.fields import IsoDateTimeField

from incidents.models import (
    Approval,
    Deployment,
    Event,
    Expense,
    Facility,
    Incident,
    RoleRequest,
    TimeEntry,
)
from resources.models import Agency, Qualification

# The largest id a database stores (a signed 64-bit integer); bigger is a 400, not an overflow.
MAX_ID = 2**63 - 1


class _IdField(forms.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class IdFilter(django_filters.NumberFilter):  # type: ignore[misc]  # django-filter ships no types
    """A record's id: a whole number (django-filter's NumberFilter would take 1.5 for 1)."""

    field_class = _IdField


class _StrictBooleanField(forms.Field):
    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValidationError("Use true or false.", code="invalid")


class BooleanFilter(django_filters.BooleanFilter):  # type: ignore[misc]
    """`true` or `false`; django-filter's own would silently ignore `?active=maybe`."""

    field_class = _StrictBooleanField


class _AnyValues(forms.MultipleChoiceField):
    def valid_value(self, value: str) -> bool:
        return "\x00" not in value  # the database cannot compare text with NUL in it


class _Moment(IsoDateTimeField):  # type: ignore[misc]
    def to_python(self, value: Any) -> datetime | None:
        moment: datetime | None = super().to_python(value)
        try:  # the database compares in UTC: 9999-12-31T23:00-05:00 is past the last year it knows
            return None if moment is None else moment.astimezone(UTC)
        except OverflowError:
            raise ValidationError("That moment is out of range.", code="overflow") from None


class MomentFilter(django_filters.IsoDateTimeFilter):  # type: ignore[misc]
    """An ISO 8601 moment; one that cannot be put in UTC is a 400, not a database error."""

    field_class = _Moment


class ValuesFilter(django_filters.MultipleChoiceFilter):  # type: ignore[misc]
    """A repeatable exact match on an open set of values (event types)."""

    field_class = _AnyValues


def choices(field_choices: list[tuple[str, str]], label: str, path: str) -> django_filters.Filter:
    """A repeatable choice (`?status=a&status=b` matches either)."""
    return django_filters.MultipleChoiceFilter(
        field_name=path, choices=field_choices, label=label, distinct=False
    )


def search[M: Model](queryset: QuerySet[M], fields: tuple[str, ...], value: str) -> QuerySet[M]:
    """Rows where every word of `value` is in one of `fields` (so "alice lee" finds Alice Lee)."""
    for word in value.split():
        match = Q()
        for field in fields:
            match |= Q(**{f"{field}__icontains": word})
        queryset = queryset.filter(match)
    return queryset


class _Filters(django_filters.FilterSet):  # type: ignore[misc]
    """The base of every FilterSet here: `search` over the subclass's `search_fields`."""

    search_fields: tuple[str, ...] = ()

    def filter_search(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return search(queryset, self.search_fields, value)


def _search(what: str) -> django_filters.CharFilter:
    return django_filters.CharFilter(
        method="filter_search", label=f"Words to find (case-insensitive, all must match) in {what}."
    )


def _dates(path: str, what: str) -> tuple[django_filters.DateFilter, django_filters.DateFilter]:
    return (
        django_filters.DateFilter(
            field_name=path, lookup_expr="gte", label=f"{what} on or after (YYYY-MM-DD)."
        ),
        django_filters.DateFilter(
            field_name=path, lookup_expr="lte", label=f"{what} on or before (YYYY-MM-DD)."
        ),
    )


def _by_code(path: str, label: str) -> django_filters.CharFilter:
    return django_filters.CharFilter(field_name=path, lookup_expr="iexact", label=label)


class IncidentFilterSet(_Filters):
    """`/api/incidents/`: by number, status, kind, start date; search number and name."""

    search_fields = ("number", "name")

    number = _by_code("number", "Incident number, e.g. WA-2026-01.")
    status = choices(Incident.Status.choices, "Status (repeatable).", "status")
    kind = choices(Incident.Kind.choices, "Kind (repeatable).", "kind")
    start_after, start_before = _dates("start", "Started")
    search = _search("number and name")

    class Meta:
        model = Incident
        fields: list[str] = []


class FacilityFilterSet(_Filters):
    """`/api/facilities/`: by incident, code, state, county, kind; search code, name, county, address."""

    search_fields = ("code", "name", "county", "address")

    incident = _by_code("incident__number", "Incident number.")
    incident_id = IdFilter(field_name="incident__id", label="Incident id.")
    code = _by_code("code", "Facility code, e.g. HOSP-SPK-01.")
    state = _by_code("state", "Two-letter state.")
    county = _by_code("county", "County.")
    kind = choices(Facility.Kind.choices, "Kind (repeatable).", "kind")
    search = _search("code, name, county and address")

    class Meta:
        model = Facility
        fields: list[str] = []


class RoleRequestFilterSet(_Filters):
    """`/api/requests/`: by incident, facility, qualification, priority, dates, open slots."""

    search_fields = (
        "facility__code",
        "facility__name",
        "qualification__code",
        "qualification__name",
        "notes",
    )

    incident = _by_code("facility__incident__number", "Incident number.")
    incident_id = IdFilter(field_name="facility__incident__id", label="Incident id.")
    facility = _by_code("facility__code", "Facility code.")
    facility_id = IdFilter(field_name="facility__id", label="Facility id.")
    qualification = _by_code("qualification__code", "Qualification code, e.g. RN.")
    qualification_id = IdFilter(field_name="qualification__id", label="Qualification id.")
    priority = choices(RoleRequest.Priority.choices, "Priority (repeatable).", "priority")
    start_after, start_before = _dates("start", "Starts")
    end_after, end_before = _dates("end", "Ends")
    open = BooleanFilter(
        method="filter_open", label="true: requests with a slot nobody fills yet; false: full ones."
    )
    search = _search("facility code and name, qualification code and name, and notes")

    class Meta:
        model = RoleRequest
        fields: list[str] = []

    def filter_open(self, queryset: QuerySet[RoleRequest], name: str, value: bool) -> QuerySet[RoleRequest]:
        # `filled` is the viewset's annotation (live deployments of the request).
        slots = Q(filled__lt=F("quantity"))
        return queryset.filter(slots if value else ~slots)


_DEPLOYMENT_SEARCH = ("expert__first_name", "expert__last_name", "expert__email", "request__facility__code")


class DeploymentFilterSet(_Filters):
    """`/api/deployments/`, `/api/me/deployments/`: who, where, what, when, in which state."""

    search_fields = _DEPLOYMENT_SEARCH

    incident = _by_code("request__facility__incident__number", "Incident number.")
    incident_id = IdFilter(field_name="request__facility__incident__id", label="Incident id.")
    facility = _by_code("request__facility__code", "Facility code.")
    facility_id = IdFilter(field_name="request__facility__id", label="Facility id.")
    request = IdFilter(field_name="request__id", label="Role request id.")
    expert = _by_code("expert__email", "Expert email.")
    expert_id = IdFilter(field_name="expert__id", label="Expert id.")
    qualification = _by_code("request__qualification__code", "Qualification code.")
    qualification_id = IdFilter(field_name="request__qualification__id", label="Qualification id.")
    agency = _by_code("expert__agency__code", "Agency code of the expert.")
    agency_id = IdFilter(field_name="expert__agency__id", label="Agency id of the expert.")
    priority = choices(
        RoleRequest.Priority.choices, "Priority of the request (repeatable).", "request__priority"
    )
    status = choices(Deployment.Status.choices, "Status (repeatable).", "status")
    start_after, start_before = _dates("start", "Starts")
    end_after, end_before = _dates("end", "Ends")
    search = _search("the expert's name and email and the facility code")

    class Meta:
        model = Deployment
        fields: list[str] = []


class EventFilterSet(_Filters):
    """`/api/events/`: the activity log by incident, deployment, type, moment; `since` an event id."""

    incident = _by_code("incident__number", "Incident number.")
    incident_id = IdFilter(field_name="incident__id", label="Incident id.")
    deployment = IdFilter(field_name="deployment__id", label="Deployment id.")
    type = ValuesFilter(
        field_name="type", label="Type, e.g. deployment.accepted (repeatable).", distinct=False
    )
    since = IdFilter(
        field_name="id",
        lookup_expr="gt",
        label="Only events after this event id (as the WebSocket's ?since=).",
    )
    at_after = MomentFilter(field_name="at", lookup_expr="gte", label="At or after this moment (ISO 8601).")
    at_before = MomentFilter(field_name="at", lookup_expr="lte", label="At or before this moment (ISO 8601).")

    class Meta:
        model = Event
        fields: list[str] = []


_RECORD_SEARCH = (
    "deployment__expert__first_name",
    "deployment__expert__last_name",
    "deployment__expert__email",
)


class _RecordFilterSet(_Filters):
    """What time entries and expenses share: their deployment's incident, facility, agency."""

    search_fields = _RECORD_SEARCH

    incident = _by_code("deployment__request__facility__incident__number", "Incident number.")
    incident_id = IdFilter(field_name="deployment__request__facility__incident__id", label="Incident id.")
    deployment = IdFilter(field_name="deployment__id", label="Deployment id.")
    facility = _by_code("deployment__request__facility__code", "Facility code.")
    facility_id = IdFilter(field_name="deployment__request__facility__id", label="Facility id.")
    expert_id = IdFilter(field_name="deployment__expert__id", label="Expert id.")
    agency = _by_code("deployment__expert__agency__code", "Agency code of the expert.")
    agency_id = IdFilter(field_name="deployment__expert__agency__id", label="Agency id of the expert.")
    status = choices(Approval.choices, "Approval status (repeatable).", "status")
    date_after, date_before = _dates("date", "Day")
    search = _search("the expert's name and email")


class TimeEntryFilterSet(_RecordFilterSet):
    """`/api/time-entries/`."""

    class Meta:
        model = TimeEntry
        fields: list[str] = []


class ExpenseFilterSet(_RecordFilterSet):
    """`/api/expenses/`: also by category."""

    category = choices(Expense.Category.choices, "Category (repeatable).", "category")

    class Meta:
        model = Expense
        fields: list[str] = []


# --- Page filters (server-rendered forms, labelled for people) -----------------------------------


class ApprovalFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    """The approvals page: submitted hours and expenses of one incident, narrowed by facility,
    agency, day and responder. The same fields fit both models (`TimeEntry`, `Expense`)."""

    facility = django_filters.ModelChoiceFilter(
        field_name="deployment__request__facility",
        queryset=Facility.objects.none(),
        empty_label="All facilities",
    )
    agency = django_filters.ModelChoiceFilter(
        field_name="deployment__expert__agency", queryset=Agency.objects.all(), empty_label="All agencies"
    )
    date_after = django_filters.DateFilter(
        field_name="date", lookup_expr="gte", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_before = django_filters.DateFilter(
        field_name="date", lookup_expr="lte", label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    search = django_filters.CharFilter(method="filter_search", label="Responder")

    def __init__(self, data: Any, queryset: QuerySet[Any], *, incident: Incident) -> None:
        super().__init__(data, queryset=queryset)
        self.filters["facility"].queryset = incident.facilities.order_by("code")

    def filter_search(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return search(queryset, _RECORD_SEARCH, value)


class ProposalFilterSet(django_filters.FilterSet):  # type: ignore[misc]
    """The matching board's proposals of one incident, narrowed by facility, role, priority and
    person."""

    facility = django_filters.ModelChoiceFilter(
        field_name="request__facility", queryset=Facility.objects.none(), empty_label="All facilities"
    )
    qualification = django_filters.ModelChoiceFilter(
        field_name="request__qualification",
        queryset=Qualification.objects.all(),
        empty_label="All roles",
        label="Role",
    )
    priority = django_filters.ChoiceFilter(
        field_name="request__priority", choices=RoleRequest.Priority.choices, empty_label="Any priority"
    )
    search = django_filters.CharFilter(method="filter_search", label="Person")

    def __init__(self, data: Any, queryset: QuerySet[Any], *, incident: Incident) -> None:
        super().__init__(data, queryset=queryset)
        self.filters["facility"].queryset = incident.facilities.order_by("code")

    def filter_search(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return search(queryset, ("expert__first_name", "expert__last_name", "expert__email"), value)
