"""Writing a report to a file and serving one, so memory stays flat at any size.

A download now (`download`) is written to a temporary file and streamed from it; a background
export (reports/jobs.py) is written the same way and kept in storage, then served by `stream`.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from reports.spec import Report
from reports.writers import Progress, write_csv, write_xlsx

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
BLOCK = 1 << 16


def write_sheets(
    report: Report, fmt: str, target: IO[bytes], *, sheet: str, progress: Progress | None = None
) -> dict[str, int]:
    """Write `report` as xlsx (every sheet) or csv (`sheet`); the data rows written per sheet."""
    if fmt == "xlsx":
        return write_xlsx(report, target, progress=progress)
    return {sheet: write_csv(report, sheet, target, progress=progress)}


def write(report: Report, fmt: str, target: IO[bytes], *, sheet: str) -> int:
    """Write `report` as xlsx (every sheet) or csv (`sheet`); the number of data rows written."""
    return sum(write_sheets(report, fmt, target, sheet=sheet).values())


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


def stream(
    request: HttpRequest, file: IO[bytes], *, size: int, name: str, content_type: str
) -> StreamingHttpResponse:
    """An open file as an attachment, streamed in blocks and closed once sent.

    Under ASGI (Daphne) the body is an async iterator: Django would otherwise read a synchronous
    one into memory whole before sending it (FileResponse included). Under WSGI and the test
    client, a plain iterator.
    """
    body = _ablocks(file) if isinstance(request, ASGIRequest) else _blocks(file)
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response


def download(request: HttpRequest, report: Report, fmt: str, *, sheet: str) -> StreamingHttpResponse:
    """The report written to a temporary file, then streamed from it as an attachment."""
    file = spooled(report, fmt, sheet=sheet)
    size = file.seek(0, 2)
    file.seek(0)
    name = report.filename(fmt, sheet if fmt == "csv" else None)
    return stream(request, file, size=size, name=name, content_type=CONTENT_TYPES[fmt])
