"""The in-memory channel layer of the embedded default, fit for a thousand connections.

Channels' own in-memory layer scans every channel and group for expired entries on every
receive and group send: with 1,000 connected screens that scan, not the sending, is what a
500-offer confirmation costs (bench/fanout.py). Here the housekeeping runs at most once a
second, and a message dropped because a client's queue is full is logged, never silent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer as ChannelsInMemoryLayer

log = logging.getLogger(__name__)


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
