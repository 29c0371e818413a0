"""Pages of the resources room: the roster and incident imports, for administrators and commanders.

Thin doors onto resources/importing: each checks who may open the page, refuses an upload over
the size limit before its body is parsed, calls one import service and renders its counts or its
problems (the first 200).

A file of IMPORT_BACKGROUND_BYTES or more is imported by a background job instead
(resources/importing/jobs.py): checked and stored, then the page comes back as `?job=<id>`,
follows the job with a progress bar (incidents/static/incidents/job.js polls `/api/jobs/<id>/`)
and, once it ends, renders its counts or its problems exactly as for a file imported at once.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from deploy_tracker.errors import DomainError
from incidents import jobs
from incidents.models import Job
from resources.importing import jobs as import_jobs
from resources.importing.incident import can_open_incident_import, import_incident
from resources.importing.problems import ImportResult, InvalidRows
from resources.importing.reading import max_bytes, max_rows, megabytes, too_big
from resources.importing.roster import can_import_roster, import_roster
from resources.importing.specs import INCIDENT_BOOK, ROSTER, Workbook
from resources.importing.template import write_template

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Room for the form's other fields and the multipart boundaries around the file.
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class ImportPage:
    """One import page: its workbook, who may open it, and the service it calls."""

    kind: str
    title: str
    intro: str
    accept: str
    workbook: Workbook
    may_open: Callable[[User | AnonymousUser], bool]
    run: Callable[..., ImportResult]


PAGES = {
    "roster": ImportPage(
        "roster",
        "Import the roster",
        "Experts, their credentials and availability, and the qualification catalog. People are "
        "matched by email; a credentials or availability sheet is the complete list for the people "
        "on the experts sheet. Nothing is written unless every cell is valid.",
        ".xlsx,.csv",
        ROSTER,
        can_import_roster,
        import_roster,
    ),
    "incident": ImportPage(
        "incident",
        "Import an incident",
        "An incident with its facilities and role requests. The incident is matched by number, "
        "facilities by code, requests by facility, qualification and dates; nothing is removed. "
        "Commanders import their own incident; only administrators create new ones.",
        ".xlsx",
        INCIDENT_BOOK,
        can_open_incident_import,
        import_incident,
    ),
}


class SizeLimit(FileUploadHandler):
    """Stops reading an upload once it passes the import limit (for bodies without a length)."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


# The size check must run before the CSRF middleware parses the upload, so these views are
# exempt from the middleware and apply the same CSRF check themselves (csrf_protect), after it.
@csrf_exempt
@login_required
def roster_import(request: HttpRequest) -> HttpResponse:
    """Upload a roster workbook (or a CSV of experts): administrators only."""
    return _import(request, PAGES["roster"])


@csrf_exempt
@login_required
def incident_import(request: HttpRequest) -> HttpResponse:
    """Upload an incident workbook: administrators, and commanders for their own incident."""
    return _import(request, PAGES["incident"])


@login_required
def template_download(request: HttpRequest, kind: str) -> HttpResponse:
    """The template workbook of an import page."""
    page = PAGES.get(kind)
    if page is None:
        raise Http404("No such import.")
    if not page.may_open(request.user):
        raise PermissionDenied("You may not use this import.")
    buffer = io.BytesIO()
    write_template(page.workbook, buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{kind}-template.xlsx"'
    return response


def _import(request: HttpRequest, page: ImportPage) -> HttpResponse:
    if not page.may_open(request.user):
        raise PermissionDenied("You may not use this import.")
    if request.method != "POST":
        return _render(request, page, _job(request, page))
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > max_bytes() + FORM_OVERHEAD:
        return _render(request, page, {"error": too_big("The file", declared).message}, status=413)
    limit = SizeLimit(request, max_bytes())
    request.upload_handlers.insert(0, limit)
    post: Callable[[HttpRequest], HttpResponse] = csrf_protect(lambda request: _post(request, page, limit))
    return post(request)


def _post(request: HttpRequest, page: ImportPage, limit: SizeLimit) -> HttpResponse:
    upload = request.FILES.get("file")
    dry_run = request.POST.get("dry_run") == "on"
    context: dict[str, Any] = {"dry_run": dry_run}
    if limit.exceeded or (upload is not None and upload.size is not None and upload.size > max_bytes()):
        size = upload.size if upload is not None and upload.size else max_bytes() + 1
        context["error"] = too_big(upload.name if upload and upload.name else "The file", size).message
        return _render(request, page, context, status=413)
    if upload is None:
        context["field_error"] = "Choose a file to import."
        return _render(request, page, context, status=400)
    assert isinstance(request.user, User)
    if upload.size is not None and upload.size >= settings.IMPORT_BACKGROUND_BYTES:
        try:
            job = import_jobs.start(
                page.kind, upload, name=upload.name or "the file", dry_run=dry_run, by=request.user
            )
        except DomainError as exc:
            context["error"] = exc.message
            return _render(request, page, context, status=exc.http_status)
        return HttpResponseRedirect(f"{reverse(f'import-{page.kind}')}?job={job.pk}")
    try:
        context["result"] = page.run(upload, name=upload.name, dry_run=dry_run, by=request.user)
    except InvalidRows as exc:
        context |= {
            "error": exc.message,
            "problems": exc.lines,
            "more": exc.more,
            "warnings": exc.warnings,
        }
        return _render(request, page, context, status=exc.http_status)
    except DomainError as exc:
        context["error"] = exc.message
        return _render(request, page, context, status=exc.http_status)
    context["warnings"] = context["result"].warnings
    return _render(request, page, context)


def _job(request: HttpRequest, page: ImportPage) -> dict[str, Any]:
    """The background import named by `?job=`: its progress, then what the page shows of any import."""
    wanted = request.GET.get("job", "")
    if not wanted:
        return {}
    job = (
        Job.objects.filter(pk=int(wanted), kind=Job.Kind.IMPORT, options__book=page.kind).first()
        if wanted.isdigit()
        else None
    )
    if job is None or not jobs.may_see(request.user, job):
        raise Http404("No such import among yours.")
    context: dict[str, Any] = {"job": job, "dry_run": bool(job.options.get("dry_run"))}
    if job.status == Job.Status.DONE:
        result = import_jobs.result_of(job)
        context |= {"result": result, "warnings": result.warnings if result else []}
    elif job.status == Job.Status.FAILED:
        details = job.result or {}
        context |= {
            "error": job.error,
            "problems": details.get("problems", []),
            "more": details.get("more", 0),
            "warnings": details.get("warnings", []),
        }
    return context


def _render(
    request: HttpRequest, page: ImportPage, context: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    context = {
        "page": page,
        "max_size": megabytes(max_bytes()),
        "max_rows": f"{max_rows():,}",
        "background_size": megabytes(settings.IMPORT_BACKGROUND_BYTES),
        **(context or {}),
    }
    return render(request, "resources/import.html", context, status=status)
