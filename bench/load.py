"""Benchmark: the production setup under a day-of-the-surge load — responders, commanders, finance.

Usage: .venv/bin/python bench/load.py [--duration 90] [--responders 300] [--commanders 20]
           [--finance 5] [--spawn-rate 50] [--embedded]
           [--postgres postgres://postgres@127.0.0.1:5432/postgres]
           [--redis-url redis://127.0.0.1:6379/13] [--keep DIR]
       .venv/bin/python bench/load.py --faults [--faults-dry-run]   (see "Faults" below)

What runs, all on this machine's loopback:
* PostgreSQL: a fresh database of its own on the server --postgres names (created, migrated and
  dropped afterwards); Redis (--redis-url): the channel layer with a channel prefix of the run's
  own (CHANNEL_PREFIX; pub/sub ignores database numbers), its keys deleted afterwards;
* 2 Daphne processes in production mode (DEBUG off, a random SECRET_KEY, `check --deploy`
  settings, static files collected into a temporary folder; only the HTTPS redirect is off,
  SECURE_SSL_REDIRECT=false, as behind a TLS proxy) and 1 `manage.py db_worker`
  (TASK_BACKEND=database: offer emails are queued work, as in production; mail to memory);
* Locust (`locust --headless`, bench/locustfile.py), one process. Each user is pinned to one
  Daphne, user i of each kind to Daphne i % 2 (as a load balancer with sticky sessions).

`--embedded` runs the same on the embedded default instead: a temporary SQLite file, the
in-memory channel layer and so one Daphne (the smoke test uses it).

The world: the demo response (`fixtures/demo.py`, a roster of --roster experts and the month
of history of WA-2026-01) plus, through the real workflow, --responders responders with a login
linked to experts of the roster, each with open offers; --commanders commanders and --finance
finance officers of WA-2026-01; and for each commander proposals to offer and accepted people to
check in. Everyone has an API token and a signed-in session (made in the database: no password
is hashed during the run, sign-in is not what this measures).

The load, after every user has started (the figures are of the --duration that follows):
* responders: every 5–15 s, GET /api/me/deployments/ (3 in 4) or the /me/ page; seeing an open
  offer, they answer it with a chance of 0.3 (3 in 4 accept, the rest decline) via the API;
* commanders: the incident page, its WebSocket (replay from the page's newest event, reconnect
  as live.js does) and the fill fragment fetched 0.5 s after each burst of events, as live.js
  does; every 5–15 s a page reload (2 in 4), an offer of a proposal or a check-in (1 in 4 each);
* finance officers: every 20–40 s, the finance export of WA-2026-01, xlsx (3 in 4) or CSV.
Workflow writes stop at the end of --duration; a 5 s tail of reads lets the last live events
arrive. Then every write that a client saw succeed (2xx) is looked up in the database: the event
it must have written (deployment.accepted, .declined, .offered, .checked_in or
.screening_failed) and the deployment's state. Targets: 0 errors, p99 ≤ 300 ms for reads and
≤ 500 ms for workflow writes (exports are shown apart, without a target), 0 records lost, and
every dashboard receives every event of the incident once.

Faults (`--faults`): the same load, and meanwhile Redis is shut down (SHUTDOWN NOSAVE) and started
again at 30 % of --duration, and PostgreSQL is restarted (pg_ctlcluster … restart) at 60 %.
It reports the errors by status code (503 is the expected clear answer, 500 a bug), the records
lost (target 0), the writes that failed to the client but were applied, and whether every server
process survived. THESE ARE THE MACHINE'S SHARED SERVERS: other people's test runs break while
they restart. `--faults-dry-run` runs everything else and only prints the restart commands.

`--db-pool SIZE` is a what-if, not today's settings: the same run with psycopg's connection pool
(at most SIZE connections per process) added to the settings, to measure that proposal
(needs `pip install psycopg-pool`).

The CPU each process used during the measured window is printed as bench/fanout.py does
(PostgreSQL: the whole server, all its backends, other users' included), with the machine's
load average. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from fanout import Server, cpu_seconds, free_port, machine_busy_seconds, percentile

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
READ_TARGET_S = 0.300
WRITE_TARGET_S = 0.500
TAIL_S = 5  # reads only, after the writes stop: the last live events reach the dashboards
REDIS_DOWN_S = 2.0  # how long Redis stays down in --faults before it is started again
SPAWN_TIMEOUT_S = 120.0
REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip
WRITE_EVENTS = {
    "accept": "deployment.accepted",
    "decline": "deployment.declined",
    "offer": "deployment.offered",
}
# The settings module the processes run: production settings, except that collected static files
# go to a temporary folder (STATIC_ROOT is not an environment variable) so a run leaves the work
# tree as it found it. `collect` also skips the gzip/brotli copies (a minute of CPU on this
# machine); the manifest, which the pages need to render, is the same.
SETTINGS_SHIM = """# Written by bench/load.py for one run.
from deploy_tracker.settings import *  # noqa: F403

STATIC_ROOT = {static!r}
"""
# --db-pool: what-if of a proposal, not today's settings (psycopg's pool, psycopg-pool installed).
POOL_SHIM = """
POOL = {{"min_size": 2, "max_size": {size}, "timeout": 10}}
DATABASES["default"].setdefault("OPTIONS", {{}})["pool"] = POOL  # noqa: F405
"""
COLLECT_SHIM = """# Written by bench/load.py for one run.
from load_settings import *  # noqa: F403

