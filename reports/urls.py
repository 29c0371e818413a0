"""Pages and API doors of the reports room; included by deploy_tracker/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from reports import api, views

urlpatterns: list[URLPattern | URLResolver] = [
    path("reports/", views.index, name="reports"),
    path("reports/<slug:kind>/", views.report_page, name="report"),
    path("reports/<slug:kind>/prepare/", views.prepare, name="report-prepare"),
    path("api/reports/<slug:kind>/", api.ReportView.as_view(), name="api-report"),
    path("api/reports/<slug:kind>/jobs/", api.ReportJobsView.as_view(), name="api-report-jobs"),
    # Under /api/jobs/ beside the job itself (deploy_tracker/api_urls.py); served here, where
    # the report's rule and the streaming of files live.
    path("api/jobs/<int:pk>/file/", api.JobFileView.as_view(), name="api-job-file"),
]
