"""Live updates through the real ASGI application: who may connect, what arrives, and when."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from rest_framework.authtoken.models import Token

from deploy_tracker.asgi import application
from incidents import consumers, workflow
from incidents.models import Deployment, Event
from tests import factories
from tests.conftest import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


BROWSER = [(b"origin", b"http://localhost")]  # a browser on our own host, not logged in


def headers_for(user: Any) -> list[tuple[bytes, bytes]]:
    token, _ = Token.objects.get_or_create(user=user)
    return [(b"authorization", f"Token {token.key}".encode())]


async def connect(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def in_db(func: Callable[[], Any]) -> Any:
    return await database_sync_to_async(func)()


def proposal(world: World, expert: Any = None) -> Deployment:
    return workflow.propose(
        factories.RoleRequestFactory(facility=world.request.facility),
        expert or world.alice,
        by=world.commander,
    )


@pytest.fixture
def tokens(world: World) -> dict[str, list[tuple[bytes, bytes]]]:
    names = (
        "commander",
        "finance",
        "viewer",
        "other_commander",
        "outsider",
        "alice_user",
        "bob_user",
        "superuser",
    )
    return {name: headers_for(getattr(world, name)) for name in names}


# --- who may connect ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("anonymous", 4401),
        ("outsider", 4403),
        ("other_commander", 4403),
        ("alice_user", 4403),
        ("bad_token", 4401),
    ],
)
async def test_incident_feed_refuses_everyone_but_members(
    world: World, tokens: dict, who: str, code: int
) -> None:
    headers = {"anonymous": BROWSER, "bad_token": [(b"authorization", b"Token nope")]}.get(who) or tokens[who]
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", headers)
    assert await communicator.receive_output() == {"type": "websocket.close", "code": code}


@pytest.mark.parametrize("who", ["commander", "finance", "viewer", "superuser"])
async def test_members_are_let_in(world: World, tokens: dict, who: str) -> None:
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", tokens[who])
    assert await communicator.receive_nothing()
    await communicator.disconnect()


@pytest.mark.parametrize(("who", "code"), [("anonymous", 4401), ("commander", 4403), ("finance", 4403)])
async def test_own_feed_is_for_responders_only(world: World, tokens: dict, who: str, code: int) -> None:
    communicator = await connect("/ws/me/", tokens.get(who, BROWSER))
    assert await communicator.receive_output() == {"type": "websocket.close", "code": code}


async def test_no_origin_and_no_token_is_refused_at_the_handshake(world: World) -> None:
    communicator = WebsocketCommunicator(application, f"/ws/incidents/{world.incident.pk}/")
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_browser_from_another_site_is_refused_at_the_handshake(world: World) -> None:
    communicator = WebsocketCommunicator(
        application, f"/ws/incidents/{world.incident.pk}/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_browser_session_from_our_host_is_let_in(world: World, client: Any) -> None:
    await in_db(lambda: client.force_login(world.commander))
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    d = await in_db(lambda: proposal(world))
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", [(b"cookie", cookie), *BROWSER])
    await in_db(lambda: workflow.offer(d, by=world.commander))
    message = await communicator.receive_json_from()
    assert [e["type"] for e in message["events"]] == ["deployment.offered"]
    await communicator.disconnect()


# --- what arrives, and when ---------------------------------------------------------------------


async def test_events_arrive_after_commit_in_the_contract_shape(world: World, tokens: dict) -> None:
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])
    d = await in_db(lambda: proposal(world))
    message = await communicator.receive_json_from()
    (event,) = message["events"]
    assert set(event) == {"id", "type", "incident", "at", "data"}
    assert (event["type"], event["incident"], event["data"]["deployment"]) == (
        "deployment.proposed",
        world.incident.pk,
        d.pk,
    )
    await communicator.disconnect()


async def test_a_rolled_back_transaction_announces_nothing(world: World, tokens: dict) -> None:
    d = await in_db(lambda: proposal(world))
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])

    def offer_then_fail() -> None:
        with transaction.atomic():
            workflow.offer(d, by=world.commander)
            raise RuntimeError("the request failed after the offer")

    with pytest.raises(RuntimeError):
        await in_db(offer_then_fail)
    assert await communicator.receive_nothing(timeout=0.3)
    assert not await in_db(lambda: Event.objects.filter(type="deployment.offered").exists())
    await communicator.disconnect()


async def test_one_transaction_is_one_message_with_its_events_in_order(world: World, tokens: dict) -> None:
    drafts = await in_db(lambda: [proposal(world, factories.ExpertFactory()) for _ in range(3)])
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])

    def offer_all() -> None:
        with transaction.atomic():
            for d in drafts:
                workflow.offer(d, by=world.commander)

    await in_db(offer_all)
    message = await communicator.receive_json_from()
    ids = [e["id"] for e in message["events"]]
    assert len(ids) == 3 and ids == sorted(ids)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_responder_gets_their_own_offers_and_never_anothers(world: World, tokens: dict) -> None:
    alice = await connect("/ws/me/", tokens["alice_user"])
    for_bob = await in_db(lambda: proposal(world, world.bob))
    for_alice = await in_db(lambda: proposal(world, world.alice))
    # Proposals are the commander's draft: nothing reaches the responder yet.
    assert await alice.receive_nothing(timeout=0.3)
    await in_db(lambda: workflow.offer(for_bob, by=world.commander))
    assert await alice.receive_nothing(timeout=0.3)
    await in_db(lambda: workflow.offer(for_alice, by=world.commander))
    message = await alice.receive_json_from()
    assert [(e["type"], e["data"]["deployment"]) for e in message["events"]] == [
        ("deployment.offered", for_alice.pk)
    ]
    await alice.disconnect()


# --- replay -------------------------------------------------------------------------------------


async def test_reconnecting_with_since_replays_everything_missed_once_then_live(
    world: World, tokens: dict
) -> None:
    d = await in_db(lambda: proposal(world))
    seen = await in_db(lambda: Event.objects.latest("id").pk)
    await in_db(lambda: workflow.offer(d, by=world.commander))
    await in_db(lambda: workflow.accept(d, by=world.alice_user))
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/?since={seen}", tokens["commander"])
    replay = await communicator.receive_json_from()
    assert [e["type"] for e in replay["events"]] == ["deployment.offered", "deployment.accepted"]
    await in_db(lambda: workflow.cancel(d, by=world.commander, reason="Unit closed"))
    live_message = await communicator.receive_json_from()
    assert [e["type"] for e in live_message["events"]] == ["deployment.cancelled"]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_responders_replay_holds_only_their_own_events(world: World, tokens: dict) -> None:
    first = await in_db(lambda: Event.objects.order_by("-id").values_list("id", flat=True).first() or 0)
    await in_db(lambda: workflow.offer(proposal(world, world.bob), by=world.commander))
    mine = await in_db(lambda: workflow.offer(proposal(world, world.alice), by=world.commander))
    communicator = await connect(f"/ws/me/?since={first}", tokens["alice_user"])
    replay = await communicator.receive_json_from()
    assert [e["data"]["deployment"] for e in replay["events"]] == [mine.pk]
    await communicator.disconnect()


async def test_past_the_cap_the_client_is_told_to_reload(
    world: World, tokens: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "REPLAY_CAP", 2)
    await in_db(lambda: [proposal(world, factories.ExpertFactory()) for _ in range(3)])
    communicator = await connect(f"/ws/incidents/{world.incident.pk}/?since=0", tokens["commander"])
    assert await communicator.receive_json_from() == {"reload": True}
    await communicator.disconnect()


async def test_confirming_many_proposals_is_one_message_per_screen(world: World, tokens: dict) -> None:
    drafts = await in_db(
        lambda: (
            [proposal(world, world.alice), proposal(world, world.bob)]
            + [proposal(world, factories.ExpertFactory()) for _ in range(3)]
        )
    )
    dashboard = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])
    alice = await connect("/ws/me/", tokens["alice_user"])
    bob = await connect("/ws/me/", tokens["bob_user"])
    await in_db(lambda: workflow.offer_proposals(world.incident, by=world.commander))
    message = await dashboard.receive_json_from()
    assert sorted(e["data"]["deployment"] for e in message["events"]) == sorted(d.pk for d in drafts)
    assert await dashboard.receive_nothing(timeout=0.3)
    for communicator, mine in ((alice, drafts[0]), (bob, drafts[1])):
        own = await communicator.receive_json_from()
        assert [(e["type"], e["data"]["deployment"]) for e in own["events"]] == [
            ("deployment.offered", mine.pk)
        ]
        assert await communicator.receive_nothing(timeout=0.1)
        await communicator.disconnect()
    await dashboard.disconnect()


async def test_a_background_job_reports_progress_then_its_end_to_the_incident_only(
    world: World, tokens: dict
) -> None:
    from incidents import jobs
    from incidents.models import Job

    dashboard = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])
    alice = await connect("/ws/me/", tokens["alice_user"])
    job = await in_db(lambda: jobs.start(world.incident, Job.Kind.MATCHING, by=world.commander))
    stages, ended = [], None
    while ended is None:
        message = await dashboard.receive_json_from(timeout=5)
        if "job" in message:
            assert message["job"]["id"] == job.pk and message["job"]["kind"] == "matching"
            stages.append((message["job"]["stage"], message["job"]["done"], message["job"]["total"]))
        ended = next((e for e in message.get("events", []) if e["type"].startswith("job.")), None)
    assert stages[0][0] == "started"
    assert [s for s, _, _ in stages[1:]] == [
        "loading the roster",
        "solving",
        "explaining",
        "writing proposals",
    ]
    assert [done for _, done, _ in stages[1:]] == [0, 1, 2, 3]
    assert ended["type"] == "job.finished" and ended["data"]["job"] == job.pk
    assert await alice.receive_nothing(timeout=0.2)  # progress and job ends are for the incident's members
    await alice.disconnect()
    await dashboard.disconnect()


async def test_messages_of_concurrent_transactions_are_all_forwarded_in_any_order(
    world: World, tokens: dict
) -> None:
    """Two requests commit at once; their messages may reach the layer in either order."""
    from channels.layers import get_channel_layer

    from incidents import live

    communicator = await connect(f"/ws/incidents/{world.incident.pk}/", tokens["commander"])
    layer = get_channel_layer()
    group = live.incident_group(world.incident.pk)
    newer = {"type": "live.events", "text": '{"events": [{"id": 1002}]}', "first": 1002, "last": 1002}
    older = {"type": "live.events", "text": '{"events": [{"id": 1001}]}', "first": 1001, "last": 1001}
    await layer.group_send(group, newer)
    await layer.group_send(group, older)
    assert (await communicator.receive_json_from())["events"] == [{"id": 1002}]
    assert (await communicator.receive_json_from())["events"] == [{"id": 1001}]
    await communicator.disconnect()


async def test_a_message_that_straddles_the_replay_sends_only_what_the_replay_did_not(
    world: World, tokens: dict
) -> None:
    """A transaction commits while the client replays: the replay has its first event, the
    live message brings both; the client gets the second one once."""
    import json

    from channels.layers import get_channel_layer

    from incidents import live

    await in_db(lambda: proposal(world))
    newest = await in_db(lambda: Event.objects.latest("id").pk)
    communicator = await connect(
        f"/ws/incidents/{world.incident.pk}/?since={newest - 1}", tokens["commander"]
    )
    assert [e["id"] for e in (await communicator.receive_json_from())["events"]] == [newest]
    body = json.loads(live.message_text(await in_db(lambda: list(Event.objects.filter(pk=newest)))))
    body["events"].append({**body["events"][0], "id": newest + 1})
    message = {"type": "live.events", "text": json.dumps(body), "first": newest, "last": newest + 1}
    await get_channel_layer().group_send(live.incident_group(world.incident.pk), message)
    assert [e["id"] for e in (await communicator.receive_json_from())["events"]] == [newest + 1]
    await communicator.disconnect()


@pytest.mark.parametrize(("path", "who"), [("incident", "commander"), ("me", "alice_user")])
async def test_a_consumer_whose_channel_layer_lost_redis_closes_so_its_client_replays(
    world: World, tokens: dict, path: str, who: str
) -> None:
    """deploy_tracker/layers.py sends `layer.lost` to every consumer of a process that lost
    Redis; the client is closed with 4503 (reconnect with ?since=), never left deaf."""
    url = f"/ws/incidents/{world.incident.pk}/" if path == "incident" else "/ws/me/"
    communicator = await connect(url, tokens[who])
    await communicator.send_input({"type": "layer.lost"})
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": consumers.LAYER_LOST}
