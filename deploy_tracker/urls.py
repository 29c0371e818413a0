"""Top-level URL map."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import obtain_auth_token

from incidents.api import MatchView

admin.site.site_header = "Deploy Tracker"
admin.site.site_title = "Deploy Tracker"
admin.site.index_title = "Records"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/token/", obtain_auth_token, name="api-token"),
    path("api/incidents/<int:pk>/match/", MatchView.as_view(), name="api-incident-match"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