MANIFEST_ONLY = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": MANIFEST_ONLY}}  # noqa: F405
"""


@dataclass(frozen=True)
class Sizes:
    """How big a run is."""

    responders: int
    commanders: int
    finance: int
    duration: int
    roster: int

    @property
    def offers_per_responder(self) -> int:
        return max(2, self.duration // 45)

    @property
    def per_commander(self) -> int:
        """Proposals to offer, and arrivals to check in, for each commander (more than a run uses)."""
        return self.duration // 20 + 4

    @property
    def users(self) -> int:
        return self.responders + self.commanders + self.finance


# --- The world (runs in a subprocess whose environment points at the benchmark database) -------


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")
    import django

    django.setup()


def build_world(out: Path, sizes: Sizes) -> None:
    """Migrate, load the demo, then add the benchmark's people and their offers; write the world.

    Everything goes through the fixtures and the workflow, so the database holds what a real
    response would: events for every move, the emails sent (to memory), no shortcuts.
    """
    _setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Count
    from geopy.distance import great_circle
    from rest_framework.authtoken.models import Token

    from fixtures.demo import INCIDENT_NUMBER, load_demo
    from fixtures.roster import EMAIL_DOMAIN
    from fixtures.story import TZ
    from incidents import workflow
    from incidents.models import Deployment, Event, Incident, IncidentMembership, RoleRequest
    from resources.models import Credential, Expert

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrated = time.perf_counter()
    # The demo logins' password is never used here: a random one, so the run opens no known door.
    load_demo(experts=sizes.roster, password=secrets.token_urlsafe(16))
    demo = time.perf_counter()

    incident = Incident.objects.get(number=INCIDENT_NUMBER)
    commander = User.objects.get(username="commander")
    today = _today(TZ)
    windows = [today + timedelta(days=30 + 16 * k) for k in range(sizes.offers_per_responder)]
    last_end = windows[-1] + timedelta(days=incident.max_deployment_days - 1)
    per_commander = sizes.per_commander
    needed = sizes.responders + 2 * sizes.commanders * per_commander
    # People the story left alone, each with a verified credential valid through every window:
    # what they are proposed for, so the dashboard's "credentials lapsing" list stays honest.
    fresh = list(
        Expert.objects.filter(
            email__endswith=f"@{EMAIL_DOMAIN}", active=True, user__isnull=True, deployments__isnull=True
        ).order_by("pk")
    )
    role: dict[int, Any] = {}
    for c in Credential.objects.filter(expert__in=fresh, verified=True).select_related("qualification"):
        lasts = c.expires_on is None or c.expires_on >= last_end
        licensed_here = not c.qualification.jurisdictional or c.jurisdiction == "WA"
        if lasts and licensed_here:
            role.setdefault(c.expert_id, c.qualification)
    people = [e for e in fresh if e.pk in role][:needed]
    if len(people) < needed:
        raise SystemExit(
            f"the roster has {len(people)} free, credentialed experts and the run needs {needed}: "
            "raise --roster"
        )
    responders = people[: sizes.responders]
    to_offer = people[sizes.responders : sizes.responders + sizes.commanders * per_commander]
    to_check_in = people[sizes.responders + sizes.commanders * per_commander :]
    sites = list(incident.facilities.order_by("code"))

    # One request per role and window, at one facility per role: a statewide call for each kind of
    # expert. Quantities are exactly the people proposed, so the fill table reads true.
    wanted: dict[tuple[int, Any], list[Expert]] = defaultdict(list)
    for expert in responders:
        for start in windows:
            wanted[(role[expert.pk].pk, start)].append(expert)
    for expert in to_offer:
        wanted[(role[expert.pk].pk, windows[0])].append(expert)
    for expert in to_check_in:
        wanted[(role[expert.pk].pk, today)].append(expert)
    qualifications = {q.pk: q for q in role.values()}
    proposals = []
    for (qualification_id, start), experts in sorted(wanted.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        facility = sites[qualification_id % len(sites)]
        request = RoleRequest.objects.create(
            facility=facility,
            qualification=qualifications[qualification_id],
            quantity=len(experts),
            start=start,
            end=start + timedelta(days=incident.max_deployment_days - 1),
            priority=RoleRequest.Priority.HIGH,
            notes="ICS-213RR load benchmark",
        )
        for expert in experts:
            km = great_circle((expert.latitude, expert.longitude), (facility.latitude, facility.longitude)).km
            proposals.append(
                workflow.NewProposal(
                    request=request, start=start, expert_id=expert.pk, distance_km=km, why="load benchmark"
                )
            )
    with transaction.atomic():
        created, _ = workflow.replace_proposals(incident, proposals, by=commander)
    by_expert: dict[int, list[Deployment]] = defaultdict(list)
    for d in created:
        by_expert[d.expert_id].append(d)
    offered_ids = [d.pk for e in [*responders, *to_check_in] for d in by_expert[e.pk]]
    done = workflow.offer_proposals(incident, by=commander, deployments=offered_ids)
    if done.skipped:
        raise SystemExit(f"the seed could not offer {len(done.skipped)} proposals: {done.skipped}")
    for expert in to_check_in:
        workflow.accept(by_expert[expert.pk][0], by=commander)

    unusable = make_password(None)
    names = [f"load-responder-{i}" for i in range(sizes.responders)]
    names += [f"load-commander-{i}" for i in range(sizes.commanders)]
    names += [f"load-finance-{i}" for i in range(sizes.finance)]
    users = User.objects.bulk_create(User(username=name, password=unusable) for name in names)
    for expert, user in zip(responders, users, strict=False):
        expert.user = user
    Expert.objects.bulk_update(responders, ["user"])
    staff = users[sizes.responders :]
    IncidentMembership.objects.bulk_create(
        IncidentMembership(
            user=user,
            incident=incident,
            role=IncidentMembership.Role.COMMANDER
            if i < sizes.commanders
            else IncidentMembership.Role.FINANCE,
        )
        for i, user in enumerate(staff)
    )
    tokens = Token.objects.bulk_create(Token(user=user, key=Token.generate_key()) for user in users)
    backend = "django.contrib.auth.backends.ModelBackend"
    assert backend in settings.AUTHENTICATION_BACKENDS

    def session(user: User) -> str:
        """A signed-in browser session, as /login/ would leave it."""
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = backend
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        assert store.session_key is not None
        return store.session_key

    people_of = [{"token": t.key, "session": session(u)} for u, t in zip(users, tokens, strict=True)]
    commanders = people_of[sizes.responders : sizes.responders + sizes.commanders]
    for i, who in enumerate(commanders):
        part = slice(i * per_commander, (i + 1) * per_commander)
        who["offer"] = [by_expert[e.pk][0].pk for e in to_offer[part]]
        who["check_in"] = [by_expert[e.pk][0].pk for e in to_check_in[part]]
    responders_of = people_of[: sizes.responders]
    for who, expert in zip(responders_of, responders, strict=True):
        who["offers"] = [d.pk for d in by_expert[expert.pk]]
    if connection.vendor == "postgresql":
        # Statistics as autovacuum keeps them on a live system; a database loaded a moment ago has
        # none yet, and the planner's guesses make some dashboard queries 20× slower (README).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    states = dict(
        Deployment.objects.filter(request__facility__incident=incident)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by("status")
    )
    world = {
        "incident": incident.pk,
        "number": incident.number,
        "since": Event.objects.filter(incident=incident).order_by("-id").values_list("id", flat=True).first(),
        "responders": responders_of,
        "commanders": commanders,
        "finance": people_of[sizes.responders + sizes.commanders :],
        "experts": Expert.objects.count(),
        "deployments": states,
        "events": Event.objects.filter(incident=incident).count(),
        "seconds": {
            "migrate": migrated - started,
            "demo": demo - migrated,
            "bench": time.perf_counter() - demo,
        },
    }
    out.write_text(json.dumps(world))


def _today(tz: Any) -> Any:
    from django.utils import timezone

    return timezone.localdate(timezone=tz)


def check_world(world_path: Path, results_path: Path, out: Path) -> None:
    """After the run: is every write a client saw succeed in the database, and did every
    dashboard get every event of the incident once?"""
    _setup()
    from incidents.models import Deployment, Event

    world = json.loads(world_path.read_text())
    results = json.loads(results_path.read_text())
    writes = results["writes"]
    ids = {w["deployment"] for w in writes}
    recorded = set(Event.objects.filter(deployment_id__in=ids).values_list("deployment_id", "type"))
    status = dict(Deployment.objects.filter(pk__in=ids).values_list("pk", "status"))
    lost: list[dict[str, Any]] = []
    wrong_state: list[dict[str, Any]] = []
    applied_anyway: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    ok = 0
    succeeded = {(w["deployment"], w["op"]) for w in writes if _answered(w)}
    for w in writes:
        expected, state = _expected(w)
        if _answered(w):
            ok += 1
            if (w["deployment"], expected) not in recorded:
                lost.append(w)
            elif status.get(w["deployment"]) != state:
                wrong_state.append({**w, "found": status.get(w["deployment"])})
        else:
            failed[w["op"]] += 1
            # A failed answer may hide a commit (the connection died after it). A move the client
            # made again and saw succeed is that success's event, not this one's.
            if (w["deployment"], expected) in recorded and (w["deployment"], w["op"]) not in succeeded:
                applied_anyway[w["op"]] += 1
    incident_events = list(
        Event.objects.filter(incident_id=world["incident"], id__gt=world["since"] or 0)
        .order_by("id")
        .values_list("id", flat=True)
    )
    # A page load shows everything up to its newest event; each socket must then bring every later
    # event, once: what a dashboard must have received is every event after its last page load.
    missed = duplicates = checked = 0
    for board in results["dashboards"]:
        if not board["pages"]:
            continue
        seen = board["seen"]  # [socket number, event id]
        duplicates += len(seen) - len({(n, i) for n, i in seen})
        due = {i for i in incident_events if i > max(board["pages"])}
        checked += len(due)
        missed += len(due - {i for _, i in seen})
    out.write_text(
        json.dumps(
            {
                "ok": ok,
                "lost": lost,
                "wrong_state": wrong_state,
                "failed": dict(failed),
                "applied_anyway": dict(applied_anyway),
                "events_after_start": len(incident_events),
                "missed": missed,
                "checked": checked,
                "duplicates": duplicates,
            }
        )
    )


def _answered(write: dict[str, Any]) -> bool:
    return bool(200 <= write["status"] < 300 and write["answer"] is not None)


def _expected(write: dict[str, Any]) -> tuple[str, str]:
    """The event a write leaves and the state it moves to (a check-in: by the answer, or its
    likeliest outcome when there was none)."""
    if write["op"] != "check-in":
        state = {"accept": "accepted", "decline": "declined", "offer": "offered"}[write["op"]]
        return WRITE_EVENTS[write["op"]], state
    answer = write.get("answer") or {}
    if answer.get("deployment", {}).get("status") == "cancelled":
        return "deployment.screening_failed", "cancelled"
    return "deployment.checked_in", "on_site"


# --- The database and Redis --------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards; yields its URL."""
    name = f"deploy_tracker_load_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise SystemExit(f"cannot create a database on {server_url}: {exc}") from None
    try:
        yield _with_database(server_url, name)
    finally:
        for attempt in range(10):  # after --faults the server may still be coming back
            try:
                with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.Error as exc:
                if attempt == 9:
                    print(f"  could not drop database {name}: {exc}; drop it by hand")
                time.sleep(1)


