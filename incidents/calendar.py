"""iCalendar (RFC 5545) for a responder's deployments: all-day events, one per deployment."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from incidents.models import Deployment

_STATUS: dict[str, str] = {
    Deployment.Status.OFFERED: "TENTATIVE",
    Deployment.Status.ACCEPTED: "CONFIRMED",
    Deployment.Status.ON_SITE: "CONFIRMED",
    Deployment.Status.RELEASED: "CONFIRMED",
}


def _text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 §3.3.11)."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1), never inside a UTF-8 character."""
    out: list[str] = []
    current = b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def feed(deployments: Iterable[Deployment]) -> str:
    """The calendar text; deployments need their request, facility and incident selected."""
    host = settings.SITE_URL.split("//")[-1].split("/")[0]
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Deploy Tracker//Deployments//EN",
        "CALSCALE:GREGORIAN",
        "X-WR-CALNAME:My deployments",
    ]
    for d in deployments:
        request, facility = d.request, d.request.facility
        note = facility.reporting_instructions or "Report to the facility's staffing desk."
        summary = f"{request.qualification.name} at {facility.name} ({facility.incident.number})"
        lines += [
            "BEGIN:VEVENT",
            f"UID:deployment-{d.pk}@{host}",
            f"DTSTAMP:{stamp}",
            f"DTSTART;VALUE=DATE:{d.start:%Y%m%d}",
            f"DTEND;VALUE=DATE:{d.end + timedelta(days=1):%Y%m%d}",
            f"SUMMARY:{_text(summary)}",
            f"LOCATION:{_text(facility.address or facility.name)}",
            f"GEO:{facility.latitude:.6f};{facility.longitude:.6f}",
            f"DESCRIPTION:{_text(f'{d.get_status_display()}. {note}')}",
            f"STATUS:{_STATUS.get(d.status, 'CONFIRMED')}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
