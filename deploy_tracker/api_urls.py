"""The REST API's URLs under /api/ (CONTRACTS.md, "HTTP API"): one router and the odd paths.

`api/auth/token/`, `api/schema/` and `api/docs/` stay in deploy_tracker/urls.py; the reports
room adds `api/reports/…` in reports/urls.py.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from incidents.api import (
    DeploymentViewSet,
    EventViewSet,
    ExpenseViewSet,
    FacilityViewSet,
    IncidentViewSet,
    JobView,
    MatchView,
    MyDeploymentsView,
    OffersView,
    RoleRequestViewSet,
    TimeEntryViewSet,
)
from resources.api import ExpertViewSet, QualificationViewSet

router = SimpleRouter()
router.register("incidents", IncidentViewSet, basename="api-incident")
router.register("facilities", FacilityViewSet, basename="api-facility")
router.register("requests", RoleRequestViewSet, basename="api-request")
router.register("experts", ExpertViewSet, basename="api-expert")
router.register("qualifications", QualificationViewSet, basename="api-qualification")
router.register("deployments", DeploymentViewSet, basename="api-deployment")
router.register("events", EventViewSet, basename="api-event")
router.register("time-entries", TimeEntryViewSet, basename="api-time-entry")
router.register("expenses", ExpenseViewSet, basename="api-expense")

urlpatterns: list[URLPattern | URLResolver] = [
    path("incidents/<int:pk>/match/", MatchView.as_view(), name="api-incident-match"),
    path("incidents/<int:pk>/offers/", OffersView.as_view(), name="api-incident-offers"),
    path("jobs/<int:pk>/", JobView.as_view(), name="api-job"),
    path("me/deployments/", MyDeploymentsView.as_view(), name="api-my-deployments"),
    *router.urls,
]