def postmaster_pid(server_url: str) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine (to watch its CPU)."""
    try:
        with psycopg.connect(server_url, connect_timeout=5) as conn:
            row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'data_directory'").fetchone()
        pid = int((Path(row[0]) / "postmaster.pid").read_text().split()[0]) if row else 0
    except (psycopg.Error, OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def database_activity(database_url: str) -> dict[str, float] | None:
    """This database's own counters (PostgreSQL 14+): sessions opened, seconds spent running
    statements, commits — other databases on the shared server are not in them."""
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT sessions, active_time, xact_commit FROM pg_stat_database "
                "WHERE datname = current_database()"
            ).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return {"sessions": float(row[0]), "active_s": float(row[1]) / 1000, "commits": float(row[2])}


def redis_pid(url: str) -> int | None:
    try:
        pid = int(redis.Redis.from_url(url, socket_connect_timeout=3).info("server").get("process_id", 0))
    except redis.RedisError:
        return None
    return pid if pid and Path(f"/proc/{pid}").exists() else None


@contextmanager
def own_redis(url: str) -> Iterator[str]:
    """A channel prefix of this run's own (CHANNEL_PREFIX: pub/sub channels ignore Redis's
    database numbers, so a run that shared the default prefix would hear another run's incident
    of the same id); yields it, and deletes whatever keys the run left under it."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"Redis at {url} is not reachable ({exc}); start it or use --embedded.") from None
    prefix = f"load{os.getpid()}{secrets.token_hex(3)}"
    try:
        yield prefix
    finally:
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        except redis.RedisError as exc:
            print(f"  could not clean the channel-layer keys of {url}: {exc}")


