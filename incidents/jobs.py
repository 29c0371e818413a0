"""Background jobs: start one, report how far it got, record how it ended.

* `start(incident, kind, by=..., options=...)` checks the asker's right, records a queued `Job`
  and, once that commits, enqueues `tasks.run_job` on the configured `django.tasks` backend.
* `run(job_id)` is what the task calls: it claims the job (a job runs once, whoever else picks
  it up), runs the kind's runner with a `Progress` reporter, and records the outcome: the Job
  row (result or error) and an Event `job.finished` / `job.failed` in one transaction, so the
  end of a job is logged, pushed live and replayed like any other event. A job without an
  incident (a roster import) writes no Event: the incident log is its home, and it has none.
* Progress while it runs is `{"job": {...}}` on the incident's live channel (`live.job_progress`),
  and on the Job row (`progress`) for pages that poll `GET /api/jobs/{id}/` instead.

Each kind registers a runner: who may start it, and the work (returning the result to keep and
the short summary the end event carries). Matching is here; exports (reports/jobs.py) and
imports (resources/importing/jobs.py) are registered at the bottom.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from deploy_tracker.errors import DomainError, NotAllowed
from incidents import access, events, live
from incidents.matching.loader import Options
from incidents.matching.loader import run as run_matching
from incidents.models import Incident, Job

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 0.25  # seconds between two progress messages of one job, at most 4/s
SAVE_INTERVAL = 1.0  # seconds between two writes of the Job row's progress: pages poll once a second


class Progress:
    """Reports a job's progress: to its incident's screens no more often than 4 times a second,
    and on its row (what polling pages read) no more often than once a second.

    Inside a transaction (a matching run holds one) the row's progress shows once it commits;
    the live messages go out at once.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self._stage = ""
        self._sent = 0.0
        self._saved = 0.0

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        now = time.monotonic()
        same_stage = stage == self._stage
        last = bool(total and done >= total)
        if same_stage and now - self._sent < PROGRESS_INTERVAL and not last:
            return
        self._stage, self._sent = stage, now
        if self.job.incident_id is not None:  # no incident, no live channel: its page polls
            live.job_progress(
                self.job.incident_id,
                {
                    "id": self.job.pk,
                    "kind": self.job.kind,
                    "status": self.job.status,
                    "stage": stage,
                    "done": done,
                    "total": total,
                },
            )
        if not same_stage or last or now - self._saved >= SAVE_INTERVAL:
            self._saved = now
            Job.objects.filter(pk=self.job.pk).update(progress={"stage": stage, "done": done, "total": total})


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]  # kept on the Job row, served by the API
    summary: dict[str, Any]  # carried by the `job.finished` event to every screen


@dataclass(frozen=True)
class Runner:
    allowed: Callable[[User | AnonymousUser, Incident], bool]
    denied: str  # why someone else may not start it, for the NotAllowed message
    work: Callable[[Job, Progress], Outcome]
    # The kind's own rule, when it depends on the options (which report, which workbook): raises
    # NotAllowed (or InvalidInput) with its reason. Checked at start; the work checks it again.
    check: Callable[[User, Incident | None, dict[str, Any]], None] | None = None
    # Who besides the requester may see the job and its result; None: its incident's members.
    readers: Callable[[User | AnonymousUser, Job], bool] | None = None


