"""Errors of the management API. Each carries an HTTP status and an ``error_code`` for the body
``{"detail": ..., "error_code": ...}``.

    ManagementError (500, INTERNAL_ERROR)
    ├── AgentNotFound (404, AGENT_NOT_FOUND)
    ├── Conflict (409)               busy agent, already running, same checksum
    ├── BadRequest (400)             invalid package, unsafe archive, invalid config
    ├── BodyTooLarge (413)           an upload or a routed body past its limit
    └── PortUnavailable (409)
"""

from __future__ import annotations

from starlette.requests import Request

from atoll.errors import AtollError
from atoll.httpkit.body import BodyLimit


class ManagementError(AtollError):
    status = 500
    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, error_code: str | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        if error_code is not None:
            self.error_code = error_code


class AgentNotFound(ManagementError):
    status = 404
    error_code = "AGENT_NOT_FOUND"

    def __init__(self, name: str, named: str | None = None) -> None:
        hint = f" (the agent in folder '{name}' is named '{named}': use /agents/{named})" if named else ""
        super().__init__(f"Agent not found: {name}{hint}")
        self.name = name


class Conflict(ManagementError):
    status = 409
    error_code = "CONFLICT"


class BadRequest(ManagementError):
    status = 400
    error_code = "INVALID_REQUEST"


class BodyTooLarge(ManagementError):
    status = 413
    error_code = "PAYLOAD_TOO_LARGE"


def limited(request: Request, limit: int) -> Request:
    """``request`` whose body reading fails past ``limit`` bytes, whatever ``Content-Length`` said
    (a chunked upload declares none)."""
    return Request(request.scope, BodyLimit(request.receive, limit, error=BodyTooLarge))


class PortUnavailable(ManagementError):
    status = 409
    error_code = "PORT_UNAVAILABLE"
