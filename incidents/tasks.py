"""Background work, through Django's Tasks framework (`django.tasks`).

The backend is a setting (`TASK_BACKEND`): `immediate` in the embedded default, where a task runs
in the process that enqueued it, or `database` (django-tasks-db) in production, where
`python manage.py db_worker` runs them. Tasks take ids, never objects (their arguments are
stored as JSON), and hand over to the service that does the work.
"""

from __future__ import annotations

from django.tasks import task

from incidents import jobs, offers


@task()
def run_job(job_id: int) -> str:
    """Run one background job (incidents/jobs.py); returns the status it ended in."""
    return jobs.run(job_id)


@task()
def email_offers(deployment_ids: list[int]) -> int:
    """Send the offer emails of one confirmation; returns how many went out."""
    return offers.send_offer_emails(deployment_ids)
