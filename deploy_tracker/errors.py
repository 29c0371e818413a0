"""One family of domain errors. Doors map them once: HTTP status, CLI exit code."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of the domain said no; the message says which rule and why."""

    code = "domain_error"
    http_status = 409
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IllegalTransition(DomainError):
    """The deployment is not in a state this move starts from."""

    code = "illegal_transition"


class ExpertUnavailable(DomainError):
    """The expert already holds an overlapping deployment (rest days included)."""

    code = "expert_unavailable"


class RequestFull(DomainError):
    """Every slot of the role request is already proposed or filled."""

    code = "request_full"


class ReleaseBlocked(DomainError):
    """Demobilization check-out items are still open."""

    code = "release_blocked"

    def __init__(self, message: str, blockers: list[str]) -> None:
        super().__init__(message)
        self.blockers = blockers


class NotAllowed(DomainError):
    """The actor has no right to do this here."""

    code = "not_allowed"
    http_status = 403


class InvalidInput(DomainError):
    """A value is out of range or malformed; `field` names it."""

    code = "invalid_input"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
