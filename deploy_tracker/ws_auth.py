"""WebSocket handshake authentication by `Authorization: Token <key>` (CONTRACTS.md, "WebSocket").

Browsers use the session cookie (Channels' AuthMiddleware); other systems send the API token.
Both read the database, as does a consumer's access check: `DatabaseOutageGuard` turns a lost
database there into close code 4503 (try again, then replay) rather than a 500 and a trace.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from deploy_tracker.middleware import database_outage, database_unavailable

UNAVAILABLE = 4503  # as when the channel layer loses Redis: reconnect later with ?since=


@database_sync_to_async
def _user_for(key: str) -> Any:
    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else None


def _token(scope: dict[str, Any]) -> str | None:
    value = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
    return value.removeprefix("Token ").strip() if value.startswith("Token ") else None


class TokenAuthMiddleware(BaseMiddleware):
    """With a token header, the token alone decides who this is (a bad token is nobody)."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        key = _token(scope)
        if key is not None:
            scope = {**scope, "user": await _user_for(key) or AnonymousUser()}
        return await super().__call__(scope, receive, send)


class OriginCheck:
    """Browsers (cookies) must come from one of ALLOWED_HOSTS; other systems, which send no
    Origin, must authenticate with a token — a browser cannot set that header on a WebSocket."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.browser = AllowedHostsOriginValidator(app)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        has_origin = b"origin" in dict(scope.get("headers", []))
        if not has_origin and _token(scope) is not None:
            return await self.app(scope, receive, send)
        return await self.browser(scope, receive, send)


class DatabaseOutageGuard:
    """A socket that meets a lost database — the session or token lookup at the handshake, the
    consumer's access check or replay — is closed with 4503 and the outage logged once, like an
    HTTP request's 503 (deploy_tracker/middleware.py). Other errors go on up."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        accepted = False

        async def watched(message: dict[str, Any]) -> None:
            nonlocal accepted
            accepted = accepted or message.get("type") == "websocket.accept"
            await send(message)

        try:
            return await self.app(scope, receive, watched)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            database_outage.failed(exc)
            if not accepted:  # a handshake can only be refused with 403; accept, then say why
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": UNAVAILABLE})
            return None
