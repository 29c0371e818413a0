"""Roster and incident imports: one service layer for the commands and the upload pages.

A file is read (python-calamine, or CSV), every cell is checked column by column with pandas,
and only a file without a single problem is written: all of it, in one transaction, in bulk.
"""

from __future__ import annotations

from resources.importing.incident import can_import_incident, can_open_incident_import, import_incident
from resources.importing.problems import (
    Counts,
    ImportConflict,
    ImportResult,
    InvalidRows,
    Problem,
    UnusableFile,
)
from resources.importing.roster import can_import_roster, import_roster
from resources.importing.specs import INCIDENT_BOOK, ROSTER
from resources.importing.template import write_template

__all__ = [
    "INCIDENT_BOOK",
    "ROSTER",
    "Counts",
    "ImportConflict",
    "ImportResult",
    "InvalidRows",
    "Problem",
    "UnusableFile",
    "can_import_incident",
    "can_import_roster",
    "can_open_incident_import",
    "import_incident",
    "import_roster",
    "write_template",
]
