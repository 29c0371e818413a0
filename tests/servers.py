"""Real Daphne processes for the tests that go over sockets (end-to-end and browser tests)."""

from __future__ import annotations

import socket
import subprocess
import sys
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
def daphne(env: dict[str, str], port: int | None = None, timeout: float = 60) -> Iterator[str]:
    """Serve the app on `port` (a free one by default) until the block ends; yields
    "127.0.0.1:<port>" once the server answers."""
    port = port or free_port()
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
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
                    raise RuntimeError(
                        server.stderr.read().decode() if server.stderr else "daphne died"
                    ) from None
                time.sleep(0.2)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def daphnes(env: dict[str, str], count: int) -> Iterator[list[str]]:
    """`count` servers on the same settings (and so the same database and channel layer)."""
    with ExitStack() as stack:
        yield [stack.enter_context(daphne(env)) for _ in range(count)]
