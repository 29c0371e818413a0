"""The database going away is an answer, not a crash: 503 with Retry-After, one log line.

When PostgreSQL stops, restarts or drops a connection, the query that meets it raises
`OperationalError` (or `InterfaceError`). Every door answers the same: 503 Service Unavailable
with `Retry-After` — JSON in the API's error shape under /api/ (DRF re-raises what its handler
does not know, so it lands here too), a short plain page elsewhere — never a 500 with a trace.

Nothing needs resetting afterwards. Connections are not kept between requests under ASGI
(`CONN_MAX_AGE = 0`, settings), so the first request after the database is back opens a fresh
one; a request whose connection died mid-transaction has had that transaction rolled back by
the server, so nothing half-done is ever committed.

The log gets one warning when an outage starts and one line when the database answers again
(per process), instead of a trace — or Django's "Service Unavailable" error line — per request.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # a PostgreSQL restart or fail-over takes seconds, not minutes

# SQLite raises OperationalError for its own mistakes too ("no such table"): only these primary
# result codes mean "busy or unreachable right now" (https://sqlite.org/rescode.html).
_SQLITE_UNAVAILABLE = {5, 6, 10, 13, 14}  # BUSY, LOCKED, IOERR, FULL, CANTOPEN

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Temporarily unavailable · Deploy Tracker</title></head>
<body><h1>Deploy Tracker is temporarily unavailable</h1>
<p>Its database cannot be reached right now. Please try again in a few seconds.
If you were saving something, check that it was saved once the page loads again.</p></body></html>
"""


def database_unavailable(error: BaseException) -> bool:
    """Does this error mean the database is unreachable or busy (try again later), not a bug?"""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    if isinstance(cause, sqlite3.OperationalError):
        return getattr(cause, "sqlite_errorcode", 0) & 0xFF in _SQLITE_UNAVAILABLE
    return True  # PostgreSQL: connection lost or refused, shutdown, too many clients, lock timeouts


class OutageLog:
    """Logs an outage of `what` once when it starts and once when it ends, not per failure.

    Shared by the doors that meet one: HTTP (the database, here) and the live WebSockets (the
    channel layer's Redis, incidents/consumers.py). Thread-safe; the lock only guards a flag flip,
    so the event loop may call it too.
    """

    def __init__(self, what: str, meanwhile: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.meanwhile = meanwhile
        self.log = logger
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.failures = 0

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        self.log.warning("%s unavailable (%s); %s until it is back", self.what, reason, self.meanwhile)

    def recovered(self) -> None:
        if self.down_since is None:  # the usual case, decided without the lock
            return
        with self._lock:
            if self.down_since is None:
                return
            seconds, failures = time.monotonic() - self.down_since, self.failures
            self.down_since, self.failures = None, 0
        self.log.warning("%s is back after %.1f s (%d failure(s) meanwhile)", self.what, seconds, failures)


database_outage = OutageLog("database", "answering 503")


def _connected(**kwargs: Any) -> None:
    database_outage.recovered()


# A new connection is the proof that the database answers again (every request opens one).
connection_created.connect(_connected, dispatch_uid="deploy_tracker.middleware.database_back")


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON in the API's error shape under /api/, a plain page elsewhere."""
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {
                "error": "database_unavailable",
                "detail": "The database is unavailable; try again in a few seconds.",
            },
            status=503,
        )
    else:
        response = HttpResponse(PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # The outage is logged once above; Django would add an error line for every 503 answered.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class DatabaseUnavailableMiddleware:
    """Turns a lost database into a 503 for whichever view met it (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        database_outage.failed(exception)
        return unavailable_response(request)