# --- Processes ---------------------------------------------------------------------------------


def server_env(
    settings_dir: Path, database_url: str, redis_url: str | None, prefix: str | None
) -> dict[str, str]:
    """Production mode (what `check --deploy` wants) on the benchmark database."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(settings_dir), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "load_settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on the loopback, as behind a TLS proxy; HSTS and Secure cookies stay on.
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url,
        "EMAIL_URL": "locmem://",  # the cheapest backend the settings accept: mail kept in memory
        "TASK_BACKEND": "database",  # as in production: a db_worker runs the queued work
        "LOG_LEVEL": "WARNING",
    }
    for name in ("SQLITE_PATH", "REDIS_URL", "CHANNEL_PREFIX"):
        env.pop(name, None)
    if redis_url and prefix:
        env["REDIS_URL"], env["CHANNEL_PREFIX"] = redis_url, prefix
    return env


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def warm_up(hosts: list[str], world: dict[str, Any]) -> None:
    """Every kind of request once on every server, before the clock starts: a production server
    has long been warm (imports, templates, the first database connection of each thread);
    a setup that cannot answer (a page that does not render) stops the run here."""
    responder, commander, finance = world["responders"][0], world["commanders"][0], world["finance"][0]
    incident, number = world["incident"], world["number"]
    calls = [
        ("GET", "/api/me/deployments/", {"Authorization": f"Token {responder['token']}"}),
        ("GET", "/me/", {"Cookie": f"sessionid={responder['session']}"}),
        ("GET", f"/incidents/{incident}/", {"Cookie": f"sessionid={commander['session']}"}),
        ("GET", f"/incidents/{incident}/fill/", {"Cookie": f"sessionid={commander['session']}"}),
        (
            "GET",
            f"/api/reports/finance/?incident={number}&format=xlsx",
            {"Authorization": f"Token {finance['token']}"},
        ),
        (
            "GET",
            f"/api/reports/finance/?incident={number}&format=csv",
            {"Authorization": f"Token {finance['token']}"},
        ),
        # A move of no deployment: the write path's code, answered 404, nothing written.
        ("POST", "/api/deployments/0/accept/", {"Authorization": f"Token {commander['token']}"}),
    ]
    opener = urllib.request.build_opener(_NoRedirect)  # a page that sends us to /login/ is a failure
    for host in hosts:
        for method, path, headers in calls:
            request = urllib.request.Request(
                host + path,
                method=method,
                headers={**headers, "Content-Type": "application/json"},
                data=b"{}" if method == "POST" else None,
            )
            try:
                with opener.open(request, timeout=60) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                if not (method == "POST" and exc.code == 404):
                    raise SystemExit(f"warm-up: {method} {host}{path} answered {exc.code}") from None


def run_step(name: str, args: Sequence[str], env: dict[str, str]) -> float:
    """A setup step in a subprocess; fail with its output. Returns its seconds."""
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(
            f"{name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return time.perf_counter() - started


def tree_cpu(pid: int) -> float | None:
    """CPU seconds so far of a process and of its children, live or ended (a child that ended
    moves from the live sum into its parent's cutime/cstime, so the total never jumps)."""
    own = _cpu_with_children(pid)
    if own is None:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            own += _cpu_with_children(int(entry.name)) or 0.0
    return own


def _cpu_with_children(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds each named process (or process tree) used during a window, sampled every
    second so that a process restarted meanwhile (--faults) is counted before and after; plus
    what the rest of the machine used, and the load average."""

    def __init__(self, sources: dict[str, Callable[[], int | None]], trees: set[str]) -> None:
        self.sources = sources
        self.trees = trees
        self.last: dict[str, tuple[int, float] | None] = dict.fromkeys(sources)
        self.used: dict[str, float] = dict.fromkeys(sources, 0.0)
        self.loads: list[float] = []
        self.machine_before: float | None = None
        self.others: float | None = None
        self.began = self.wall = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, name: str) -> tuple[int, float] | None:
        pid = self.sources[name]()
        if pid is None:
            return None
        seconds = tree_cpu(pid) if name in self.trees else cpu_seconds(pid)
        return None if seconds is None else (pid, seconds)

    def _sample(self, first: bool = False) -> None:
        for name in self.sources:
            now, before = self._read(name), self.last[name]
            if now is not None and not first:
                if before is not None and before[0] == now[0]:
                    self.used[name] += max(0.0, now[1] - before[1])
                else:  # started in the window (restarted by --faults): all of it counts
                    self.used[name] += now[1]
            if now is not None or first:
                self.last[name] = now
        self.loads.append(os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample()

    def start(self) -> None:
        self._sample(first=True)
        self.machine_before = machine_busy_seconds()
        self.began = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.wall = max(time.monotonic() - self.began, 1e-9)
        machine = machine_busy_seconds()
        if machine is not None and self.machine_before is not None:
            self.others = max(0.0, machine - self.machine_before - sum(self.used.values()))

    def line(self) -> str:
        def share(seconds: float) -> str:
            return f"{seconds:.1f} s ({100 * seconds / self.wall:.0f} %)"

        parts = [f"{name} {share(used)}" for name, used in self.used.items()]
        if self.others is not None:
            parts.append(f"other programs {share(self.others)}")
        return f"over {self.wall:.0f} s: {', '.join(parts)}"

    def machine_line(self) -> str:
        if not self.loads:
            return "n/a"
        busy = sum(self.used.values()) + (self.others or 0.0)
        return (
            f"load average (1 min) during the run: mean {sum(self.loads) / len(self.loads):.2f}, "
            f"max {max(self.loads):.2f} on {os.cpu_count()} cores; CPU busy "
            f"{100 * busy / self.wall / (os.cpu_count() or 1):.0f} % of the machine"
        )


# --- Faults ------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One restart: what, when it began and when the service answered again (wall clock)."""

    what: str
    began: float = 0.0
    back: float = 0.0
    note: str = ""


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _redis_up(port: int = 6379) -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0


def postgres_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    if not versions:
        raise SystemExit("no cluster under /etc/postgresql: cannot restart PostgreSQL")
    return versions[-1]


def restart_redis(dry_run: bool) -> Fault:
    fault = Fault("Redis: SHUTDOWN NOSAVE, then started again")
    fault.began = time.time()
    shutdown = ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "SHUTDOWN", "NOSAVE"]
    if dry_run:
        fault.note = f"dry run: would run `{' '.join(shutdown)}`, wait {REDIS_DOWN_S:.0f} s, `redis-server …`"
        fault.back = time.time()
        return fault
    subprocess.run(shutdown, capture_output=True)
    if not _wait(lambda: not _redis_up(), 10):
        fault.note = "Redis still answered 10 s after SHUTDOWN"
    time.sleep(REDIS_DOWN_S)
    start_redis()
    if not _redis_up():
        fault.note = "Redis did not answer within 30 s of its start"
    fault.back = time.time()
    return fault


def start_redis() -> None:
    """Start the machine's Redis as CI does, trying a few times (others depend on it)."""
    for _ in range(3):
        subprocess.run(REDIS_START, capture_output=True)
        if _wait(_redis_up, 10):
            return


def ensure_services() -> None:
    """After --faults: the machine's shared Redis and PostgreSQL must be up, whatever happened."""
    if not _redis_up():
        print("  Redis was down after the run: starting it")
        start_redis()
    if not _postgres_up():
        print("  PostgreSQL was down after the run: starting it")
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "start"]
        subprocess.run(command, capture_output=True)
        _wait(_postgres_up, 60)


