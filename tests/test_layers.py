"""The embedded default's in-memory channel layer: throttled housekeeping, no silent drops."""

from __future__ import annotations

import pytest

from deploy_tracker.layers import InMemoryChannelLayer

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
