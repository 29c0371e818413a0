"""Imports as background jobs: the upload kept in storage, the same import service run by a worker.

* `start(book, upload, name=…, dry_run=…, by=…)` is the import pages' call for a big file: who
  may import, the size limit and what the file really is (`sniffing.kind_of`: a workbook or a
  CSV file, no zip bomb) are checked now, as the page checks them; then the file is saved to
  Django's default storage (`imports/<random>-<name>`) and an `import` job is queued. An import
  belongs to no incident (the roster is everyone's; an incident workbook may create its incident):
  the job has none, so no live channel — its page polls `GET /api/jobs/{id}/`.
* `run(job, progress)` is the job's work: the same service the page and the commands call
  (`import_roster` / `import_incident`: every cell checked, then all or nothing), as the person
  who asked; the stored upload is removed whatever the outcome. Done: the result is the counts
  per sheet and the warnings. Invalid rows: the job fails with the problems (the first 200, and
  how many more) and the warnings as its result — what the page shows either way.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from deploy_tracker.errors import InvalidInput, NotAllowed
from incidents import jobs
from incidents.jobs import Outcome, Progress
from incidents.models import Incident, Job
from resources.importing.incident import can_open_incident_import, import_incident
from resources.importing.problems import Counts, ImportResult, InvalidRows, UnusableFile
from resources.importing.reading import max_bytes, too_big
from resources.importing.roster import can_import_roster, import_roster
from resources.importing.sniffing import kind_of

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

UPLOADS = "imports"  # the folder of uploads waiting for their import job, in the default storage

BOOKS = {"roster": import_roster, "incident": import_incident}
MAY_IMPORT = {"roster": can_import_roster, "incident": can_open_incident_import}
WHO = {"roster": "administrators", "incident": "administrators and commanders"}


def check(user: User | AnonymousUser, incident: Incident | None, options: dict[str, Any]) -> None:
    """Who may start an import of this book (the service checks an incident's commander again)."""
    book = options.get("book")
    if book not in BOOKS:
        raise InvalidInput("book: choose roster or incident.", field="book")
    if not MAY_IMPORT[book](user):
        raise NotAllowed(f"Only {WHO[book]} may import the {book} workbook.")


def start(book: str, upload: IO[bytes], *, name: str, dry_run: bool, by: User) -> Job:
    """Check the upload as the page does, keep it in storage and queue its import."""
    check(by, None, {"book": book})
    data = upload.read(max_bytes() + 1)
    if len(data) > max_bytes():
        raise too_big(name, len(data))
    if not data.strip():
        raise UnusableFile(f"{name} is empty.")
    kind_of(name, data)  # not a workbook or a CSV file, or not one we may open: refused now
    stored = default_storage.save(f"{UPLOADS}/{uuid.uuid4().hex}-{_safe(name)}", ContentFile(data))
    options = {"book": book, "dry_run": dry_run, "file": name, "upload": stored}
    try:
        return jobs.start(None, Job.Kind.IMPORT, by=by, options=options)
    except BaseException:
        default_storage.delete(stored)
        raise


def _safe(name: str) -> str:
    """The upload's name as a storage name: its last part, letters, digits and . - _ only."""
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[-80:] or "upload"


def run(job: Job, progress: Progress) -> Outcome:
    """Import the stored upload as its requester; the counts, or Refused with the problems."""
    options = job.options
    stored = str(options["upload"])
    try:
        user = job.requested_by
        if user is None:
            raise NotAllowed("The person who started this import no longer has an account.")
        check(user, None, options)
        progress("reading")
        try:
            with default_storage.open(stored, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise UnusableFile(
                f"{options['file']} is no longer on the server (it waited too long); upload it again."
            ) from None
        progress("checking" if options["dry_run"] else "checking and writing")
        result = BOOKS[options["book"]](data, name=options["file"], dry_run=bool(options["dry_run"]), by=user)
    except InvalidRows as exc:
        raise jobs.Refused(
            exc.message, {"problems": exc.lines, "more": exc.more, "warnings": exc.warnings}
        ) from exc
    finally:
        default_storage.delete(stored)
    counts = {sheet: asdict(c) for sheet, c in result.counts.items()}
    return Outcome(
        result={
            "file": result.file,
            "dry_run": result.dry_run,
            "changed": result.changed,
            "counts": counts,
            "warnings": result.warnings,
            "seconds": result.seconds,
        },
        summary={"book": options["book"], "dry_run": result.dry_run, "changed": result.changed},
    )


def result_of(job: Job) -> ImportResult | None:
    """A finished import job's result as the page renders it (None unless it is done)."""
    if job.status != Job.Status.DONE or not job.result:
        return None
    data = job.result
    return ImportResult(
        file=data["file"],
        dry_run=data["dry_run"],
        counts={sheet: Counts(**counts) for sheet, counts in data["counts"].items()},
        warnings=list(data["warnings"]),
        seconds=dict(data.get("seconds", {})),
    )