def restart_postgres(dry_run: bool) -> Fault:
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"]
    fault = Fault(f"PostgreSQL: {' '.join(command[-3:])}")
    fault.began = time.time()
    if dry_run:
        fault.note = f"dry run: would run `{' '.join(command)}`"
        fault.back = time.time()
        return fault
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        fault.note = f"pg_ctlcluster exited {done.returncode}: {done.stderr.strip()[:200]}"
    if not _wait(_postgres_up, 60):
        fault.note += " PostgreSQL did not accept connections within 60 s"
    fault.back = time.time()
    return fault


def inject_faults(start: float, duration: int, dry_run: bool, faults: list[Fault]) -> None:
    """Restart Redis at 30 % of the measured window and PostgreSQL at 60 %."""
    for share, restart in ((0.3, restart_redis), (0.6, restart_postgres)):
        time.sleep(max(0.0, start + share * duration - time.time()))
        try:
            fault = restart(dry_run)
        except (OSError, subprocess.SubprocessError, SystemExit) as exc:
            fault = Fault(restart.__name__, began=time.time(), back=time.time(), note=f"failed: {exc}")
        faults.append(fault)
        note = f" — {fault.note}" if fault.note else ""
        print(f"  {fault.what}: {fault.back - fault.began:.1f} s until it answered again{note}")


# --- Results -----------------------------------------------------------------------------------

CLASSES = {
    "read": "reads (API poll, /me/, dashboard, fill)",
    "write": "workflow writes (accept, decline, offer, check-in)",
    "export": "exports (finance xlsx / csv)",
}


@dataclass
class Figures:
    """The samples of one class of requests in the measured window."""

    times: list[float] = field(default_factory=list)  # seconds, every request
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.times)

    def p(self, q: float) -> float:
        return percentile(self.times, q)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def summarise(
    results: dict[str, Any], window: tuple[float, float]
) -> tuple[dict[str, Figures], dict[str, Figures], Counter[str]]:
    """Per class and per endpoint, the requests that started in the window; every error of the
    whole run by kind (an error outside the window counts too)."""
    classes: dict[str, Figures] = defaultdict(Figures)
    endpoints: dict[str, Figures] = defaultdict(Figures)
    every_error: Counter[str] = Counter()
    for start, kind, name, _status, error, took_ms, _host in results["samples"]:
        if error:
            every_error[f"{error} ({kind})"] += 1
        if not window[0] <= start < window[1]:
            continue
        for bucket in (classes[kind], endpoints[name]):
            bucket.times.append(took_ms / 1000)
            if error:
                bucket.errors[error] += 1
    return classes, endpoints, every_error


