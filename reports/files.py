"""Writing a report to a temporary file and serving it, so memory stays flat at any size."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from reports.spec import Report
from reports.writers import write_csv, write_xlsx

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
BLOCK = 1 << 16


def write(report: Report, fmt: str, target: IO[bytes], *, sheet: str) -> int:
    """Write `report` as xlsx (every sheet) or csv (`sheet`); the number of data rows written."""
    if fmt == "xlsx":
        return sum(write_xlsx(report, target).values())
    return write_csv(report, sheet, target)


def spooled(report: Report, fmt: str, *, sheet: str) -> IO[bytes]:
    """The report written to an anonymous temporary file, rewound."""
    target = tempfile.TemporaryFile()  # noqa: SIM115 — the response closes it when sent
    try:
        write(report, fmt, target, sheet=sheet)
    except BaseException:
        target.close()
        raise
    target.seek(0)
    return target


def _blocks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while block := file.read(BLOCK):
            yield block


async def _ablocks(file: IO[bytes]) -> AsyncIterator[bytes]:
    read = sync_to_async(file.read, thread_sensitive=False)
    try:
        while block := await read(BLOCK):
            yield block
    finally:
        file.close()


def download(request: HttpRequest, report: Report, fmt: str, *, sheet: str) -> StreamingHttpResponse:
    """An attachment streamed from disk in blocks.

    Under ASGI (Daphne) the body is an async iterator: Django would otherwise read a synchronous
    one into memory whole before sending it. Under WSGI and the test client, a plain iterator.
    """
    file = spooled(report, fmt, sheet=sheet)
    size = file.seek(0, 2)
    file.seek(0)
    body = _ablocks(file) if isinstance(request, ASGIRequest) else _blocks(file)
    response = StreamingHttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Length"] = str(size)
    name = report.filename(fmt, sheet if fmt == "csv" else None)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response
