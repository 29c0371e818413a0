"""The reports' API doors (CONTRACTS.md, "HTTP API").

* `GET /api/reports/{kind}/?incident=…&format=xlsx|csv`: a report as a file, written now.
* `POST /api/reports/{kind}/jobs/` with the same parameters as a JSON object: 202 and an `export`
  job that writes the file in the background (reports/jobs.py); `GET /api/jobs/{id}/` follows it.
* `GET /api/jobs/{id}/file/`: that job's file once it is done, for whoever may read that report of
  that incident when they ask.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from deploy_tracker.errors import InvalidInput
from incidents.serializers import ErrorSerializer, JobSerializer, errors
from reports import files, service
from reports import jobs as report_jobs
from reports.files import CONTENT_TYPES
from reports.service import FORMATS, KINDS

FILTERS = ("incident", "facility", "facility_id", "agency", "agency_id", "from", "to", "status")
PARAMETERS = {*FILTERS, "format", "sheet"}
SHEET_HELP = (
    "CSV only: which sheet (default: the first listed). finance: labor, people, expenses, summary, "
    "burn; demobilization: checkout; logistics: people, days, facilities; roster: people."
)
STATUS_HELP = "finance: approval (default approved); others: deployment status."


def _parameter(name: str, description: str, **kwargs: Any) -> OpenApiParameter:
    return OpenApiParameter(name, location=OpenApiParameter.QUERY, description=description, **kwargs)


KIND = OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(KINDS))


def _parameters(kind: str, query: QueryDict) -> tuple[QueryDict, str, str]:
    """A report file's filters, format and sheet, each checked (400 naming the first at fault)."""
    service.kind_of(kind)
    unknown = sorted(set(query) - PARAMETERS)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]}: not a parameter of this report (use {', '.join(sorted(PARAMETERS))}).",
            field=unknown[0],
        )
    fmt = query.get("format", "")
    if fmt not in FORMATS:
        raise InvalidInput("format: choose xlsx or csv.", field="format")
    sheet = service.sheet_for(kind, query.get("sheet"))
    data = query.copy()
    for name in ("format", "sheet"):
        data.pop(name, None)
    return data, fmt, sheet


class _JSONOnly(APIView):
    permission_classes = [IsAuthenticated]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # Files are answered as they are and errors as JSON, whatever the client accepts; DRF's
        # own ?format= renderer switch would answer 404.
        return JSONRenderer(), JSONRenderer.media_type


class ReportView(_JSONOnly):
    """A report of one incident as a workbook (every sheet) or a CSV file (one sheet).

    Finance is for the incident's finance officers and commanders; demobilization, logistics
    and roster for all its members. Bad parameters answer 400 naming the parameter; an incident
    the asker cannot see answers 404.
    """

    @extend_schema(
        operation_id="reports_retrieve",
        parameters=[
            KIND,
            _parameter("incident", "Incident number, e.g. WA-2026-01.", type=str, required=True),
            _parameter("format", "File type.", type=str, required=True, enum=list(FORMATS)),
            _parameter("sheet", SHEET_HELP, type=str),
            _parameter("facility", "Facility code.", type=str),
            _parameter("facility_id", "Facility id.", type=int),
            _parameter("agency", "Agency code.", type=str),
            _parameter("agency_id", "Agency id.", type=int),
            _parameter("from", "First day (YYYY-MM-DD), inclusive.", type=OpenApiTypes.DATE),
            _parameter("to", "Last day (YYYY-MM-DD), inclusive.", type=OpenApiTypes.DATE),
            _parameter("status", f"Repeatable. {STATUS_HELP}", type=str, many=True),
        ],
        responses={
            (200, CONTENT_TYPES["xlsx"]): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One sheet, UTF-8 with BOM."),
            **errors(400, 403, 404),
        },
    )
    def get(self, request: Request, kind: str) -> Any:
        data, fmt, sheet = _parameters(kind, request.query_params)
        filters = service.prepare(kind, data, user=request.user)
        report = service.build(kind, filters, user=request.user)
        return files.download(request._request, report, fmt, sheet=sheet)


