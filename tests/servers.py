"""Real Daphne processes for the tests that go over sockets (end-to-end and browser tests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "deploy_tracker.asgi:application"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def daphne(
    env: dict[str, str], port: int | None = None, timeout: float = 60, log: Path | None = None
) -> Iterator[str]:
    """Serve the app on `port` (a free one by default) until the block ends; yields
    "127.0.0.1:<port>" once the server answers. The server's output goes to `log` (a temporary
    file by default — a pipe nobody reads would stall a server that logs a lot)."""
    port = port or free_port()
    output = open(log, "a+b") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115
    server = subprocess.Popen(
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
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/login/", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise RuntimeError(output.read().decode(errors="replace") or "daphne died") from None
                time.sleep(0.2)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)
        output.close()


@contextmanager
def daphnes(env: dict[str, str], count: int) -> Iterator[list[str]]:
    """`count` servers on the same settings (and so the same database and channel layer)."""
    with ExitStack() as stack:
        yield [stack.enter_context(daphne(env)) for _ in range(count)]
