"""What every API door shares: domain errors mapped to HTTP once, and the token login."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler

from deploy_tracker.errors import DomainError, InvalidInput


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DomainError → its status (409 for an illegal move) with a JSON reason; the rest as DRF does."""
    if isinstance(exc, DomainError):
        body: dict[str, Any] = {"error": exc.code, "detail": exc.message}
        if isinstance(exc, InvalidInput) and exc.field:
            body["field"] = exc.field
        return Response(body, status=exc.http_status)
    # A lost database (OperationalError) is not DRF's: it re-raises it, and
    # deploy_tracker.middleware answers 503 for the API and the pages alike.
    return exception_handler(exc, context)


class Pagination(PageNumberPagination):
    """Every list: 50 a page by default, `?page_size=` up to 500, `?page=` to move on."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL that matches nothing: JSON under /api/ (clients parse it), a page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "detail": "No such address in the API."}, status=404)
    return page_not_found(request, exception)
