"""Report pages: `/reports/` and `/reports/<kind>/?incident=<number>&…` (the API's query string).

Thin doors: the filters go through `reports.service` (the same checks as the API and the
command), the report module computes, the template shows totals and paginated tables, and the
download buttons call `/api/reports/<kind>/` with the very same query. "Prepare in the
background" posts to `/reports/<kind>/prepare/?<query>` (`prepare`), which starts an export job
(reports/jobs.py) and comes back to the page with `&job=<id>`: the page then shows the job's
progress (incidents/static/incidents/job.js polls `/api/jobs/<id>/`) and its download link.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from deploy_tracker.errors import InvalidInput, NotAllowed
from incidents.access import visible
from incidents.models import Incident, IncidentMembership, Job
from reports import charts, service
from reports import jobs as report_jobs
from reports.demobilization import COLUMNS as CHECKOUT
from reports.demobilization import Demobilization, DemobilizationFilterSet
from reports.filters import ReportFilterSet
from reports.finance import PEOPLE as FINANCE_PEOPLE
from reports.finance import Finance, FinanceFilterSet
from reports.logistics import BY_DAY, DRIVE_MAX_KM, FACILITIES, LODGING_KM, Logistics, LogisticsFilterSet
from reports.logistics import PEOPLE as LOGISTICS_PEOPLE
from reports.roster import COLUMNS as ROSTER
from reports.roster import Roster, RosterFilterSet
from reports.service import KINDS, ReportNotFound
from reports.spec import Column, Formula, Kind, Row

PER_PAGE = 50
Role = IncidentMembership.Role
PAGE_PARAMS = ("page", "days_page", "facilities_page", "job")


def show(kind: Kind, value: Any) -> str:
    """A cell as the page prints it (the workbook formats the same value)."""
    if isinstance(value, Formula):
        value = value.value
    if value is None or value == "":
        return ""
    if kind is Kind.BOOL:
        return "Yes" if value else "No"
    if kind is Kind.DATE and isinstance(value, date):
        return value.isoformat()
    if kind is Kind.DATETIME and isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if kind is Kind.MONEY:
        return f"${value:,.2f}"
    if kind is Kind.HOURS:
        return f"{value:,.2f}"
    if kind is Kind.KM:
        return f"{value:,.1f}"
    if kind is Kind.PERCENT:
        return f"{Decimal(value) * 100:.2f} %"
    if kind is Kind.INT:
        return f"{value:,}"
    return str(value)


@dataclass
class Table:
    """A paginated table of report rows, formatted for the page."""

    columns: Sequence[Column]
    page: Page[Row]
    param: str
    query: str  # the filters, for the pager's links

    @property
    def numeric(self) -> list[bool]:
        return [c.kind not in (Kind.TEXT, Kind.BOOL, Kind.DATE, Kind.DATETIME) for c in self.columns]

    @property
    def headers(self) -> list[tuple[str, bool]]:
        return list(zip((c.header for c in self.columns), self.numeric, strict=True))

    @property
    def rows(self) -> list[list[tuple[str, bool]]]:
        numeric = self.numeric
        return [
            [(show(c.kind, v), numeric[i]) for i, (c, v) in enumerate(zip(self.columns, row, strict=True))]
            for row in self.page.object_list
        ]


def _table(
    request: HttpRequest, columns: Sequence[Column], rows: Iterable[Row], query: str, param: str = "page"
) -> Table:
    page = Paginator(list(rows), PER_PAGE).get_page(request.GET.get(param))
    return Table(columns, page, param, query)


def _query(request: HttpRequest) -> QueryDict:
    query = request.GET.copy()
    for name in PAGE_PARAMS:
        query.pop(name, None)
    return query


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The incidents the asker belongs to, with the reports each role may open."""
    rows: list[tuple[Incident, str | None]]
    if request.user.is_superuser:
        rows = [(incident, None) for incident in visible(request.user, Incident.objects.all())]
    else:
        rows = [
            (m.incident, m.role)
            for m in IncidentMembership.objects.filter(user_id=request.user.pk or 0).select_related(
                "incident"
            )
        ]
    incidents = [
        {
            "incident": incident,
            "reports": [
                (
                    kind.title,
                    f"{reverse('report', args=[kind.key])}?{urlencode({'incident': incident.number})}",
                )
                for kind in KINDS.values()
                if kind.key != "finance" or role in (None, Role.COMMANDER, Role.FINANCE)
            ],
        }
        for incident, role in rows
    ]
    return render(request, "reports/index.html", {"incidents": incidents})


@login_required
def report_page(request: HttpRequest, kind: str) -> HttpResponse:
    """One report with its filter form, totals, tables and download buttons."""
    try:
        spec = service.kind_of(kind)
    except ReportNotFound as exc:
        raise Http404(exc.message) from None
    query = _query(request)
    filters = service.filterset(kind, query, user=request.user)
    context: dict[str, Any] = {"kind": spec, "filters": filters, "form": filters.form}
    if "incident" not in query:
        return render(request, "reports/choose.html", context)
    try:
        service.check(kind, filters, user=request.user)
    except ReportNotFound as exc:
        raise Http404(exc.message) from None
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except InvalidInput as exc:
        context["problem"] = exc.message
        return render(request, "reports/choose.html", context, status=400)
    encoded = query.urlencode()
    context |= {
        "incident": filters.selected,
        "described": filters.describe(),
        "query": encoded,
        "downloads": _downloads(kind, query),
        "files": _files(kind),
        "prepare_url": f"{reverse('report-prepare', args=[kind])}?{encoded}",
        **_job(request, kind),
    }
    context |= PAGES[kind](request, filters, encoded)
    return render(request, f"reports/{kind}.html", context)


