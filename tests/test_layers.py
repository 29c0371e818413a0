"""Our channel layers: the embedded default's in memory (throttled housekeeping, no silent
drops), and Redis publish/subscribe (a lost Redis closes every consumer so clients replay)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from deploy_tracker.layers import LOST, InMemoryChannelLayer, RedisPubSubChannelLayer
from tests.servers import free_port

pytestmark = pytest.mark.asyncio


async def test_a_full_client_queue_is_logged_and_the_others_still_get_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer(capacity=1)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for channel in (slow, fast):
        await layer.group_add("incident.1", channel)
    await layer.group_send("incident.1", {"type": "live.events", "text": "1"})
    assert (await layer.receive(fast))["text"] == "1"
    await layer.group_send("incident.1", {"type": "live.events", "text": "2"})
    assert (await layer.receive(fast))["text"] == "2"
    assert "1 client(s) of incident.1 were too far behind" in caplog.text
    assert (await layer.receive(slow))["text"] == "1"


async def test_housekeeping_runs_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = InMemoryChannelLayer()
    sweeps = []
    monkeypatch.setattr("channels.layers.InMemoryChannelLayer._clean_expired", lambda self: sweeps.append(1))
    channel = await layer.new_channel()
    await layer.group_add("incident.1", channel)
    for _ in range(50):
        await layer.group_send("incident.1", {"type": "live.events", "text": "x"})
    assert len(sweeps) == 1


# --- Redis publish/subscribe ---------------------------------------------------------------------


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A Redis server of this test's own (the machine's is shared with other test runs)."""
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server program")
async def test_a_lost_redis_closes_every_consumer_and_the_layer_works_again_once_it_is_back() -> None:
    port = free_port()
    layer = RedisPubSubChannelLayer(hosts=[{"address": f"redis://127.0.0.1:{port}/0"}], prefix="t")
    with private_redis(port) as server:
        dashboard, responder = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("incident.1", dashboard)
        await layer.group_add("expert.7", responder)
        await layer.group_send("incident.1", {"type": "live.events", "text": "before"})
        assert (await asyncio.wait_for(layer.receive(dashboard), 5))["text"] == "before"

        server.terminate()  # Redis goes away: what is published now is lost
        server.wait(timeout=10)
        for channel in (dashboard, responder):
            assert await asyncio.wait_for(layer.receive(channel), 5) == LOST
    with private_redis(port):
        # A client that reconnects gets a fresh consumer: a new channel that subscribes again.
        again = await layer.new_channel()
        await layer.group_add("incident.1", again)
        await layer.group_send("incident.1", {"type": "live.events", "text": "after"})
        assert (await asyncio.wait_for(layer.receive(again), 5))["text"] == "after"
        await layer.flush()