ReportJobRequest = inline_serializer(
    "ReportJobRequest",
    {
        "incident": serializers.CharField(help_text="Incident number, e.g. WA-2026-01."),
        "format": serializers.ChoiceField(choices=list(FORMATS), help_text="File type."),
        "sheet": serializers.CharField(required=False, help_text=SHEET_HELP),
        "facility": serializers.CharField(required=False, help_text="Facility code."),
        "facility_id": serializers.IntegerField(required=False, help_text="Facility id."),
        "agency": serializers.CharField(required=False, help_text="Agency code."),
        "agency_id": serializers.IntegerField(required=False, help_text="Agency id."),
        "from": serializers.DateField(required=False, help_text="First day, inclusive."),
        "to": serializers.DateField(required=False, help_text="Last day, inclusive."),
        "status": serializers.ListField(child=serializers.CharField(), required=False, help_text=STATUS_HELP),
    },
)


def _as_query(body: Any) -> QueryDict:
    """A JSON object of report parameters as the query string `GET /api/reports/{kind}/` takes."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object of the report's parameters.")
    query = QueryDict(mutable=True)
    for name, value in body.items():
        values = value if isinstance(value, list) else [value]
        if any(v is None or isinstance(v, dict | list | bool) for v in values):
            raise InvalidInput(f"{name}: a text, a number or a list of texts.", field=str(name))
        query.setlist(str(name), [str(v) for v in values])
    return query


class ReportJobsView(_JSONOnly):
    """Prepare a report's file in the background: the parameters of `GET /api/reports/{kind}/`."""

    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="reports_jobs_create",
        parameters=[KIND],
        request=ReportJobRequest,
        responses={202: JobSerializer, **errors(400, 403, 404)},
        description="Checks the parameters and your right to the report now (as a download does), "
        "then answers 202 with an `export` job. Follow it at `GET /api/jobs/{id}/` (`progress`: the "
        "sheet being written and its rows so far; the incident's WebSocket carries the same) or "
        "wait for its `job.finished` event; its `result` then names the file (`name`, `rows` per "
        "sheet, `size` in bytes) and `download`: `GET /api/jobs/{id}/file/`.",
    )
    def post(self, request: Request, kind: str) -> Response:
        data, fmt, sheet = _parameters(kind, _as_query(request.data))
        user = request.user
        assert isinstance(user, User)  # IsAuthenticated lets only real users through
        job = report_jobs.start(kind, data, fmt=fmt, sheet=sheet, by=user)
        job.refresh_from_db()  # an immediate backend has already run it
        return Response(JobSerializer(job, context={"request": request}).data, status=202)


GONE = OpenApiResponse(
    ErrorSerializer, description="The file was removed after its retention period (`gone`)."
)


class JobFileView(_JSONOnly):
    """The file a background export wrote (`POST /api/reports/{kind}/jobs/`), streamed from storage."""

    @extend_schema(
        operation_id="jobs_file_retrieve",
        responses={
            (200, CONTENT_TYPES["xlsx"]): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One sheet, UTF-8 with BOM."),
            **errors(403, 404, 409),
            410: GONE,
        },
        description="For whoever may read that report of that incident now (checked again at every "
        "download; others get 404, as for a job that is not an export). 409 `not_ready` while the "
        "job is queued or running, or when it failed; 410 `gone` once the file was removed "
        "(EXPORT_RETENTION_HOURS after it was written).",
    )
    def get(self, request: Request, pk: int) -> Any:
        file, size, job = report_jobs.open_export(request.user, pk)
        result = job.result or {}
        return files.stream(
            request._request,
            file,
            size=size,
            name=str(result["name"]),
            content_type=CONTENT_TYPES[str(result["format"])],
        )
