"""Benchmark: live fan-out over WebSockets — a 500-offer burst and a steady trickle, beside a bare server.

Usage: .venv/bin/python bench/fanout.py [--mode memory|redis|both] [--quick]
           [--responders 950] [--dashboards 50] [--offers 500] [--seconds 20]
           [--database-url URL] [--redis-url redis://127.0.0.1:6379/15] [--client-processes 1]

What it measures (the goals of the live-updates issue):

* Burst: responders on /ws/me/ and dashboards on /ws/incidents/<id>/ are connected (1,000 in all)
  when a commander confirms 500 offers with one POST to /api/incidents/<id>/offers/. Every
  responder with an offer must receive exactly their event, the others nothing, and every
  dashboard all 500. A client's latency is the moment it holds everything meant for it minus the
  moment the POST was sent. Target: p99 ≤ 1 s, nothing lost.
* Steady: 10 POSTs a second, one offer each, paced (not back to back) for --seconds; each reaches
  every dashboard and its responder. Latency per (event, client) from the sending of that POST.
  Target: p99 ≤ 100 ms, nothing lost.

Both run on the in-memory channel layer (one Daphne process) and on Redis (two Daphne processes,
clients split evenly between them, the POSTs to the first). Then a bare `websockets` server
written here (`--bare-server`, its own process) sends, on a trigger, the very texts the Channels
run delivered to the same clients: the ceiling of this machine and of the client harness. The
summary table gives Channels ÷ bare for p99 and for deliveries/s.

How: a throw-away database (a temporary SQLite file unless --database-url names one you may wipe)
is migrated, wiped and filled in a subprocess before each mode. Servers run in production mode
(DEBUG off, email to memory, background tasks queued for a `db_worker` process beside them). Clients run in a
separate process (`--clients`; the same harness for Channels and bare) and stamp each message
with the wall clock on arrival. Latency counts from the click, an upper bound of "after commit";
the arrival of the HTTP response (after the commit and the offer emails) is shown beside it.
The CPU each process used during a scenario shows where the time goes, and the CPU other
programs took meanwhile flags a run that a busy machine skewed. Losses name the events missed.
Redis mode uses database 15 (--redis-url), refuses one that holds channel-layer keys already,
and deletes only those keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parent.parent
BURST_TARGET_S = 1.0
STEADY_TARGET_S = 0.100
STEADY_RATE = 10  # POSTs per second in the steady scenario
START_TIMEOUT_S = 60.0
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process
QUIET_S = 10.0  # a scenario ends when nothing more arrives for this long
SCENARIO_CAP_S = 120.0
GRACE_S = 0.5  # after the last expected message, so that a stray extra one is seen too

Arrivals = list[list[tuple[float, str]]]  # per client connection: (wall-clock time, message text)


# --- The database (runs in a subprocess) -----------------------------------------------------


def build_world(out: Path, responders: int, dashboards: int, offers: int, steady: int) -> None:
    """Migrate and wipe the database, then write one incident ready for the benchmark.

    One facility and one request; a commander, `dashboards` viewers and `responders` experts with
    logins, all with API tokens; `offers` proposals for the burst (the first responders) and
    `steady` more for the steady scenario (the next responders, then experts without a login).
    Writes what the driver needs (tokens and deployment ids) to `out` as JSON.
    """
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from incidents import workflow
    from incidents.models import Facility, Incident, IncidentMembership, RoleRequest
    from resources.models import Agency, Expert, Qualification

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    today = timezone.localdate()
    agency = Agency.objects.create(code="bench", name="Bench agency")
    nurse = Qualification.objects.create(code="RN", name="Registered Nurse")
    incident = Incident.objects.create(number="BENCH-FANOUT", name="Fan-out benchmark", start=today)
    facility = Facility.objects.create(
        incident=incident, code="BENCH-01", name="Bench hospital", state="WA", latitude=47.6, longitude=-122.3
    )
    start = today + timedelta(days=3)
    request = RoleRequest.objects.create(
        facility=facility,
        qualification=nurse,
        quantity=offers + steady,
        start=start,
        end=start + timedelta(days=incident.max_deployment_days - 1),
    )
    unusable = make_password(None)
    names = ["commander", *(f"dashboard-{i}" for i in range(dashboards))]
    names += [f"responder-{i}" for i in range(responders)]
    users = User.objects.bulk_create(User(username=f"bench-{name}", password=unusable) for name in names)
    tokens = Token.objects.bulk_create(Token(user=user, key=Token.generate_key()) for user in users)
    IncidentMembership.objects.bulk_create(
        IncidentMembership(
            user=user,
            incident=incident,
            role=IncidentMembership.Role.COMMANDER if i == 0 else IncidentMembership.Role.VIEWER,
        )
        for i, user in enumerate(users[: 1 + dashboards])
    )
    logins = users[1 + dashboards :]
    experts = Expert.objects.bulk_create(
        Expert(
            email=f"bench-expert-{i}@example.org",
            first_name=f"Pat{i}",
            last_name="Bench",
            agency=agency,
            latitude=47.5,
            longitude=-122.2,
            max_travel_km=400,
            hourly_rate=Decimal("50.00"),
            user=logins[i] if i < len(logins) else None,
        )
        for i in range(max(responders, offers + steady))
    )
    with transaction.atomic():
        created, _ = workflow.replace_proposals(
            incident,
            [
                workflow.NewProposal(
                    request=request, start=start, expert_id=e.pk, distance_km=10.0, why="bench"
                )
                for e in experts[: offers + steady]
            ],
            by=None,
        )
    deployment_of = {d.expert_id: d.pk for d in created}
    world = {
        "incident": incident.pk,
        "commander": tokens[0].key,
        "dashboards": [t.key for t in tokens[1 : 1 + dashboards]],
        "responders": [
            {"token": t.key, "deployment": deployment_of.get(e.pk)}
            for t, e in zip(tokens[1 + dashboards :], experts, strict=False)
        ],
        "burst": [d.pk for d in created[:offers]],
        "steady": [d.pk for d in created[offers:]],
    }
    out.write_text(json.dumps(world))


@dataclass(frozen=True)
class World:
    """What the driver knows of the benchmark incident (see `build_world`)."""

    incident: int
    commander: str
    dashboards: list[str]
    responder_tokens: list[str]
    responder_deployment: list[int | None]  # each responder's one proposal, if any
    burst: list[int]
    steady: list[int]

    @classmethod
    def load(cls, path: Path) -> World:
        raw = json.loads(path.read_text())
        return cls(
            incident=raw["incident"],
            commander=raw["commander"],
            dashboards=raw["dashboards"],
            responder_tokens=[r["token"] for r in raw["responders"]],
            responder_deployment=[r["deployment"] for r in raw["responders"]],
            burst=raw["burst"],
            steady=raw["steady"],
        )

    @property
    def tokens(self) -> list[str]:
        """Client connections in a fixed order: the dashboards, then the responders."""
        return [*self.dashboards, *self.responder_tokens]

    def paths(self) -> list[str]:
        dashboard = f"/ws/incidents/{self.incident}/"
        return [dashboard] * len(self.dashboards) + ["/ws/me/"] * len(self.responder_tokens)

    def expected(self, deployments: Iterable[int]) -> dict[int, set[int]]:
        """Which client (by connection index) must receive which of these deployments' events."""
        wanted = set(deployments)
        expected: dict[int, set[int]] = {i: set(wanted) for i in range(len(self.dashboards))}
        for r, deployment in enumerate(self.responder_deployment):
            if deployment in wanted:
                expected[len(self.dashboards) + r] = {deployment}
        return expected