def beside_exports(results: dict[str, Any], window: tuple[float, float]) -> str:
    """Reads that started while their Daphne was writing an export, against the others: an export
    is CPU work in the web process, and a Python process runs one thread at a time."""
    busy: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for start, kind, _name, _status, _error, took_ms, host in results["samples"]:
        if kind == "export":
            busy[host].append((start, start + took_ms / 1000))
    during: list[float] = []
    other: list[float] = []
    for start, kind, _name, _status, _error, took_ms, host in results["samples"]:
        if kind == "read" and window[0] <= start < window[1]:
            overlaps = any(a <= start < b for a, b in busy[host])
            (during if overlaps else other).append(took_ms / 1000)
    return (
        f"reads that started while their Daphne was writing an export: {len(during):,}, p50 "
        f"{ms(percentile(during, 50))}, p99 {ms(percentile(during, 99))}; the other reads: p50 "
        f"{ms(percentile(other, 50))}, p99 {ms(percentile(other, 99))}"
    )


def report(
    results: dict[str, Any],
    check: dict[str, Any],
    window: tuple[float, float],
    faults: list[Fault],
    cpu: CpuMeter,
    servers: list[Server],
    faulty: bool,
) -> bool:
    """Print the figures; True when every target is met."""
    classes, endpoints, every_error = summarise(results, window)
    seconds = window[1] - window[0]
    passed = True
    print("\n| requests | count | per s | p50 | p99 | max | errors | target | result |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    targets = {"read": READ_TARGET_S, "write": WRITE_TARGET_S}
    total = 0
    for kind, label in CLASSES.items():
        f = classes.get(kind, Figures())
        total += f.count
        target = targets.get(kind)
        errors = sum(f.errors.values())
        verdict = "—"
        if target is not None and not faulty:  # under faults, errors and slow answers are expected
            ok = f.count > 0 and f.p(99) <= target and errors == 0
            verdict = "pass" if ok else "FAIL"
            passed &= ok
        print(
            f"| {label} | {f.count:,} | {f.count / seconds:,.1f} | {ms(f.p(50))} | {ms(f.p(99))} "
            f"| {ms(max(f.times, default=math.nan))} | {errors:,} "
            f"| {f'p99 ≤ {ms(target)}, 0 errors' if target and not faulty else '—'} | {verdict} |"
        )
    errors_in_window = sum(sum(f.errors.values()) for f in classes.values())
    print(f"| **all HTTP** | {total:,} | **{total / seconds:,.1f}** | | | | {errors_in_window:,} | | |")
    ws = classes.get("websocket", Figures())
    print(
        f"\n  {seconds:.0f} s measured after every user started; WebSocket handshakes: {ws.count} "
        f"(p50 {ms(ws.p(50))}, p99 {ms(ws.p(99))}), failed {sum(ws.errors.values())}"
    )

    print(
        "\n  errors, whole run, by kind: "
        + (", ".join(f"{k} ×{n}" for k, n in every_error.most_common()) or "none")
    )
    if not faulty and every_error:
        passed = False
    status_500 = sum(n for k, n in every_error.items() if k.startswith("HTTP 500"))
    if faulty:
        for fault in faults:
            around = Counter(
                error
                for start, _kind, _name, _status, error, _ms, _host in results["samples"]
                if error and fault.began - 1 <= start <= fault.back + 10
            )
            print(
                f"  {fault.what}: down {fault.back - fault.began:.1f} s; errors from 1 s before to 10 s "
                f"after: {', '.join(f'{k} ×{n}' for k, n in around.most_common()) or 'none'}"
                + (f" — {fault.note}" if fault.note else "")
            )
        if status_500:
            passed = False
            print(f"  {status_500} answers were 500 (a bug: an outage must answer 503, see the server logs)")

    print(f"\n  {beside_exports(results, window)}")
    print("\n  per endpoint (measured window):")
    print(f"    {'endpoint':<44} {'count':>7} {'p50':>8} {'p99':>8} {'max':>8}  errors")
    for name, f in sorted(endpoints.items(), key=lambda kv: -kv[1].count):
        errors = ", ".join(f"{k} ×{n}" for k, n in f.errors.most_common()) or "-"
        print(
            f"    {name:<44} {f.count:>7,} {ms(f.p(50)):>8} {ms(f.p(99)):>8} "
            f"{ms(max(f.times, default=math.nan)):>8}  {errors}"
        )

    boards = results["dashboards"]
    delays = [d for b in boards for at, d in b["delays"] if window[0] <= at < window[1] + TAIL_S]
    print(
        f"\n  dashboards: {len(boards)} connected {sum(b['connects'] for b in boards)} times "
        f"(page reloads included), dropped {sum(b['drops'] for b in boards)}, failed to connect "
        f"{sum(b['failed_connects'] for b in boards)}; {sum(b['messages'] for b in boards):,} messages, "
        f"{sum(len(b['seen']) for b in boards):,} events; event → dashboard "
        f"p50 {ms(percentile(delays, 50))}, p99 {ms(percentile(delays, 99))}; "
        f"fill refreshes {sum(b['fill_refreshes'] for b in boards):,}"
    )
    print(
        f"  live events missed by a dashboard: {check['missed']:,} of {check['checked']:,} (event, "
        f"dashboard) pairs due after each one's last page load; duplicates on a socket "
        f"{check['duplicates']:,}"
    )
    passed &= check["missed"] == 0 and check["duplicates"] == 0

    lost, wrong = check["lost"], check["wrong_state"]
    print(
        f"\n  workflow writes answered 2xx: {check['ok']:,}; lost (no event in the database): "
        f"{len(lost)}; in another state than answered: {len(wrong)} -> {'pass' if not lost else 'FAIL'} "
        "(target: 0 lost)"
    )
    for w in (lost + wrong)[:5]:
        print(f"    {w}")
    if check["failed"]:
        print(
            f"  writes that failed to the client: {check['failed']}; of those applied all the same "
            f"(the client cannot know): {check['applied_anyway'] or 'none'}"
        )
    passed &= not lost

    print(f"\n  CPU {cpu.line()} (% of one core)")
    print(f"  {cpu.machine_line()}")
    if cpu.others is not None and cpu.others / cpu.wall > 0.2:
        print("  note: other programs were busy on this machine meanwhile: these figures are skewed")
    for server in servers:
        alive = server.process.poll() is None
        problems = server.problems()
        line = f"  {server.name}: {'running' if alive else f'EXITED with {server.process.returncode}'}"
        if problems:
            line += f"; its log has {len(problems)} distinct problems, e.g.:"
        print(line)
        for problem in problems[:4]:
            print(f"    {problem[:180]}")
        if faulty and not alive:
            passed = False
    return passed


# --- The driver --------------------------------------------------------------------------------


def run(
    options: argparse.Namespace,
    sizes: Sizes,
    tmp: Path,
    database_url: str,
    redis_url: str | None,
    prefix: str | None,
) -> bool:
    started = time.perf_counter()
    static = tmp / "static"
    shim = SETTINGS_SHIM.format(static=str(static))
    if options.db_pool:
        shim += POOL_SHIM.format(size=options.db_pool)
    (tmp / "load_settings.py").write_text(shim)
    (tmp / "collect_settings.py").write_text(COLLECT_SHIM)
    env = server_env(tmp, database_url, redis_url, prefix)

    world_path = tmp / "world.json"
    seed_env = {**env, "TASK_BACKEND": "immediate"}  # the seed's offer emails go out at once
    build = [sys.executable, __file__, "--build", str(world_path), *_size_args(sizes)]
    seconds = run_step("building the world", build, seed_env)
    world = json.loads(world_path.read_text())
    parts = world["seconds"]
    print(
        f"  world built in {seconds:.0f} s (migrate {parts['migrate']:.0f} s, demo {parts['demo']:.0f} s, "
        f"benchmark people {parts['bench']:.0f} s): {world['experts']:,} experts, deployments "
        f"{world['deployments']}, {world['events']:,} events"
    )
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    run_step("collectstatic", collect, {**env, "DJANGO_SETTINGS_MODULE": "collect_settings"})

    count = 1 if options.embedded else 2
    servers = [
        Server.start(
            f"daphne {n + 1}",
            port := free_port(),
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "deploy_tracker.asgi:application",
            ],
            env,
            tmp,
        )
        for n in range(count)
    ]
    worker = Server.start(
        "db_worker",
        0,
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.5"],
        env,
        tmp,
    )
    locust: subprocess.Popen[bytes] | None = None
    faults: list[Fault] = []
    try:
        for server in servers:
            server.wait_listening()
        hosts = [f"http://127.0.0.1:{s.port}" for s in servers]
        warm_up(hosts, world)
        out = tmp / "locust"
        out.mkdir()
        ramp = math.ceil(sizes.users / options.spawn_rate) + 3
        locust_env = {
            **os.environ,
            "LOAD_WORLD": str(world_path),
            "LOAD_HOSTS": ",".join(hosts),
            "LOAD_OUT": str(out),
            "LOAD_DURATION": str(sizes.duration),
        }
        args = [sys.executable, "-m", "locust", "-f", str(BENCH / "locustfile.py"), "--headless"]
        args += ["--users", str(sizes.users), "--spawn-rate", str(options.spawn_rate)]
        args += ["--run-time", f"{ramp + sizes.duration + TAIL_S}s", "--stop-timeout", "10"]
        args += ["--host", hosts[0], "--csv", str(out / "locust"), "--only-summary", "--loglevel", "WARNING"]
        args += ["--exit-code-on-error", "0"]
        setup_s = time.perf_counter() - started
        print(
            f"  {len(servers)} Daphne + db_worker up; {setup_s:.0f} s of setup; Locust: {sizes.users} users "
            f"at {options.spawn_rate}/s, then {sizes.duration} s measured + {TAIL_S} s of reads"
        )
        with (tmp / "locust.log").open("wb") as log:
            locust = subprocess.Popen(args, cwd=ROOT, env=locust_env, stdout=log, stderr=subprocess.STDOUT)
        spawned_file = out / "spawned"
        if not _wait(lambda: spawned_file.exists() or locust.poll() is not None, SPAWN_TIMEOUT_S):
            raise SystemExit(f"Locust did not start every user within {SPAWN_TIMEOUT_S:.0f} s")
        if not spawned_file.exists():
            raise SystemExit(f"Locust exited early:\n{(tmp / 'locust.log').read_text()[-3000:]}")
        spawned = float(spawned_file.read_text())
        window = (spawned, spawned + sizes.duration)

        postgres_url = options.postgres
        sources: dict[str, Callable[[], int | None]] = {s.name: (lambda p=s.process.pid: p) for s in servers}
        sources["db_worker"] = lambda: worker.process.pid
        sources["locust"] = lambda: locust.pid if locust is not None else None
        if not options.embedded:
            sources["postgres (whole server)"] = lambda: postmaster_pid(postgres_url)
            assert redis_url is not None
            sources["redis"] = lambda: redis_pid(redis_url)
        cpu = CpuMeter(sources, trees={"postgres (whole server)"})
        activity_before = None if options.embedded else database_activity(database_url)
        cpu.start()
        injector = None
        if options.faults:
            injector = threading.Thread(
                target=inject_faults, args=(spawned, sizes.duration, options.faults_dry_run, faults)
            )
            injector.start()
        time.sleep(max(0.0, window[1] - time.time()))
        cpu.stop()
        activity_after = None if options.embedded else database_activity(database_url)
        if injector is not None:
            injector.join()
        locust.wait(timeout=TAIL_S + 60)
        results = json.loads((out / "results.json").read_text())
        warnings = [
            line
            for line in (tmp / "locust.log").read_text(errors="replace").splitlines()
            if "CPU usage" in line or "Traceback" in line or "Exception" in line
        ]
        if warnings:
            print("  Locust said: " + " | ".join(dict.fromkeys(w.strip()[:160] for w in warnings[:5])))
        check_path = tmp / "check.json"
        if options.faults and not options.faults_dry_run and not _wait(_postgres_up, 60):
            raise SystemExit("PostgreSQL is not back: cannot check the records")
        check_args = [sys.executable, __file__, "--check", str(world_path), str(out / "results.json")]
        run_step("checking the records", [*check_args, str(check_path)], env)
        check = json.loads(check_path.read_text())
        passed = report(results, check, window, faults, cpu, [*servers, worker], options.faults)
        if activity_before and activity_after:
            delta = {k: activity_after[k] - activity_before[k] for k in activity_before}
            requests = sum(1 for sample in results["samples"] if window[0] <= sample[0] < window[1])
            print(
                f"  PostgreSQL, this database only, over the window: {delta['sessions']:,.0f} sessions "
                f"opened ({delta['sessions'] / max(requests, 1):.2f} per request or handshake), "
                f"{delta['active_s']:.1f} s running statements, {delta['commits']:,.0f} commits"
            )
        print(f"\n  whole run: {time.perf_counter() - started:.0f} s")
        return passed
    except BaseException:
        for server in [*servers, worker]:
            print(f"--- the end of {server.name}'s log:\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        if options.faults and not options.faults_dry_run:
            ensure_services()
        if locust is not None and locust.poll() is None:
            locust.terminate()
            locust.wait(timeout=30)
        for server in [*servers, worker]:
            server.stop()
        if options.keep:
            options.keep.mkdir(parents=True, exist_ok=True)
            for item in tmp.iterdir():
                if item.is_file() or item.name == "locust":
                    target = options.keep / item.name
                    if item.is_dir():
                        shutil.copytree(item, target, dirs_exist_ok=True)
                    else:
                        shutil.copy2(item, target)


def _size_args(sizes: Sizes) -> list[str]:
    return [
        "--responders", str(sizes.responders), "--commanders", str(sizes.commanders),
        "--finance", str(sizes.finance), "--duration", str(sizes.duration), "--roster", str(sizes.roster),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=90, help="seconds measured after every user started")
    parser.add_argument("--responders", type=int, default=300)
    parser.add_argument("--commanders", type=int, default=20)
    parser.add_argument("--finance", type=int, default=5)
    parser.add_argument("--roster", type=int, default=3_000, help="experts in the demo roster")
    parser.add_argument("--spawn-rate", type=int, default=50, help="users started per second")
    parser.add_argument("--embedded", action="store_true", help="SQLite + in-memory layer, one Daphne")
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server where you may create (and drop) a database",
    )
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/13", help="a Redis database of your own"
    )
    parser.add_argument("--faults", action="store_true", help="restart Redis and PostgreSQL during the load")
    parser.add_argument(
        "--faults-dry-run",
        action="store_true",
        help="with --faults: print the restarts instead of doing them",
    )
    parser.add_argument(
        "--db-pool",
        type=int,
        metavar="SIZE",
        help="what-if: psycopg's connection pool, at most SIZE per process (needs psycopg-pool)",
    )
    parser.add_argument("--keep", type=Path, help="copy the world, logs and Locust's CSV files here")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check", nargs=3, type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    sizes = Sizes(options.responders, options.commanders, options.finance, options.duration, options.roster)
    if options.build:
        build_world(options.build, sizes)
        return
    if options.check:
        check_world(*options.check)
        return
    if min(sizes.responders, sizes.commanders, sizes.finance, sizes.duration, options.spawn_rate) < 1:
        parser.error("--responders, --commanders, --finance, --duration and --spawn-rate must be at least 1")
    if options.faults and options.embedded:
        parser.error("--faults restarts PostgreSQL and Redis: it cannot run --embedded")
    if options.faults_dry_run and not options.faults:
        parser.error("--faults-dry-run goes with --faults")
    if options.db_pool is not None:
        if options.db_pool < 1 or options.embedded:
            parser.error("--db-pool needs PostgreSQL and a SIZE of at least 1")
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            parser.error("--db-pool needs psycopg's pool: .venv/bin/pip install psycopg-pool")
    engine = "SQLite + in-memory layer, 1 Daphne" if options.embedded else "PostgreSQL + Redis, 2 Daphne"
    print(
        f"load benchmark{' WITH FAULTS' if options.faults else ''}"
        f"{' (dry run: nothing restarted)' if options.faults_dry_run else ''}: "
        f"{sizes.responders} responders, {sizes.commanders} commanders, {sizes.finance} finance officers; "
        f"{engine}; {os.cpu_count()} cores; "
        f"load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory(prefix="deploy-tracker-load-") as name:
        tmp = Path(name)
        if options.embedded:
            passed = run(options, sizes, tmp, f"sqlite:///{tmp / 'load.sqlite3'}", None, None)
        else:
            with scratch_database(options.postgres) as database_url, own_redis(options.redis_url) as prefix:
                passed = run(options, sizes, tmp, database_url, options.redis_url, prefix)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