def _files(kind: str) -> list[tuple[str, str]]:
    """The files a report can be prepared as: (value of the form's `file`, label)."""
    sheets = service.kind_of(kind).sheets
    if len(sheets) == 1:
        return [("xlsx", "Workbook (xlsx)"), ("csv", "CSV")]
    return [("xlsx", "Workbook (xlsx)"), *((f"csv:{sheet}", f"CSV: {sheet}") for sheet in sheets)]


def _job(request: HttpRequest, kind: str) -> dict[str, Any]:
    """The background export named by `?job=`, for the page to follow (404 if not the asker's to see)."""
    wanted = request.GET.get("job")
    if not wanted:
        return {}
    if not wanted.isdigit():
        raise Http404("No such export.")
    try:
        job = report_jobs.find(request.user, int(wanted), kind=kind)
    except ReportNotFound as exc:
        raise Http404(exc.message) from None
    file = report_jobs.stored_file(job)
    label, stage = report_jobs.describe(job, file)
    return {
        "job": job,
        "job_file": file,
        "job_ended": job.status in ENDED,
        "job_label": label,
        "job_stage": stage,
    }


ENDED = (Job.Status.DONE, Job.Status.FAILED)


@login_required
@require_POST
def prepare(request: HttpRequest, kind: str) -> HttpResponse:
    """Start writing the report's file in the background; back to the page, which follows the job.

    The filters are the page's query string; the form's `file` is `xlsx`, `csv` or `csv:<sheet>`.
    """
    try:
        service.kind_of(kind)
    except ReportNotFound as exc:
        raise Http404(exc.message) from None
    query = _query(request)
    fmt, _, sheet = request.POST.get("file", "").partition(":")
    assert isinstance(request.user, User)  # login_required
    page = f"{reverse('report', args=[kind])}?{query.urlencode()}"
    try:
        job = report_jobs.start(kind, query, fmt=fmt, sheet=sheet or None, by=request.user)
    except ReportNotFound as exc:
        raise Http404(exc.message) from None
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from None
    except InvalidInput as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(page)
    return HttpResponseRedirect(f"{page}&job={job.pk}")


def _downloads(kind: str, query: QueryDict) -> list[tuple[str, str]]:
    base = reverse("api-report", args=[kind])

    def link(**extra: str) -> str:
        q = query.copy()
        for name, value in extra.items():
            q[name] = value
        return f"{base}?{q.urlencode()}"

    sheets = service.kind_of(kind).sheets
    links = [("Workbook (xlsx)", link(format="xlsx"))]
    for sheet in sheets:
        label = f"CSV: {sheet}" if len(sheets) > 1 else "CSV"
        links.append((label, link(format="csv", sheet=sheet) if len(sheets) > 1 else link(format="csv")))
    return links


# --- Per report --------------------------------------------------------------------------------------


def _finance(request: HttpRequest, filters: ReportFilterSet, query: str) -> dict[str, Any]:
    assert isinstance(filters, FinanceFilterSet)
    finance = Finance(filters, request.user).run()
    burn = finance.burn()
    return {
        "total": finance.total,
        "cost_code": finance.cost_code,
        "agencies": sorted(finance.agencies.items()),
        "categories": sorted(finance.expenses_by_category.items()),
        "expense_count": finance.expense_count,
        "burn": burn,
        "chart": charts.burn_chart(burn),
        "people": _table(request, FINANCE_PEOPLE, finance.people_rows(), query),
    }


def _demobilization(request: HttpRequest, filters: ReportFilterSet, query: str) -> dict[str, Any]:
    assert isinstance(filters, DemobilizationFilterSet)
    rows = list(Demobilization(filters, request.user).rows())
    status, ready, blockers = (CHECKOUT.index(c) for c in _columns(CHECKOUT, "status", "ready", "blockers"))
    return {
        "counts": {
            "released": sum(1 for r in rows if r[status] == "Released"),
            "ready": sum(1 for r in rows if r[ready]),
            "blocked": sum(1 for r in rows if r[blockers]),
            "all": len(rows),
        },
        "table": _table(request, CHECKOUT, rows, query),
    }


def _logistics(request: HttpRequest, filters: ReportFilterSet, query: str) -> dict[str, Any]:
    assert isinstance(filters, LogisticsFilterSet)
    logistics = Logistics(filters, request.user)
    return {
        "start": logistics.start,
        "end": logistics.end,
        "lodging_km": LODGING_KM,
        "drive_max_km": DRIVE_MAX_KM,
        "facilities": _table(request, FACILITIES, logistics.facility_rows(), query, "facilities_page"),
        "days": _table(request, BY_DAY, logistics.day_rows(), query, "days_page"),
        "people": _table(request, LOGISTICS_PEOPLE, logistics.people_rows(), query),
    }


def _roster(request: HttpRequest, filters: ReportFilterSet, query: str) -> dict[str, Any]:
    assert isinstance(filters, RosterFilterSet)
    return {"table": _table(request, ROSTER, Roster(filters, request.user).rows(), query)}


PAGES = {
    "finance": _finance,
    "demobilization": _demobilization,
    "logistics": _logistics,
    "roster": _roster,
}


def _columns(columns: Sequence[Column], *keys: str) -> list[Column]:
    by_key = {c.key: c for c in columns}
    return [by_key[k] for k in keys]
