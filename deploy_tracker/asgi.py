"""ASGI entry point: HTTP through Django, WebSockets through Channels (session or token auth)."""

from __future__ import annotations

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deploy_tracker.settings")

# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from deploy_tracker.routing import websocket_urlpatterns  # noqa: E402
from deploy_tracker.ws_auth import DatabaseOutageGuard, OriginCheck, TokenAuthMiddleware  # noqa: E402

# What start-up loaded (Django, the apps, the URL map) lives as long as the process: moved out of
# the collector's way, a full collection no longer walks it — with a thousand sockets open, those
# walks were the tail of the live latency (bench/fanout.py, steady).
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A browser's Origin must be one of ALLOWED_HOSTS (its cookie would otherwise ride along
        # from any site); other systems send no Origin and must use a token. A lost database on the
        # way in is a close with 4503, not a 500.
        "websocket": DatabaseOutageGuard(
            OriginCheck(AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns))))
        ),
    }
)