# --- The client harness (`--clients SPEC`, its own process) ----------------------------------


async def run_clients(spec_path: Path) -> None:
    """Hold the connections in SPEC and record every message with its arrival time.

    Talks to the driver in JSON lines: prints {"ready": ...} once every connection is open, then
    answers the commands on stdin — mark (forget what arrived so far), count, dump (write the
    arrivals to a file), quit.
    """
    spec = json.loads(spec_path.read_text())
    targets: list[list[str]] = spec["connections"]  # [url, token]
    inbox: Arrivals = [[] for _ in targets]
    sockets: list[ClientConnection | None] = [None] * len(targets)
    closed: dict[int, str] = {}
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(i: int) -> None:
        url, token = targets[i]
        failure: Exception | None = None
        for attempt in range(5):
            try:
                async with gate:
                    # Daphne never negotiates permessage-deflate; neither may the bare server.
                    sockets[i] = await connect(
                        url,
                        additional_headers={"Authorization": f"Token {token}"},
                        compression=None,
                        max_size=None,
                        ping_interval=None,
                        open_timeout=30,
                    )
                return
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                failure = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        closed[i] = f"could not connect: {failure}"

    async def read(i: int, ws: ClientConnection) -> None:
        box = inbox[i]
        try:
            async for text in ws:
                box.append((time.time(), str(text)))
        except ConnectionClosed:
            pass
        closed[i] = f"closed with code {ws.close_code}"

    await asyncio.gather(*(open_one(i) for i in range(len(targets))))
    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets) if ws is not None]
    # Channels accepts only after joining the group; a refusal is an accept and an immediate close.
    await asyncio.sleep(1.0)
    say({"ready": len(readers) - len(closed), "closed": _summarise(closed)})

    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    while line := await commands.readline():
        command = json.loads(line)
        match command["do"]:
            case "mark":
                for box in inbox:
                    box.clear()
                say({"ok": True})
            case "count":
                say({"messages": sum(len(box) for box in inbox)})
            case "dump":
                Path(command["path"]).write_text(
                    json.dumps({"arrivals": inbox, "closed": _summarise(closed)})
                )
                say({"ok": True})
            case "quit":
                break
    await asyncio.gather(*(ws.close() for ws in sockets if ws is not None))
    for task in readers:
        task.cancel()


def _summarise(closed: dict[int, str]) -> dict[str, int]:
    return dict(Counter(closed.values()))


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# --- The bare server (`--bare-server PORT --plan FILE`, its own process) ---------------------


