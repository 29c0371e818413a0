"""Sign-in throttling shared by every door that takes a password (django-axes).

/login/, /admin/login/ and /api/auth/token/ all sign in through `django.contrib.auth.authenticate`
with the request, so Axes counts each failure against the username and the client address
(settings, "Sign-in throttling"). At the limit, `locked_out` answers: 429 Too Many Requests with
Retry-After — a page for people, the API's JSON error under /api/.

429 and not 403: the refusal is about the rate of tries and ends by itself after the cool-off
(RFC 6585), while a 403 here means "you may not, ever" and clients and monitoring treat it so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import user_logged_in
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiResponse
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.serializers import ErrorSerializer

LOCKED_OUT_RESPONSE = OpenApiResponse(
    ErrorSerializer,
    description="Too many failed sign-ins for this username from this address (`locked_out`): "
    "refused, even with the right password, until the cool-off ends; Retry-After gives the seconds.",
)


class LoginThrottle(AxesStandaloneBackend):  # type: ignore[misc]  # django-axes ships no types
    """Axes' lockout check, for every sign-in that comes through a door.

    Each door passes its request (tested for all three). A call without one comes from inside
    the process (a test's `Client.login`, a shell): there is no client address to count against,
    so it goes straight to the password check, where Axes' own backend would raise instead.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]


def cool_off() -> timedelta:
    cooling: timedelta = settings.AXES_COOLOFF_TIME
    return cooling


def lockout_message() -> str:
    minutes = max(1, round(cool_off().total_seconds() / 60))
    return (
        f"Too many failed sign-ins for this username from your address: signing in is blocked for "
        f"{minutes} minutes from the last failed try, even with the right password. Wait, then try "
        "again; if you forgot your password, ask an administrator."
    )


def locked_out(request: HttpRequest, *_: Any) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the answer to a sign-in refused for too many failures.

    Axes passes (request, response, credentials), or on its async path (request, credentials,
    None); neither is needed here.
    """
    message = lockout_message()
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": "locked_out", "detail": message}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = str(int(cool_off().total_seconds()))
    return response


class ThrottledTokenLogin(ObtainAuthToken):
    """ObtainAuthToken, counted like the login pages.

    Its serializer authenticates with the request of its context: Django's own request here, not
    DRF's wrapper, because Axes marks a lockout on the object it is given and AxesMiddleware reads
    the mark on Django's. A token handed out is a sign-in: `user_logged_in` clears the pair's
    failures (AXES_RESET_ON_SUCCESS) and stamps last_login, as the login pages do.
    """

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "request": self.request._request}

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        return Response({"token": token.key})
