"""Reports as background jobs: a big file written by a worker, kept in storage, downloaded when ready.

* `start(kind, data, fmt=…, sheet=…, by=…)` is the doors' call (the report page's "Prepare in the
  background", `POST /api/reports/{kind}/jobs/`): the parameters and the asker's right are
  checked now, as a download would check them (400 / 403 / 404 at once), then an `export` job
  of the report's incident is queued with what the worker needs.
* `export(job, progress)` is the job's work, in the worker: the same checks again as the person
  who asked (their right may have gone meanwhile), the report written to a temporary file with
  its rows per sheet reported as it goes, then saved to Django's default storage as
  `exports/<job id>-<file name>`. The result: that storage name, the file's name, format, sheet,
  rows per sheet, size in bytes and where to download it.
* `may_read(user, job)`: the report's own rule (finance for finance officers and commanders, the
  others for every member) — who besides the requester may see the job.
* `open_export(user, job_id)`: the download, checked again when it is asked for: 404 for whoever
  may not read that report of that incident now, 409 while the job is not done, 410 once the
  file was removed (`prune`, run by `manage.py prune_exports`, after EXPORT_RETENTION_HOURS).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.http import QueryDict
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone

from deploy_tracker.errors import DomainError, InvalidInput, NotAllowed
from incidents import jobs
from incidents.jobs import Outcome, Progress
from incidents.models import Incident, Job
from reports import files, service
from reports.service import FORMATS, ReportNotFound
from resources.importing.jobs import UPLOADS

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

EXPORTS = "exports"  # the folder of finished export files in the default storage


class ExportNotReady(DomainError):
    """The export job has not produced its file (yet, or at all)."""

    code = "not_ready"
    http_status = 409


class ExportGone(DomainError):
    """The file was removed after the retention period; prepare it again."""

    code = "gone"
    http_status = 410


def start(kind: str, data: QueryDict, *, fmt: str, sheet: str | None, by: User) -> Job:
    """Queue the report's file as a job of its incident, once its parameters and right are checked."""
    if fmt not in FORMATS:
        raise InvalidInput("format: choose xlsx or csv.", field="format")
    sheet = service.sheet_for(kind, sheet)
    filters = service.prepare(kind, data, user=by)
    assert filters.selected is not None  # prepare found it
    options = {
        "report": kind,
        "format": fmt,
        "sheet": sheet if fmt == "csv" else None,
        # The filters as given (a default the worker applies the same way is left out).
        "filters": {name: data.getlist(name) for name in filters.filters if name in data},
    }
    return jobs.start(filters.selected, Job.Kind.EXPORT, by=by, options=options)


def check(user: User, incident: Incident | None, options: dict[str, Any]) -> None:
    """The report's own rule: NotAllowed (with why) unless `user` may read it on `incident`."""
    kind = service.kind_of(str(options.get("report", "")))
    if incident is None:
        raise NotAllowed("An export belongs to an incident.")
    if not kind.allowed(user, incident):
        raise NotAllowed(f"The {kind.key} report of {incident.number} is for its {kind.readers}.")


def may_read(user: User | AnonymousUser, job: Job) -> bool:
    """Whether `user` may read the report this export job writes, on its incident, now."""
    kind = service.KINDS.get(str(job.options.get("report", "")))
    return kind is not None and job.incident is not None and kind.allowed(user, job.incident)


