"""One fixture world: an incident, its people, and two responders (Alice and Bob)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import connection, connections
from django.dispatch import receiver
from django.tasks import task_backends
from pytest_django import Settings

from incidents.models import Deployment, Incident, IncidentMembership, RoleRequest
from resources.models import Expert
from tests import factories

Role = IncidentMembership.Role

# The test process's own connections stay unpooled: tests hand connections to threads and close
# them per test, and pooled ones would hold sessions on the test database that pytest-django must
# drop at the end. The servers and workers tests start use the pool, as production does.
connections["default"].settings_dict.get("OPTIONS", {}).pop("pool", None)

# Redis pub/sub channels ignore database numbers: each test process (and the servers it starts,
# which inherit the environment) keeps to its own prefix, so parallel runs never hear each other.
os.environ.setdefault("CHANNEL_PREFIX", f"test{os.getpid()}")
if "prefix" in django_settings.CHANNEL_LAYERS["default"].get("CONFIG", {}):
    django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = os.environ["CHANNEL_PREFIX"]


@dataclass
class World:
    incident: Incident
    other_incident: Incident
    request: RoleRequest
    commander: User
    finance: User
    viewer: User
    other_commander: User
    outsider: User
    superuser: User
    alice_user: User
    bob_user: User
    alice: Expert
    bob: Expert


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Settings) -> None:
    # Django's real hasher costs ~0.3 s a user on purpose; tests need speed, not that strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def _no_stray_sessions_at_the_end(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Channels runs database work of the WebSocket tests in executor threads whose connections
    outlive their tests; on PostgreSQL they would stop pytest-django from dropping the test
    database (left behind on the server, run after run). End them before it tries."""
    yield
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Cached fragments are keyed by ids, which a rolled-back test database hands out again.
    cache.clear()


@pytest.fixture
def world(db: None) -> World:
    incident = factories.IncidentFactory(number="WA-2026-01")
    other_incident = factories.IncidentFactory(number="OR-2026-07", name="Wildfire")
    people = {}
    for name, inc, role in [
        ("commander", incident, Role.COMMANDER),
        ("finance", incident, Role.FINANCE),
        ("viewer", incident, Role.VIEWER),
        ("other_commander", other_incident, Role.COMMANDER),
    ]:
        people[name] = factories.UserFactory(username=name)
        factories.MembershipFactory(user=people[name], incident=inc, role=role)
    alice_user = factories.UserFactory(username="alice")
    bob_user = factories.UserFactory(username="bob")
    alice = factories.ExpertFactory(email="alice@example.org", first_name="Alice", user=alice_user)
    bob = factories.ExpertFactory(email="bob@example.org", first_name="Bob", user=bob_user)
    request = factories.RoleRequestFactory(facility=factories.FacilityFactory(incident=incident))
    return World(
        incident=incident,
        other_incident=other_incident,
        request=request,
        outsider=factories.UserFactory(username="outsider"),
        superuser=factories.UserFactory(username="root", is_superuser=True, is_staff=True),
        alice_user=alice_user,
        bob_user=bob_user,
        alice=alice,
        bob=bob,
        **people,
    )


@receiver(setting_changed)
def _reread_task_backends(*, setting: str, **kwargs: object) -> None:
    """Django caches its task backends; a test that changes TASKS gets the ones it asked for."""
    if setting == "TASKS":
        task_backends.__dict__.pop("settings", None)
        task_backends.__init__()  # type: ignore[misc]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of PostgreSQL-only or Redis-only machinery run when DATABASE_URL / REDIS_URL point at
    them; CI's second run does (a missing service fails there, it never skips)."""
    on_postgresql = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    needs = {
        "postgresql": (on_postgresql, "PostgreSQL only; run with DATABASE_URL=postgres://… (CI does)"),
        "redis": (bool(os.environ.get("REDIS_URL")), "needs Redis; run with REDIS_URL=redis://… (CI does)"),
    }
    for item in items:
        for marker, (available, why) in needs.items():
            if item.get_closest_marker(marker) and not available:
                item.add_marker(pytest.mark.skip(reason=why))


def offered(world: World, expert: Expert | None = None, **kwargs: object) -> Deployment:
    """A deployment already offered to `expert` (Alice by default) on the world's request."""
    return factories.DeploymentFactory(
        request=world.request, expert=expert or world.alice, status=Deployment.Status.OFFERED, **kwargs
    )


def database_url() -> str:
    """The test database this process uses, as a URL another process (a server, a worker) can open."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
