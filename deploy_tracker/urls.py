"""Top-level URL map."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import serializers

from deploy_tracker.api import not_found
from deploy_tracker.security import LOCKED_OUT_RESPONSE, ThrottledTokenLogin
from incidents import views
from incidents.serializers import errors

admin.site.site_header = "Deploy Tracker"
admin.site.site_title = "Deploy Tracker"
admin.site.index_title = "Records"


@extend_schema_view(
    post=extend_schema(
        responses={
            200: inline_serializer("TokenAnswer", {"token": serializers.CharField()}),
            **errors(400),
            429: LOCKED_OUT_RESPONSE,
        }
    )
)
class TokenLogin(ThrottledTokenLogin):
    """`{username, password}` → `{token}`; wrong credentials are a 400 (non_field_errors), and past
    the failure limit a 429 (`locked_out`) until the cool-off ends."""


handler404 = not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/token/", TokenLogin.as_view(), name="api-token"),
    path("api/", include("deploy_tracker.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own: no inline script (CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
        name="api-docs",
    ),
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("offers/<str:token>/", views.offer_answer, name="offer-answer"),
    path("incidents/<int:pk>/", views.incident_page, name="incident"),
    path("incidents/<int:pk>/fill/", views.incident_fill, name="incident-fill"),
    path("incidents/<int:pk>/match/", views.incident_match, name="incident-match"),
    path("incidents/<int:pk>/offers/", views.incident_offers, name="incident-offers"),
    path("incidents/<int:pk>/matching/", views.matching_board, name="matching-board"),
    path("incidents/<int:pk>/demobilization/", views.demob_board, name="demob-board"),
    path("incidents/<int:pk>/requests/new/", views.request_form, name="request-new"),
    path("incidents/<int:pk>/requests/<int:request_id>/", views.request_form, name="request-edit"),
    path("incidents/<int:pk>/check-in/", views.check_in_page, name="check-in"),
    path("me/", views.my_deployments, name="my-deployments"),
    path("me/deployments/<int:pk>/accept/", views.answer_offer, {"answer": "accept"}, name="my-accept"),
    path("me/deployments/<int:pk>/decline/", views.answer_offer, {"answer": "decline"}, name="my-decline"),
    path("me/deployments/<int:pk>/time/", views.my_records, {"kind": "time"}, name="my-time"),
    path("me/deployments/<int:pk>/expenses/", views.my_records, {"kind": "expense"}, name="my-expense"),
    path("me/calendar/<str:token>.ics", views.my_calendar, name="my-calendar"),
    path("incidents/<int:pk>/approvals/", views.approvals_page, name="approvals"),
    path("", include("resources.urls")),
    path("", include("reports.urls")),
]