async def run_bare_server(port: int, plan_path: Path) -> None:
    """A plain `websockets` broadcast server: what this machine does without Django and Channels.

    Clients connect on any path and are known by their token. A connection on /control sends
    "burst" or "tick <i>"; the server then sends that step of the plan (lists of [text, tokens])
    with `websockets.broadcast`, which frames each text once per client without waiting, and
    answers "sent".
    """
    plan = json.loads(plan_path.read_text())
    by_token: dict[str, ServerConnection] = {}

    def send(step: list[list[Any]]) -> None:
        for text, tokens in step:
            broadcast([by_token[t] for t in tokens if t in by_token], text)

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        if ws.request.path == "/control":
            async for command in ws:
                if command == "burst":
                    send(plan["burst"])
                else:
                    send(plan["steady"][int(str(command).split()[1])])
                await ws.send("sent")
            return
        token = ws.request.headers.get("Authorization", "").removeprefix("Token ")
        by_token[token] = ws
        try:
            await ws.wait_closed()
        finally:
            by_token.pop(token, None)

    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None, ping_interval=None):
        await asyncio.get_running_loop().create_future()


# --- Processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server process on a port, with its output in a log file."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, port: int, args: Sequence[str], env: dict[str, str], logs: Path) -> Server:
        log = logs / f"{name.replace(' ', '-')}-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return cls(name, port, process, log)

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with code {self.process.returncode}:\n{self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(
            f"{self.name} did not listen on port {self.port} within {START_TIMEOUT_S:.0f} s:\n{self.tail()}"
        )

    def tail(self, lines: int = 40) -> str:
        """The end of the log without Daphne's access lines ("127.0.0.1:5000 - - [...] ...")."""
        kept = [line for line in self.log.read_text(errors="replace").splitlines() if " - - [" not in line]
        return "\n".join(kept[-lines:])

    def problems(self) -> list[str]:
        """The log's tracebacks' last lines and logged errors, each once: what went wrong inside."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if " - - [" not in line]
        found = [
            line.strip()
            for i, line in enumerate(lines)
            if (line and not line[0].isspace() and i > 0 and lines[i - 1].startswith("    "))
            or "ERROR" in line
            or "could not" in line
        ]
        return list(dict.fromkeys(found))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Clients:
    """The client processes: one spec each, commands over stdin, answers over stdout."""

    def __init__(
        self, processes: list[asyncio.subprocess.Process], indices: list[list[int]], tmp: Path
    ) -> None:
        self.processes = processes
        self.indices = indices  # which global connection each process's connections are
        self.tmp = tmp
        self.total = sum(len(part) for part in indices)

    @classmethod
    async def start(cls, urls: list[str], tokens: list[str], count: int, tmp: Path) -> Clients:
        parts = [list(range(p, len(urls), count)) for p in range(count)]
        processes = []
        for p, part in enumerate(parts):
            spec = tmp / f"clients-{p}.json"
            spec.write_text(json.dumps({"connections": [[urls[i], tokens[i]] for i in part]}))
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--clients",
                    str(spec),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    limit=1 << 20,
                )
            )
        clients = cls(processes, parts, tmp)
        started = time.perf_counter()
        try:
            ready = await asyncio.wait_for(
                asyncio.gather(*(clients._read(p) for p in processes)), START_TIMEOUT_S * 3
            )
            refused = {reason: n for answer in ready for reason, n in answer["closed"].items()}
            if refused:
                raise SystemExit(f"not every client got in (connections: reason): {refused}")
        except BaseException:
            await clients.stop()
            raise
        print(f"  {clients.total:,} clients connected in {time.perf_counter() - started:.1f} s")
        return clients

    async def _read(self, process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise SystemExit(f"a client process exited (code {await process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ask(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write((json.dumps(command) + "\n").encode())
            await process.stdin.drain()
        return list(await asyncio.gather(*(self._read(p) for p in self.processes)))

    async def mark(self) -> None:
        await self.ask({"do": "mark"})

    async def count(self) -> int:
        return sum(answer["messages"] for answer in await self.ask({"do": "count"}))

    async def dump(self) -> tuple[Arrivals, dict[str, int]]:
        """What arrived since the mark, per connection, and the connections lost since the start."""
        arrivals: Arrivals = [[] for _ in range(self.total)]
        closed: dict[str, int] = defaultdict(int)
        for p, process in enumerate(self.processes):
            path = self.tmp / f"dump-{p}.json"
            assert process.stdin is not None
            process.stdin.write((json.dumps({"do": "dump", "path": str(path)}) + "\n").encode())
            await process.stdin.drain()
            await self._read(process)
            dumped = json.loads(path.read_text())
            for i, box in zip(self.indices[p], dumped["arrivals"], strict=True):
                arrivals[i] = [(t, text) for t, text in box]
            for reason, n in dumped["closed"].items():
                closed[reason] += n
            path.unlink()
        return arrivals, dict(closed)

    async def wait_for(self, expected_messages: int, busy: asyncio.Future[Any] | None = None) -> bool:
        """Until the expected number of messages arrived (True), or nothing came for QUIET_S
        seconds or SCENARIO_CAP_S passed (False). `busy` (the requests still being sent) keeps
        the wait going while it runs.
        """
        last, changed, started = -1, time.monotonic(), time.monotonic()
        while time.monotonic() - started < SCENARIO_CAP_S:
            received = await self.count()
            now = time.monotonic()
            if received != last:
                last, changed = received, now
            running = busy is not None and not busy.done()
            if not running and received >= expected_messages:
                return True
            if not running and now - changed > QUIET_S:
                return False
            await asyncio.sleep(0.05)
        return False

    def pids(self) -> dict[str, int]:
        if len(self.processes) == 1:
            return {"clients": self.processes[0].pid}
        return {f"clients {p + 1}": process.pid for p, process in enumerate(self.processes)}

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(ConnectionError):
                    process.stdin.write(b'{"do": "quit"}\n')
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes of this machine have used so far (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """CPU seconds each named process used between `start` and `stop` (clock-tick resolution),
    and what the rest of the machine used meanwhile: another busy program skews the figures."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float | None] = {}
        self.machine_before: float | None = None
        self.began = 0.0
        self.wall = 0.0
        self.used: dict[str, float] = {}
        self.others: float | None = None

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_seconds()
        self.began = time.monotonic()

    def stop(self) -> None:
        self.wall = max(time.monotonic() - self.began, 1e-9)
        for name, pid in self.pids.items():
            before, after = self.before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                self.used[name] = after - before
        machine = machine_busy_seconds()
        if machine is not None and self.machine_before is not None:
            self.others = max(0.0, machine - self.machine_before - sum(self.used.values()))

    def share(self, seconds: float) -> str:
        return f"{seconds:.2f} s ({100 * seconds / self.wall:.0f} %)"

    def line(self) -> str:
        if not self.used:
            return "n/a (no /proc)"
        shares = [f"{name} {self.share(used)}" for name, used in self.used.items()]
        if self.others is not None:
            shares.append(f"other programs {self.share(self.others)}")
        return f"over {self.wall:.2f} s: {', '.join(shares)}"

    @property
    def noisy(self) -> bool:
        """Other programs took more than a fifth of a core: the figures are not this app's alone."""
        return self.others is not None and self.others / self.wall > 0.2


# --- Triggers --------------------------------------------------------------------------------


def post_offers(url: str, token: str, body: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """POST to the offers endpoint; return (sent at, response at, answer), wall clock."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        # Production mode redirects plain HTTP to HTTPS; a TLS proxy in front says it was HTTPS.
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
        },
    )
    sent = time.time()
    try:
        with urllib.request.urlopen(request, timeout=SCENARIO_CAP_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"POST {url} answered {exc.code}: {exc.read()[:500]!r}") from None
    return sent, time.time(), answer


class Trigger(Protocol):
    """What starts a scenario; each call returns (sent at, answered at), wall clock."""

    async def burst(self) -> tuple[float, float]: ...

    async def tick(self, i: int) -> tuple[float, float]: ...


class ChannelsTrigger:
    """The commander's POSTs to the first Daphne, each from a thread so that they can overlap."""

    def __init__(self, base: str, world: World) -> None:
        self.url = f"{base}/api/incidents/{world.incident}/offers/"
        self.world = world
        self.pool = ThreadPoolExecutor(max_workers=32)

    async def _post(self, url: str, deployments: list[int]) -> tuple[float, float, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        body = {"deployments": deployments}
        return await loop.run_in_executor(self.pool, post_offers, url, self.world.commander, body)

    async def _offer(self, deployments: list[int]) -> tuple[float, float]:
        sent, answered, answer = await self._post(self.url, deployments)
        if sorted(answer["offered"]) != sorted(deployments):
            raise SystemExit(f"the POST did not offer all it was asked to: skipped {answer['skipped'][:3]}")
        return sent, answered

    async def warm_up(self, base: str) -> None:
        """A POST that offers nothing (no such deployment), so that the measured ones pay no
        first-request cost (imports, URL resolution, the first connection to the database)."""
        await self._post(f"{base}/api/incidents/{self.world.incident}/offers/", [2**31 - 1])

    async def burst(self) -> tuple[float, float]:
        return await self._offer(self.world.burst)

    async def tick(self, i: int) -> tuple[float, float]:
        return await self._offer([self.world.steady[i]])

    def close(self) -> None:
        self.pool.shutdown()


class BareTrigger:
    """Commands to the bare server over its /control connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = asyncio.Lock()
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await connect(f"ws://127.0.0.1:{self.port}/control", compression=None, ping_interval=None)

    async def _send(self, command: str) -> tuple[float, float]:
        assert self.ws is not None
        async with self.lock:
            sent = time.time()
            await self.ws.send(command)
            await self.ws.recv()
            return sent, time.time()

    async def burst(self) -> tuple[float, float]:
        return await self._send("burst")

    async def tick(self, i: int) -> tuple[float, float]:
        return await self._send(f"tick {i}")

    async def aclose(self) -> None:
        if self.ws is not None:
            await self.ws.close()


# --- Results ---------------------------------------------------------------------------------

LAYERS = {
    "memory": "in-memory layer, 1 Daphne",
    "redis": "Redis layer, 2 Daphnes",
    "bare": "bare websockets",
}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN of nothing."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    """One scenario on one server: latencies, throughput, losses and the CPU it took."""

    mode: str
    scenario: str
    target: float
    latencies: list[float]  # from the click
    after_response: list[float]  # from the response to the click (negative: the message came first)
    response_s: list[float]  # click to response, per request
    messages: int
    events: int
    span: float  # first click to last arrival
    first_s: float  # first click to first arrival
    expected: int  # (client, event) pairs
    lost: int
    unexpected: int
    cpu: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def max(self) -> float:
        return max(self.latencies, default=math.nan)

    @property
    def deliveries_per_s(self) -> float:
        return self.messages / self.span if self.span > 0 else math.nan

    @property
    def events_per_s(self) -> float:
        return self.events / self.span if self.span > 0 else math.nan

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.unexpected == 0 and self.p99 <= self.target


def analyse(
    mode: str,
    scenario: str,
    arrivals: Arrivals,
    expected: dict[int, set[int]],
    clicks: dict[int, tuple[float, float]],
) -> Result:
    """Match what arrived with what should have, per client and deployment.

    `clicks` maps each deployment to (sent at, answered at) of the request that offered it. In
    the burst a client's latency is when the last event meant for it arrived (a dashboard needs
    all 500); in the steady scenario every (client, event) pair is one sample.
    """
    per_client = scenario == "burst"
    latencies: list[float] = []
    after_response: list[float] = []
    messages = events = unexpected = lost = 0
    missed: Counter[int] = Counter()  # deployment -> clients that never got its event
    last_arrival, first_arrival = 0.0, math.inf
    for i, box in enumerate(arrivals):
        want = expected.get(i, set())
        first: dict[int, float] = {}
        for at, text in box:
            body = json.loads(text)
            if "events" not in body:
                continue  # job progress, not part of this test
            messages += 1
            last_arrival, first_arrival = max(last_arrival, at), min(first_arrival, at)
            for event in body["events"]:
                events += 1
                deployment = event["data"].get("deployment")
                if deployment not in want or deployment in first:
                    unexpected += 1
                else:
                    first[deployment] = at
        missing = want - first.keys()
        lost += len(missing)
        missed.update(missing)
        if per_client and want and len(first) == len(want):
            done, latest = max((at, d) for d, at in first.items())
            latencies.append(done - clicks[latest][0])
            after_response.append(done - clicks[latest][1])
        elif not per_client:
            latencies += [at - clicks[d][0] for d, at in first.items()]
            after_response += [at - clicks[d][1] for d, at in first.items()]
    start = min(sent for sent, _ in clicks.values())
    result = Result(
        mode=mode,
        scenario=scenario,
        target=BURST_TARGET_S if per_client else STEADY_TARGET_S,
        latencies=latencies,
        after_response=after_response,
        response_s=[answered - sent for sent, answered in clicks.values()],
        messages=messages,
        events=events,
        span=last_arrival - start if last_arrival else 0.0,
        first_s=first_arrival - start,
        expected=sum(len(want) for want in expected.values()),
        lost=lost,
        unexpected=unexpected,
    )
    if missed:
        audience = Counter(d for want in expected.values() for d in want)
        worst = ", ".join(f"#{d} by {n} of {audience[d]}" for d, n in missed.most_common(5))
        result.notes.append(f"events missed, by how many of their clients: {worst}")
    return result


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:,.0f} ms"


def report(result: Result, sizes: Sizes) -> None:
    """The scenario's figures, as they come; the summary table repeats the main ones."""
    if result.scenario == "burst":
        print(
            f"  burst: {sizes.offers:,} offers in one action, {sizes.responders:,} responders "
            f"and {sizes.dashboards} dashboards connected"
        )
    else:
        print(
            f"  steady: {STEADY_RATE} offers/s for {sizes.seconds} s, each to "
            f"{sizes.dashboards} dashboards and its responder"
        )
    print(
        f"    latency from the click: p50 {ms(result.p50)}, p99 {ms(result.p99)}, max {ms(result.max)} "
        f"({len(result.latencies):,} samples); first message {ms(result.first_s)} after the click"
    )
    if result.mode != "bare":
        after = percentile(result.after_response, 99)
        print(
            f"    HTTP response (after the commit and the offer emails): median "
            f"{ms(percentile(result.response_s, 50))}, max {ms(max(result.response_s))} after the click; "
            f"p99 from the response {ms(after)}" + (" (messages arrive before it)" if after < 0 else "")
        )
    print(
        f"    throughput: {result.deliveries_per_s:,.0f} deliveries/s, {result.events_per_s:,.0f} events/s "
        f"({result.messages:,} messages, {result.events:,} events in {result.span:.2f} s)"
    )
    verdict = "PASS" if result.passed else "FAIL"
    print(
        f"    lost {result.lost:,} of {result.expected:,} (client, event) pairs, {result.unexpected:,} "
        f"unexpected or duplicate -> {verdict} (p99 ≤ {ms(result.target)}, none lost)"
    )
    print(f"    CPU {result.cpu} (% of one core)")
    for note in result.notes:
        print(f"    note: {note}")


# --- Scenarios -------------------------------------------------------------------------------


async def burst(
    mode: str, clients: Clients, trigger: Trigger, world: World, cpu: CpuWatch
) -> tuple[Result, Arrivals]:
    """One action offers every burst proposal: one message to each dashboard and responder."""
    expected = world.expected(world.burst)
    await clients.mark()
    cpu.start()
    click = await trigger.burst()
    complete = await clients.wait_for(len(expected))
    clicks = dict.fromkeys(world.burst, click)
    return await collect(mode, "burst", clients, expected, clicks, cpu, complete)


async def steady(
    mode: str, clients: Clients, trigger: Trigger, world: World, ticks: int, cpu: CpuWatch
) -> tuple[Result, Arrivals]:
    """`ticks` one-offer actions, STEADY_RATE a second on a fixed schedule: a slow answer does
    not delay the next request (an open-loop load, as from a real commander and their peers)."""
    expected = world.expected(world.steady[:ticks])
    clicks: dict[int, tuple[float, float]] = {}

    async def one(i: int) -> None:
        clicks[world.steady[i]] = await trigger.tick(i)

    async def paced() -> None:
        begin = time.monotonic()
        pending = []
        for i in range(ticks):
            await asyncio.sleep(max(0.0, begin + i / STEADY_RATE - time.monotonic()))
            pending.append(asyncio.create_task(one(i)))
        await asyncio.gather(*pending)

    await clients.mark()
    cpu.start()
    sending = asyncio.ensure_future(paced())
    complete = await clients.wait_for(sum(len(want) for want in expected.values()), busy=sending)
    await sending
    return await collect(mode, "steady", clients, expected, clicks, cpu, complete)


async def collect(
    mode: str,
    scenario: str,
    clients: Clients,
    expected: dict[int, set[int]],
    clicks: dict[int, tuple[float, float]],
    cpu: CpuWatch,
    complete: bool,
) -> tuple[Result, Arrivals]:
    cpu.stop()
    await asyncio.sleep(GRACE_S)
    arrivals, closed = await clients.dump()
    result = analyse(mode, scenario, arrivals, expected, clicks)
    result.cpu = cpu.line()
    if not complete:
        result.notes.append(
            f"stopped waiting when nothing had come for {QUIET_S:.0f} s: what was missing counts as lost"
        )
    if cpu.noisy:
        result.notes.append("other programs were busy on this machine meanwhile: these figures are skewed")
    if closed:
        result.notes.append(f"connections lost so far: {closed}")
    return result, arrivals


# --- The bare server's plan: the same texts to the same clients ------------------------------


@dataclass
class Delivered:
    """What a Channels scenario delivered: per client, each deployment's message text."""

    carried: list[dict[int, str]]  # per client: deployment id -> the text that brought its event
    events: dict[int, dict[str, Any]]  # deployment id -> its event, as any client received it

    @classmethod
    def of(cls, arrivals: Arrivals) -> Delivered:
        carried: list[dict[int, str]] = []
        events: dict[int, dict[str, Any]] = {}
        for box in arrivals:
            mine: dict[int, str] = {}
            for _, text in box:
                for event in json.loads(text).get("events", []):
                    mine.setdefault(event["data"].get("deployment"), text)
                    events.setdefault(event["data"].get("deployment"), event)
            carried.append(mine)
        return cls(carried, events)

    def step(self, expected: dict[int, set[int]], tokens: list[str]) -> list[list[Any]]:
        """The texts for the expected clients, grouped by text: [[text, [tokens]], ...].

        A client that missed an event in the Channels run gets it in a message of its own, so
        the bare server is never spared a delivery that Channels lost.
        """
        groups: dict[str, list[str]] = defaultdict(list)
        for i, want in expected.items():
            mine = self.carried[i]
            texts = list(dict.fromkeys(mine[d] for d in sorted(want) if d in mine))
            if missing := sorted(want - mine.keys()):
                if unknown := [d for d in missing if d not in self.events]:
                    raise SystemExit(f"no client received deployment {unknown[0]}: nothing to replay")
                texts.append(json.dumps({"events": [self.events[d] for d in missing]}))
            for text in texts:
                groups[text].append(tokens[i])
        return [[text, group] for text, group in groups.items()]


def write_plan(
    path: Path, world: World, burst_arrivals: Arrivals, steady_arrivals: Arrivals, ticks: int
) -> None:
    tokens = world.tokens
    burst, steady = Delivered.of(burst_arrivals), Delivered.of(steady_arrivals)
    plan = {
        "burst": burst.step(world.expected(world.burst), tokens),
        "steady": [steady.step(world.expected([d]), tokens) for d in world.steady[:ticks]],
    }
    path.write_text(json.dumps(plan))


# --- The driver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big a run is: clients, the burst, and the length of the steady scenario."""

    responders: int
    dashboards: int
    offers: int
    seconds: int

    @property
    def ticks(self) -> int:
        return self.seconds * STEADY_RATE


def server_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    """Production mode on the benchmark database, with the in-memory or the Redis layer."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deploy_tracker.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "EMAIL_URL": "locmem://",  # the cheapest backend the settings accept: mail kept in memory
        # As in production: the offer emails of a confirmation are a job for the worker
        # (`manage.py db_worker`), not work for the process that fans the events out.
        "TASK_BACKEND": "database",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("SQLITE_PATH", None)
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def build(database_url: str, sizes: Sizes, tmp: Path) -> World:
    """`build_world` in a subprocess whose environment points at the benchmark database."""
    out = tmp / "world.json"
    args = [__file__, "--build", str(out), "--responders", str(sizes.responders)]
    args += ["--dashboards", str(sizes.dashboards), "--offers", str(sizes.offers)]
    args += ["--seconds", str(sizes.seconds)]
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=server_env(database_url, None), check=True)
    print(f"  database built in {time.perf_counter() - started:.1f} s")
    return World.load(out)


def redis_check(url: str) -> int | None:
    """Fail clearly unless Redis answers and its database holds no channel-layer keys of another
    user; return the server's pid (to watch its CPU) when it runs on this machine."""
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SystemExit(
            f"Redis at {url} is not reachable ({exc}); start it or choose --mode memory."
        ) from None
    if next(client.scan_iter(match="asgi*", count=1000), None) is not None:
        raise SystemExit(
            f"{url} already holds channel-layer keys (asgi*); pass a --redis-url with a free database."
        )
    pid = int(client.info("server").get("process_id", 0))
    return pid if pid and Path(f"/proc/{pid}").exists() else None


def redis_cleanup(url: str) -> None:
    """Delete the channel layer's keys (prefix asgi) that this run left behind, nothing else."""
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match="asgi*", count=1000))
    if keys:
        client.delete(*keys)


