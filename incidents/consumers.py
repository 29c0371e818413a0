"""WebSocket doors: the incident picture for its members, and a responder's own feed.

Authorised once, at connect; a refused client gets a close code and no data (4401: not logged
in, 4403: not allowed). Handlers only forward what `incidents.live` publishes — no database work
per message. `?since=<event id>` replays every later event the user may see, in order, before
the live ones; past `REPLAY_CAP` events the client is told to reload instead.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db.models import Q
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from deploy_tracker.middleware import OutageLog
from incidents import live
from incidents.access import can_view_incident
from incidents.models import Event
from resources.models import Expert

REPLAY_CAP = 1_000
NOT_LOGGED_IN, NOT_ALLOWED = 4401, 4403
LAYER_LOST = 4503  # reconnect with ?since= to replay what the lost Redis dropped
# The channel layer cannot reach Redis: joining a group or listening on its own channel fails.
LAYER_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
layer_outage = OutageLog(
    "live updates' Redis", "closing new live connections with 4503", logging.getLogger(__name__)
)


class _LiveConsumer(AsyncWebsocketConsumer):
    """Shared by both feeds: refuse, join one group, replay, then forward."""

    group: str
    # Everything up to this id reached the client by the replay (or predates the connection);
    # live messages at or below it are dropped. It is fixed at connect: live messages of
    # concurrent transactions may arrive in any order and are all forwarded.
    replayed_until = 0
    accepted = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """While Redis is down a client is closed with LAYER_LOST, like those connected when it
        went: it retries and replays once it is back. One log line per outage, not a trace (and
        an HTTP 500 handshake) per attempt."""
        try:
            await super().__call__(scope, receive, send)
        except LAYER_DOWN as error:
            layer_outage.failed(error)
            if not self.accepted:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": LAYER_LOST})

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def start(self, group: str, events: Q) -> None:
        self.group = group
        # Join before replaying: whatever commits meanwhile arrives live, and `replayed_until` drops
        # what the replay already sent.
        await self.channel_layer.group_add(group, self.channel_name)
        layer_outage.recovered()
        await self.accept()
        since = _since(self.scope)
        if since is None:
            self.replayed_until = await database_sync_to_async(_newest)(events)
            return
        missed, newest = await database_sync_to_async(_replay)(events, since)
        if missed is None:
            await self.send(text_data=json.dumps({"reload": True}))
        elif missed:
            await self.send(text_data=missed)
        self.replayed_until = max(newest, since)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def layer_lost(self, message: dict[str, str]) -> None:
        """The channel layer lost Redis (deploy_tracker/layers.py): whatever was published
        meanwhile is gone, so the client must reconnect and replay it with `?since=`."""
        await self.close(code=LAYER_LOST)

    async def live_events(self, message: live.GroupMessage) -> None:
        if message["last"] <= self.replayed_until:
            return  # the replay sent it all
        if message["first"] <= self.replayed_until:  # committed while we replayed: send the rest
            body = json.loads(message["text"])
            body["events"] = [e for e in body["events"] if e["id"] > self.replayed_until]
            await self.send(text_data=json.dumps(body))
            return
        await self.send(text_data=message["text"])


class IncidentConsumer(_LiveConsumer):
    """`/ws/incidents/<id>/`: the incident's commanders, finance officers and viewers."""

    async def live_job(self, message: live.JobMessage) -> None:
        await self.send(text_data=message["text"])

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            return await self.refuse(NOT_LOGGED_IN)
        incident_id = int(self.scope["url_route"]["kwargs"]["incident_id"])
        if not await database_sync_to_async(can_view_incident)(user, incident_id):
            return await self.refuse(NOT_ALLOWED)
        await self.start(live.incident_group(incident_id), Q(incident_id=incident_id))


class ResponderConsumer(_LiveConsumer):
    """`/ws/me/`: a responder's own offers and deployments."""

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated:
            return await self.refuse(NOT_LOGGED_IN)
        expert_id = await database_sync_to_async(_expert_of)(user)
        if expert_id is None:
            return await self.refuse(NOT_ALLOWED)
        await self.start(live.expert_group(expert_id), Q(expert_id=expert_id))


def _since(scope: dict[str, Any]) -> int | None:
    values = parse_qs(scope.get("query_string", b"").decode()).get("since")
    if not values:
        return None
    try:
        return max(0, int(values[0]))
    except ValueError:
        return None


def _expert_of(user: Any) -> int | None:
    return Expert.objects.filter(user=user, active=True).values_list("pk", flat=True).first()


def _newest(events: Q) -> int:
    return Event.objects.filter(events).order_by("-id").values_list("id", flat=True).first() or 0


def _replay(events: Q, since: int) -> tuple[str | None, int]:
    """The events after `since` as one message (None past the cap), and the newest id."""
    rows = list(Event.objects.filter(events, id__gt=since).order_by("id")[: REPLAY_CAP + 1])
    if len(rows) > REPLAY_CAP:
        return None, _newest(events)
    if not rows:
        return "", since
    return live.message_text(rows), rows[-1].pk
