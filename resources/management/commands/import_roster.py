"""`manage.py import_roster FILE [--dry-run]` and `import_roster --template FILE`."""

from __future__ import annotations

from resources.importing.command import ImportCommand, Importer
from resources.importing.roster import import_roster
from resources.importing.specs import ROSTER


class Command(ImportCommand):
    help = (
        "Import the roster from an xlsx workbook (sheets experts, credentials, availability and, "
        "optionally, qualifications) or from a CSV file of the experts sheet. Every cell is checked "
        "first; if any is wrong, each problem is printed as sheet:row:column: message and nothing is "
        "written (exit 1). Experts are matched by email (upper/lower case do not matter) and created or "
        "updated; experts not in the file are left alone. A credentials or availability sheet is the "
        "complete list for the experts on the experts sheet: their rows missing from it are removed; "
        "leave the sheet out to keep them. Unknown agencies are created. Re-importing a file changes "
        "nothing. Exit status: 0 done, 1 invalid rows, 2 a file that cannot be read at all (not a "
        "workbook, empty, too big, a sheet missing)."
    )
    workbook = ROSTER
    file_help = "The roster: an .xlsx workbook, or a .csv file of the experts sheet."

    def importer(self) -> Importer:
        return import_roster
