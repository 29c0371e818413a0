"""Pages and API doors of the reports room; included by deploy_tracker/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from reports import api, views

urlpatterns: list[URLPattern | URLResolver] = [
    path("reports/", views.index, name="reports"),
    path("reports/<slug:kind>/", views.report_page, name="report"),
    path("api/reports/<slug:kind>/", api.ReportView.as_view(), name="api-report"),
]
