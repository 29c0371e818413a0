"""`GET /api/reports/{kind}/?incident=…&format=xlsx|csv`: a report as a file (CONTRACTS.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from deploy_tracker.errors import InvalidInput
from incidents.serializers import errors
from reports import files, service
from reports.files import CONTENT_TYPES
from reports.service import FORMATS, KINDS

FILTERS = ("incident", "facility", "facility_id", "agency", "agency_id", "from", "to", "status")
PARAMETERS = {*FILTERS, "format", "sheet"}


def _parameter(name: str, description: str, **kwargs: Any) -> OpenApiParameter:
    return OpenApiParameter(name, location=OpenApiParameter.QUERY, description=description, **kwargs)


class ReportView(APIView):
    """A report of one incident as a workbook (every sheet) or a CSV file (one sheet).

    Finance is for the incident's finance officers and commanders; demobilization, logistics
    and roster for all its members. Bad parameters answer 400 naming the parameter; an incident
    the asker cannot see answers 404.
    """

    permission_classes = [IsAuthenticated]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        # `format` picks the file type here; DRF's own ?format= renderer switch would answer 404.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="reports_retrieve",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(KINDS)),
            _parameter("incident", "Incident number, e.g. WA-2026-01.", type=str, required=True),
            _parameter("format", "File type.", type=str, required=True, enum=list(FORMATS)),
            _parameter(
                "sheet",
                "CSV only: which sheet (default: the first listed). finance: labor, people, "
                "expenses, summary, burn; demobilization: checkout; logistics: people, days, "
                "facilities; roster: people.",
                type=str,
            ),
            _parameter("facility", "Facility code.", type=str),
            _parameter("facility_id", "Facility id.", type=int),
            _parameter("agency", "Agency code.", type=str),
            _parameter("agency_id", "Agency id.", type=int),
            _parameter("from", "First day (YYYY-MM-DD), inclusive.", type=OpenApiTypes.DATE),
            _parameter("to", "Last day (YYYY-MM-DD), inclusive.", type=OpenApiTypes.DATE),
            _parameter(
                "status",
                "Repeatable. finance: approval (default approved); others: deployment status.",
                type=str,
                many=True,
            ),
        ],
        responses={
            (200, CONTENT_TYPES["xlsx"]): OpenApiResponse(OpenApiTypes.BINARY, description="The workbook."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One sheet, UTF-8 with BOM."),
            **errors(400, 403, 404),
        },
    )
    def get(self, request: Request, kind: str) -> Any:
        service.kind_of(kind)
        query = request.query_params
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
        filters = service.prepare(kind, data, user=request.user)
        report = service.build(kind, filters, user=request.user)
        return files.download(request._request, report, fmt, sheet=sheet)
