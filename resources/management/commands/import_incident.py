"""`manage.py import_incident FILE [--dry-run]` and `import_incident --template FILE`."""

from __future__ import annotations

from resources.importing.command import ImportCommand, Importer
from resources.importing.incident import import_incident
from resources.importing.specs import INCIDENT_BOOK


class Command(ImportCommand):
    help = (
        "Import an incident from an xlsx workbook with the sheets incident (one row), facilities and "
        "requests. Every cell is checked first; if any is wrong, each problem is printed as "
        "sheet:row:column: message and nothing is written (exit 1). The incident is matched by number, "
        "a facility by its code in the incident, a request by facility, qualification, start and end "
        "(a match updates its quantity, priority and radius). Nothing is removed. Re-importing a file "
        "changes nothing. Exit status: 0 done, 1 invalid rows, 2 a file that cannot be read at all."
    )
    workbook = INCIDENT_BOOK
    file_help = "The incident workbook (.xlsx)."

    def importer(self) -> Importer:
        return import_incident