class Refused(DomainError):
    """The work said no, with what the asker needs to put it right (an import's problems): the
    message becomes the job's error and `details` its result."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


RUNNERS: dict[str, Runner] = {}


def start(incident: Incident | None, kind: str, *, by: User, options: dict[str, Any] | None = None) -> Job:
    """Queue a job; it runs after the caller's transaction commits (at once, if immediate).

    `incident` None: work that belongs to no incident (a roster import); only its kind's own
    `check` then decides who may start it.
    """
    runner = RUNNERS[kind]
    if incident is None and runner.check is None:
        raise NotAllowed(f"A {kind} job belongs to an incident.")
    if incident is not None and not runner.allowed(by, incident):
        raise NotAllowed(f"Only {runner.denied} of incident {incident.number} can start this.")
    if runner.check is not None:
        runner.check(by, incident, options or {})
    with transaction.atomic():
        job = Job.objects.create(incident=incident, kind=kind, requested_by=by, options=options or {})
        transaction.on_commit(partial(_enqueue, job.pk), robust=True)
    return job


def may_see(user: User | AnonymousUser, job: Job) -> bool:
    """Whether `user` may see `job` and its result: superusers; its requester, while they may
    still see its incident (an import has none); and whoever may read its kind of result there
    (matching: every member; an export: the report's readers)."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    if job.incident_id is None:
        return job.requested_by_id == user.pk
    if not access.can_view_incident(user, job.incident_id):
        return False
    readers = RUNNERS[job.kind].readers
    return job.requested_by_id == user.pk or readers is None or readers(user, job)


def _enqueue(job_id: int) -> None:
    from incidents import tasks  # the tasks module imports this one

    tasks.run_job.enqueue(job_id)


def run(job_id: int) -> str:
    """Run a queued job to its end; a job already claimed is left alone. Returns its status."""
    now = timezone.now()
    if not Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=now
    ):
        return Job.objects.filter(pk=job_id).values_list("status", flat=True).first() or "missing"
    job = Job.objects.select_related("incident", "requested_by").get(pk=job_id)
    progress = Progress(job)
    progress("started")
    try:
        outcome = RUNNERS[job.kind].work(job, progress)
    except Refused as exc:
        return _finish(job, error=exc.message, details=exc.details)
    except DomainError as exc:
        return _finish(job, error=exc.message)
    except Exception:
        log.exception("job %s (%s) failed", job.pk, job.kind)
        _finish(job, error="The job stopped on an unexpected error; the administrators have the details.")
        raise
    return _finish(job, outcome=outcome)


def _finish(
    job: Job, *, outcome: Outcome | None = None, error: str = "", details: dict[str, Any] | None = None
) -> str:
    job.finished_at = timezone.now()
    job.status = Job.Status.DONE if outcome is not None else Job.Status.FAILED
    job.result = outcome.result if outcome is not None else details
    job.error = error
    with transaction.atomic():
        job.save(update_fields=["status", "finished_at", "result", "error"])
        if job.incident_id is None:
            return job.status  # the row is the record; there is no incident log to write to
        data: dict[str, Any] = {"job": job.pk, "kind": job.kind}
        if outcome is not None:
            data["summary"] = outcome.summary
        else:
            data["error"] = error
        events.write(
            [
                events.incident_event(
                    job.incident_id,
                    "job.finished" if outcome is not None else "job.failed",
                    actor=job.requested_by,
                    at=job.finished_at,
                    **data,
                )
            ]
        )
    return job.status


# --- Kinds ---------------------------------------------------------------------------------------


def _matching(job: Job, progress: Progress) -> Outcome:
    assert job.incident is not None  # `start` refuses a matching job without its incident
    doc = run_matching(job.incident, by=job.requested_by, options=Options(**job.options), progress=progress)
    summary = dict(doc["summary"])
    summary["unfilled"] = len(doc["unfilled"])
    return Outcome(result=doc, summary=summary)


RUNNERS[Job.Kind.MATCHING] = Runner(allowed=access.can_command, denied="a commander", work=_matching)


# Exports and imports: their work lives in their own rooms, which build on this one, so each is
# imported when first used; registered here, every process that runs or shows jobs knows them.


def _export(job: Job, progress: Progress) -> Outcome:
    from reports.jobs import export

    return export(job, progress)


def _check_export(user: User, incident: Incident | None, options: dict[str, Any]) -> None:
    from reports.jobs import check

    check(user, incident, options)


def _export_readers(user: User | AnonymousUser, job: Job) -> bool:
    from reports.jobs import may_read

    return may_read(user, job)


def _import(job: Job, progress: Progress) -> Outcome:
    from resources.importing.jobs import run

    return run(job, progress)


def _check_import(user: User, incident: Incident | None, options: dict[str, Any]) -> None:
    from resources.importing.jobs import check

    check(user, incident, options)


RUNNERS[Job.Kind.EXPORT] = Runner(
    allowed=access.can_view_incident,
    denied="members",
    work=_export,
    check=_check_export,
    readers=_export_readers,
)
RUNNERS[Job.Kind.IMPORT] = Runner(
    allowed=lambda user, incident: False,  # an import belongs to no incident: `check` decides
    denied="administrators",
    work=_import,
    check=_check_import,
)