def daphne(name: str, env: dict[str, str], tmp: Path) -> Server:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "deploy_tracker.asgi:application",
    ]
    return Server.start(name, port, args, env, tmp)


async def channels_mode(
    mode: str, options: argparse.Namespace, sizes: Sizes, tmp: Path, redis_pid: int | None
) -> tuple[list[Result], World, Arrivals, Arrivals]:
    """Build the database, start Daphne (one process, or two on Redis), run both scenarios."""
    redis_url = options.redis_url if mode == "redis" else None
    print(f"\n== {LAYERS[mode]}")
    world = build(options.database_url, sizes, tmp)
    env = server_env(options.database_url, redis_url)
    servers = [daphne(f"daphne {n + 1}", env, tmp) for n in range(2 if redis_url else 1)]
    worker = Server.start(
        "db_worker",
        0,
        [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2"],
        env,
        tmp,
    )
    clients: Clients | None = None
    trigger = ChannelsTrigger(f"http://127.0.0.1:{servers[0].port}", world)
    try:
        for server in servers:
            server.wait_listening()
            await trigger.warm_up(f"http://127.0.0.1:{server.port}")
        urls = [
            f"ws://127.0.0.1:{servers[i % len(servers)].port}{path}" for i, path in enumerate(world.paths())
        ]
        clients = await Clients.start(urls, world.tokens, options.client_processes, tmp)
        pids = {(s.name if len(servers) > 1 else "daphne"): s.process.pid for s in servers}
        pids |= clients.pids() | {"driver": os.getpid(), "worker": worker.process.pid}
        if redis_url and redis_pid:
            pids["redis"] = redis_pid
        first, burst_arrivals = await burst(mode, clients, trigger, world, CpuWatch(pids))
        report(first, sizes)
        await asyncio.sleep(1.0)
        second, steady_arrivals = await steady(mode, clients, trigger, world, sizes.ticks, CpuWatch(pids))
        report(second, sizes)
        for server in servers:
            if problems := server.problems():
                print(f"  {server.name}'s log has {len(problems)} distinct problems, e.g.:")
                for line in problems[:5]:
                    print(f"    {line[:200]}")
        return [first, second], world, burst_arrivals, steady_arrivals
    except BaseException:
        for server in servers:
            print(f"--- the end of {server.name}'s log:\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        if clients is not None:
            await clients.stop()
        trigger.close()
        for server in [*servers, worker]:
            server.stop()
        if redis_url:
            redis_cleanup(redis_url)


async def bare_mode(
    replay: tuple[World, Arrivals, Arrivals], options: argparse.Namespace, sizes: Sizes, tmp: Path
) -> list[Result]:
    """Start the bare server with the texts a Channels run delivered; run both scenarios on it."""
    world, burst_arrivals, steady_arrivals = replay
    print(f"\n== {LAYERS['bare']}: the same texts to the same clients")
    plan = tmp / "plan.json"
    write_plan(plan, world, burst_arrivals, steady_arrivals, sizes.ticks)
    port = free_port()
    args = [sys.executable, __file__, "--bare-server", str(port), "--plan", str(plan)]
    server = Server.start("bare server", port, args, dict(os.environ), tmp)
    clients: Clients | None = None
    trigger = BareTrigger(port)
    try:
        server.wait_listening()
        await trigger.open()
        urls = [f"ws://127.0.0.1:{port}{path}" for path in world.paths()]
        clients = await Clients.start(urls, world.tokens, options.client_processes, tmp)
        pids = {"bare server": server.process.pid} | clients.pids() | {"driver": os.getpid()}
        first, _ = await burst("bare", clients, trigger, world, CpuWatch(pids))
        report(first, sizes)
        await asyncio.sleep(1.0)
        second, _ = await steady("bare", clients, trigger, world, sizes.ticks, CpuWatch(pids))
        report(second, sizes)
        return [first, second]
    finally:
        if clients is not None:
            await clients.stop()
        await trigger.aclose()
        server.stop()


def summary(results: list[Result]) -> None:
    """One Markdown table: every scenario on every server, and Channels ÷ bare."""
    bare = {r.scenario: r for r in results if r.mode == "bare"}
    print(
        "\n| server | scenario | p50 | p99 | max | deliveries/s | events/s | lost | target | result "
        "| p99 ÷ bare | deliveries/s ÷ bare |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for r in results:
        base = bare.get(r.scenario) if r.mode != "bare" else None
        p99_ratio = f"{r.p99 / base.p99:,.1f}×" if base and base.p99 > 0 else "—"
        rate_ratio = f"{r.deliveries_per_s / base.deliveries_per_s:.2f}×" if base else "—"
        print(
            f"| {LAYERS[r.mode]} | {r.scenario} | {ms(r.p50)} | {ms(r.p99)} | {ms(r.max)} "
            f"| {r.deliveries_per_s:,.0f} | {r.events_per_s:,.0f} | {r.lost:,} | p99 ≤ {ms(r.target)} "
            f"| {'pass' if r.passed else 'FAIL'} | {p99_ratio} | {rate_ratio} |"
        )


async def drive(options: argparse.Namespace, sizes: Sizes) -> None:
    started = time.perf_counter()
    modes = ["memory", "redis"] if options.mode == "both" else [options.mode]
    redis_pid = redis_check(options.redis_url) if "redis" in modes else None
    database = urlsplit(options.database_url).scheme if options.database_url else "sqlite (temporary file)"
    print(
        f"fan-out benchmark: {sizes.responders:,} responders + {sizes.dashboards} dashboards, "
        f"{sizes.offers:,} offers in the burst, {STEADY_RATE} offers/s for {sizes.seconds} s steady; "
        f"database {database}; {os.cpu_count()} cores; {options.client_processes} client process(es)"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not options.database_url:
            options.database_url = f"sqlite:///{tmp / 'fanout.sqlite3'}"
        results: list[Result] = []
        replay: tuple[World, Arrivals, Arrivals] | None = None
        for mode in modes:
            found, world, burst_arrivals, steady_arrivals = await channels_mode(
                mode, options, sizes, tmp, redis_pid
            )
            results += found
            if replay is None:
                replay = (world, burst_arrivals, steady_arrivals)
        assert replay is not None
        results += await bare_mode(replay, options, sizes, tmp)
    summary(results)
    print(
        f"\nThe bare server sent the texts of the {modes[0]} run. Steady offers a fixed load, so its "
        f"deliveries/s ratio is 1 when nothing falls behind; compare p99 there. "
        f"Whole run: {time.perf_counter() - started:.0f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--responders", type=int)
    parser.add_argument("--dashboards", type=int)
    parser.add_argument("--offers", type=int)
    parser.add_argument("--seconds", type=int, help="length of the steady scenario")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 190 + 10 clients, 100 offers, 5 s")
    parser.add_argument("--database-url", help="a database you may wipe (default: a temporary SQLite file)")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/15", help="a Redis database of its own"
    )
    parser.add_argument("--client-processes", type=int, default=1)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plan", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    defaults = {"responders": (950, 190), "dashboards": (50, 10), "offers": (500, 100), "seconds": (20, 5)}
    sizes = Sizes(
        **{
            name: given if (given := getattr(options, name)) is not None else full_or_quick[options.quick]
            for name, full_or_quick in defaults.items()
        }
    )
    if options.build:
        build_world(options.build, sizes.responders, sizes.dashboards, sizes.offers, sizes.ticks)
    elif options.clients:
        asyncio.run(run_clients(options.clients))
    elif options.bare_server:
        asyncio.run(run_bare_server(options.bare_server, options.plan))
    else:
        if min(sizes.responders, sizes.dashboards, sizes.offers, sizes.seconds) < 1:
            parser.error("--responders, --dashboards, --offers and --seconds must be at least 1")
        if sizes.offers > sizes.responders:
            parser.error("--offers cannot exceed --responders: each offer goes to a connected responder")
        asyncio.run(drive(options, sizes))


if __name__ == "__main__":
    main()
