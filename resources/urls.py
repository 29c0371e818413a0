"""Pages and API doors of the resources room; included by deploy_tracker/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from resources import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("imports/roster/", views.roster_import, name="import-roster"),
    path("imports/incident/", views.incident_import, name="import-incident"),
    path("imports/<str:kind>/template.xlsx", views.template_download, name="import-template"),
]
