"""Background jobs: start one, report how far it got, record how it ended.

* `start(incident, kind, by=..., options=...)` checks the asker's right, records a queued `Job`
  and, once that commits, enqueues `tasks.run_job` on the configured `django.tasks` backend.
* `run(job_id)` is what the task calls: it claims the job (a job runs once, whoever else picks
  it up), runs the kind's runner with a `Progress` reporter, and records the outcome: the Job
  row (result or error) and an Event `job.finished` / `job.failed` in one transaction, so the
  end of a job is logged, pushed live and replayed like any other event.
* Progress while it runs is `{"job": {...}}` on the incident's live channel (`live.job_progress`).

Each kind registers a runner: who may start it, and the work (returning the result to keep and
the short summary the end event carries). Exports and imports add theirs the same way.
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


class Progress:
    """Reports a job's progress to its incident's screens, no more often than 4 times a second."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._stage = ""
        self._sent = 0.0

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        now = time.monotonic()
        same_stage = stage == self._stage
        if same_stage and now - self._sent < PROGRESS_INTERVAL and not (total and done >= total):
            return
        self._stage, self._sent = stage, now
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


@dataclass(frozen=True)
class Outcome:
    result: dict[str, Any]  # kept on the Job row, served by the API
    summary: dict[str, Any]  # carried by the `job.finished` event to every screen


@dataclass(frozen=True)
class Runner:
    allowed: Callable[[User | AnonymousUser, Incident], bool]
    denied: str  # why someone else may not start it, for the NotAllowed message
    work: Callable[[Job, Progress], Outcome]


RUNNERS: dict[str, Runner] = {}


def start(incident: Incident, kind: str, *, by: User, options: dict[str, Any] | None = None) -> Job:
    """Queue a job; it runs after the caller's transaction commits (at once, if immediate)."""
    runner = RUNNERS[kind]
    if not runner.allowed(by, incident):
        raise NotAllowed(f"Only {runner.denied} of incident {incident.number} can start this.")
    with transaction.atomic():
        job = Job.objects.create(incident=incident, kind=kind, requested_by=by, options=options or {})
        transaction.on_commit(partial(_enqueue, job.pk), robust=True)
    return job


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
    except DomainError as exc:
        return _finish(job, error=exc.message)
    except Exception:
        log.exception("job %s (%s) failed", job.pk, job.kind)
        _finish(job, error="The job stopped on an unexpected error; the administrators have the details.")
        raise
    return _finish(job, outcome=outcome)


def _finish(job: Job, *, outcome: Outcome | None = None, error: str = "") -> str:
    job.finished_at = timezone.now()
    job.status = Job.Status.DONE if outcome is not None else Job.Status.FAILED
    job.result = outcome.result if outcome is not None else None
    job.error = error
    with transaction.atomic():
        job.save(update_fields=["status", "finished_at", "result", "error"])
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
    doc = run_matching(job.incident, by=job.requested_by, options=Options(**job.options), progress=progress)
    summary = dict(doc["summary"])
    summary["unfilled"] = len(doc["unfilled"])
    return Outcome(result=doc, summary=summary)


RUNNERS[Job.Kind.MATCHING] = Runner(allowed=access.can_command, denied="a commander", work=_matching)
