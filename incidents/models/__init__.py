"""Incident models, split by topic; import them from here."""

from incidents.models.deployment import Deployment, Event, HealthScreening
from incidents.models.incident import Facility, Incident, IncidentMembership, RoleRequest
from incidents.models.jobs import Job
from incidents.models.matching import Exclusion
from incidents.models.records import Approval, EquipmentIssue, Expense, TimeEntry

__all__ = [
    "Approval",
    "Deployment",
    "EquipmentIssue",
    "Event",
    "Exclusion",
    "Expense",
    "Facility",
    "HealthScreening",
    "Incident",
    "IncidentMembership",
    "Job",
    "RoleRequest",
    "TimeEntry",
]
