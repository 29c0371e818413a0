"""Live updates: every Event is pushed after its transaction commits, through this module only.

The contract (CONTRACTS.md, "WebSocket"): each message is `{"events": [...]}` with the events of
one transaction in id order; each event is `{"id", "type", "incident", "at", "data"}`. Incident
screens also get `{"job": {...}}` while a background job runs (`job_progress`, below).

* `queue(ids)` — called by the event writers (incidents/events.py) inside their transaction.
  The first call of a transaction registers one on-commit flush; every later one adds to it,
  so a transaction of 500 offers becomes one message per group, not 500.
* The flush re-reads the queued ids after the commit: what a rolled-back savepoint wrote is gone
  and is never announced. It sends one message to the incident's group (its commanders,
  finance officers and viewers) and one to each responder's group whose events are in it.
* Groups: `incident.<id>` and `expert.<id>`. Consumers join only the groups their user may see.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from redis.exceptions import RedisError

from deploy_tracker.middleware import OutageLog
from incidents.models import Event

log = logging.getLogger(__name__)

MESSAGE_TYPE: Literal["live.events"] = "live.events"


class EventPayload(TypedDict):
    id: int
    type: str
    incident: int
    at: str
    data: dict[str, Any]


class GroupMessage(TypedDict):
    """What travels through the channel layer: the client's text, serialised once."""

    type: Literal["live.events"]
    text: str
    first: int
    last: int


class JobState(TypedDict):
    """A background job's progress, as its incident's screens see it while it runs."""

    id: int
    kind: str
    status: str
    stage: str
    done: int
    total: int


class JobMessage(TypedDict):
    type: Literal["live.job"]
    text: str


JOB_MESSAGE_TYPE: Literal["live.job"] = "live.job"


def incident_group(incident_id: int) -> str:
    return f"incident.{incident_id}"


def expert_group(expert_id: int) -> str:
    return f"expert.{expert_id}"


def payload(event: Event) -> EventPayload:
    return {
        "id": event.pk,
        "type": event.type,
        "incident": event.incident_id,
        "at": event.at.isoformat(),
        "data": event.data,
    }


def message_text(events: Iterable[Event]) -> str:
    return json.dumps({"events": [payload(e) for e in events]}, cls=DjangoJSONEncoder)


def serialize_commits(incident_ids: Iterable[int]) -> None:
    """Make events of one incident commit in id order (PostgreSQL), so `?since=<id>` replay
    never skips one that committed late: a transaction-scoped advisory lock per incident."""
    if connection.vendor != "postgresql":
        return  # SQLite's IMMEDIATE transactions already serialise every writer
    with connection.cursor() as cursor:
        for incident_id in sorted(set(incident_ids)):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, incident_id])


LOCK_NAMESPACE = 4_481  # first key of our advisory locks, so they never meet another app's


class _Outbox:
    """Event ids written by one transaction, sent together once it commits."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self) -> None:
        if getattr(connection, "_live_outbox", None) is self:
            connection._live_outbox = None  # type: ignore[attr-defined]
        _deliver_safely(self.ids)


# A channel layer that cannot reach Redis: one line when it starts failing and one when it works
# again, not a trace per transaction (clients replay what it dropped, incidents/consumers.py).
layer_outage = OutageLog("live: the channel layer", "events are kept but not announced", log)


def _deliver_safely(ids: list[int]) -> None:
    try:
        deliver(ids)
    except (OSError, RedisError) as exc:  # never undo or break the committed work
        layer_outage.failed(exc)
    except Exception:
        log.exception("live: could not publish events %s", ids[:20])
    else:
        layer_outage.recovered()


def queue(event_ids: Iterable[int]) -> None:
    """Announce these events once the current transaction commits (at once outside one)."""
    ids = list(event_ids)
    if not ids:
        return
    if not connection.in_atomic_block:
        _deliver_safely(ids)
        return
    box = getattr(connection, "_live_outbox", None)
    # A box whose flush is no longer registered belonged to a transaction that rolled back.
    if box is None or not any(entry[1] is box for entry in connection.run_on_commit):
        box = _Outbox()
        connection._live_outbox = box  # type: ignore[attr-defined]
        transaction.on_commit(box, robust=True)
    box.ids.extend(ids)


def deliver(event_ids: list[int]) -> None:
    """Send the committed ones among `event_ids`: one message per group, events in id order."""
    events = list(Event.objects.filter(id__in=event_ids).order_by("id"))
    if not events:
        return
    by_group: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_group[incident_group(event.incident_id)].append(event)
        if event.expert_id is not None:
            by_group[expert_group(event.expert_id)].append(event)
    layer = get_channel_layer()
    if layer is None:
        return
    messages: dict[str, GroupMessage] = {
        group: {"type": MESSAGE_TYPE, "text": message_text(mine), "first": mine[0].pk, "last": mine[-1].pk}
        for group, mine in by_group.items()
    }
    async_to_sync(_send_all)(layer, messages)


SEND_CONCURRENCY = 16  # group sends in flight at once: well inside a Redis connection pool


async def _send_all(layer: Any, messages: dict[str, GroupMessage]) -> None:
    """One hop into the event loop for all the groups, sent concurrently (a 500-offer
    confirmation reaches 501 groups: the incident and each responder), a few at a time."""
    slots = asyncio.Semaphore(SEND_CONCURRENCY)

    async def send(group: str, message: GroupMessage) -> None:
        async with slots:
            await layer.group_send(group, message)

    await asyncio.gather(*(send(group, message) for group, message in messages.items()))


def job_progress(incident_id: int, state: JobState) -> None:
    """Tell the incident's screens how far a job has got: `{"job": {...}}`, sent at once.

    Progress is not history: it is not in the event log, it is not replayed, and it is sent
    even from inside a transaction (a matching run reports while it holds its lock). How the
    job ended is an Event (`job.finished` / `job.failed`), which is logged and replayed.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message: JobMessage = {"type": JOB_MESSAGE_TYPE, "text": json.dumps({"job": state})}
    try:
        async_to_sync(layer.group_send)(incident_group(incident_id), message)
    except (OSError, RedisError) as exc:  # progress is a courtesy; the job goes on without it
        layer_outage.failed(exc)
    except Exception:
        log.exception("live: could not publish progress of job %s", state["id"])
