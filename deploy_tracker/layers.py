"""The channel layers: in memory for the embedded default, Redis publish/subscribe in production.

In memory: Channels' own in-memory layer scans every channel and group for expired entries on every
receive and group send: with 1,000 connected screens that scan, not the sending, is what a
500-offer confirmation costs (bench/fanout.py). Here the housekeeping runs at most once a
second, and a message dropped because a client's queue is full is logged, never silent.

Redis: channels-redis's publish/subscribe layer. Its list-based layer (`core`) runs a Lua script
per group send over every member's list and every consumer polls its own list; with a
500-offer burst to 1,000 screens that was 5× slower here than one PUBLISH per group that Redis
pushes to the one subscribed connection of each server process (bench/fanout.py, README).
Pub/sub delivers at most once and keeps nothing for a consumer whose connection is down, which
is what the live protocol already assumes: a client catches up with `?since=`. What it lacks is
telling anyone it lost its connection: messages published while Redis is away are gone, and
connected screens would never know. `RedisPubSubChannelLayer` here closes them instead (a
`layer.lost` message to every consumer of the process, which closes with code 4503), so each
client reconnects, is refused while Redis is down, and replays what it missed once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer
from channels_redis import pubsub
from channels_redis.utils import _wrap_close, decode_hosts
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
LOST = {"type": "layer.lost"}


class InMemoryChannelLayer(ChannelsInMemoryLayer):  # type: ignore[misc]
    CLEAN_EVERY = 1.0  # seconds between two sweeps for expired messages and memberships

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned >= self.CLEAN_EVERY:
            self._cleaned = now
            super()._clean_expired()

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        full = 0
        for channel in list(self.groups.get(group, {})):
            try:
                await self.send(channel, message)
            except ChannelFull:
                full += 1
        if full:
            log.warning(
                "live: %d client(s) of %s were too far behind; a message to them was dropped", full, group
            )


class RedisPubSubChannelLayer(pubsub.RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels-redis's pub/sub layer, whose consumers hear when their Redis connection drops."""

    def _get_layer(self) -> pubsub.RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        if loop not in self._layers:
            self._layers[loop] = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return self._layers[loop]


class _LoopLayer(pubsub.RedisPubSubLoopLayer):  # type: ignore[misc]
    def __init__(self, hosts: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]


class _Shard(pubsub.RedisSingleShardConnection):  # type: ignore[misc]
    """One Redis connection's subscriptions; on a lost connection, every local consumer is told."""

    async def unsubscribe(self, channel: str) -> None:
        # A consumer leaving while Redis is away: no trace per consumer. Its subscription stays
        # listed and is renewed on reconnection, harmlessly: no consumer reads that channel.
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await super().unsubscribe(channel)

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await super().publish(channel, message)
        except (RedisConnectionError, OSError):
            # A pooled connection from before a Redis restart fails once (the pool then drops
            # it); a fresh one does not. Still down: the second error goes to the caller.
            await super().publish(channel, message)

    async def _do_receiving(self) -> None:
        down = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                    self._receive_message(message)
                    if down:
                        log.warning("live: Redis is back; clients reconnect and replay what they missed")
                        down = False
                else:
                    await asyncio.sleep(0.1)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if not down:  # consumers that connect while it is down fail to subscribe
                    log.error("live: lost Redis (%s); closing this process's live connections", exc)
                    down = True
                    self._close_consumers()
                await asyncio.sleep(1)
            except Exception:
                log.exception("live: unexpected error receiving from Redis")
                await asyncio.sleep(1)

    def _close_consumers(self) -> None:
        """Every consumer of this process gets `layer.lost`: what was published while the
        connection was down is gone, so each must reconnect and replay it."""
        layer = self.channel_layer
        text = layer.channel_layer.serialize(LOST)
        for queue in layer.channels.values():
            queue.put_nowait(text)