def export(job: Job, progress: Progress) -> Outcome:
    """Write the job's report to storage, reporting rows per sheet; the file's particulars."""
    user = job.requested_by
    if user is None:
        raise NotAllowed("The person who asked for this export no longer has an account.")
    options = job.options
    kind, fmt = str(options["report"]), str(options["format"])
    data = QueryDict(mutable=True)
    for name, values in options["filters"].items():
        data.setlist(name, [str(v) for v in values])
    filters = service.prepare(kind, data, user=user)
    report = service.build(kind, filters, user=user)
    sheet = service.sheet_for(kind, options.get("sheet"))
    name = report.filename(fmt, sheet if fmt == "csv" else None)
    with tempfile.TemporaryFile() as target:
        rows = files.write_sheets(report, fmt, target, sheet=sheet, progress=progress)
        size = target.seek(0, 2)
        target.seek(0)
        progress("saving")
        stored = default_storage.save(f"{EXPORTS}/{job.pk}-{name}", File(target, name=name))
    result = {
        "file": stored,
        "name": name,
        "format": fmt,
        "sheet": sheet if fmt == "csv" else None,
        "content_type": files.CONTENT_TYPES[fmt],
        "rows": rows,
        "size": size,
        "download": reverse("api-job-file", args=[job.pk]),
    }
    # Every member of the incident sees the end event: the report and how big, never a figure of it.
    summary = {"report": kind, "format": fmt, "rows": sum(rows.values()), "size": size}
    return Outcome(result=result, summary=summary)


def find(user: User | AnonymousUser, job_id: int, *, kind: str | None = None) -> Job:
    """An export job `user` may see now (of the report `kind`, if given); ReportNotFound otherwise."""
    job = Job.objects.select_related("incident").filter(pk=job_id, kind=Job.Kind.EXPORT).first()
    if (
        job is None
        or (kind is not None and job.options.get("report") != kind)
        or not jobs.may_see(user, job)
        or not may_read(user, job)
    ):
        raise ReportNotFound("No such export among those you may see.")
    return job


def stored_file(job: Job) -> str | None:
    """The storage name of a finished export's file while it is kept, else None."""
    if job.status != Job.Status.DONE or not job.result:
        return None
    name = job.result.get("file")
    return name if isinstance(name, str) and default_storage.exists(name) else None


def describe(job: Job, file: str | None) -> tuple[str, str]:
    """What the page says of an export job: which file, and how far it got (job.js says the same)."""
    options = job.options
    label = f"CSV: {options.get('sheet')}" if options.get("format") == "csv" else "Workbook (xlsx)"
    result = job.result or {}
    if job.status == Job.Status.FAILED:
        return label, f"failed: {job.error}"
    if job.status == Job.Status.DONE:
        if file is None:
            return label, "removed after its retention period; prepare it again"
        rows = sum(result.get("rows", {}).values())
        return label, f"ready: {result.get('name')} · {rows:,} rows, {filesizeformat(result.get('size', 0))}"
    if job.status == Job.Status.QUEUED:
        return label, "queued: waiting for a worker…"
    stage, done = job.progress.get("stage", ""), job.progress.get("done", 0)
    return label, f"{stage}: {done:,} rows…" if stage and done else f"{stage or 'running'}…"


def open_export(user: User | AnonymousUser, job_id: int) -> tuple[IO[bytes], int, Job]:
    """The finished file of an export job, open, and its size, for someone who may read that
    report now."""
    job = find(user, job_id)
    if job.status == Job.Status.FAILED:
        raise ExportNotReady(f"The export failed, so it has no file: {job.error}")
    if job.status != Job.Status.DONE:
        raise ExportNotReady(f"The export is {job.get_status_display().lower()}; its file is not ready yet.")
    name = stored_file(job)
    if name is None:
        raise ExportGone("The file was removed after its retention period; prepare the export again.")
    file: IO[bytes] = default_storage.open(name, "rb")
    return file, default_storage.size(name), job


def prune(*, older_than: timedelta) -> list[str]:
    """Remove export files, and uploads no import job took, older than `older_than`; their names."""
    cutoff = timezone.now() - older_than
    removed: list[str] = []
    for folder in (EXPORTS, UPLOADS):
        if not default_storage.exists(folder):
            continue
        for name in sorted(default_storage.listdir(folder)[1]):
            path = f"{folder}/{name}"
            if default_storage.get_modified_time(path) < cutoff:
                default_storage.delete(path)
                removed.append(path)
    return removed
