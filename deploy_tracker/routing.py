"""WebSocket URL map (CONTRACTS.md, "WebSocket")."""

from __future__ import annotations

from django.urls import path

from incidents.consumers import IncidentConsumer, ResponderConsumer

websocket_urlpatterns = [
    path("ws/incidents/<int:incident_id>/", IncidentConsumer.as_asgi()),
    path("ws/me/", ResponderConsumer.as_asgi()),
]
