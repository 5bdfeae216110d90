"""One exception hierarchy for atoll. Every error knows the HTTP status it maps to.

    AtollError (500)
    ├── ConfigError (exit code 2)             bad agent.toml / agent.json / config file
    ├── RequestError (400)                    the client's request is wrong
    │   ├── ModelNotFound (404)               ``model`` does not name this agent
    │   ├── NotFound (404)                    unknown session, tool, ...
    │   ├── PayloadTooLarge (413)
    │   ├── Unauthorized (401)
    │   └── Forbidden (403)                   a browser origin or Host name that is not allowed
    ├── NotReady (503)                        the agent is still starting or unhealthy
    ├── RateLimited (429)                     carries ``retry_after`` seconds
    ├── ProviderError (500)                   the LLM backend failed; carries status/model/body
    │   ├── UpstreamUnavailable (502/503)     unreachable upstream (names the URL)
    │   ├── UpstreamTimeout (504)
    │   └── ProviderNotInstalled (500)        an optional library (llama-cpp-python) is missing
    ├── ToolError (500)                       an MCP tool or child agent failed
    └── StepLimitExceeded (500)               the agent loop ran out of iterations
"""

from __future__ import annotations


class AtollError(Exception):
    status: int = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ConfigError(AtollError):
    """A configuration file is invalid. ``str()`` names the file and the field."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        where = ""
        if path:
            where = f"{path}: "
        if field:
            where += f"{field}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.field = field


class RequestError(AtollError):
    status = 400


class ModelNotFound(RequestError):
    status = 404

    def __init__(self, model: str, served: list[str] | None = None) -> None:
        super().__init__(f"model '{model}' not found")
        self.model = model
        #: The names that would have worked (the ``detail`` says them; ``error`` keeps Ollama's text).
        self.served = served or []


class NotFound(RequestError):
    status = 404


class PayloadTooLarge(RequestError):
    status = 413


class Unauthorized(RequestError):
    status = 401


class Forbidden(RequestError):
    status = 403


class NotReady(AtollError):
    status = 503


class RateLimited(AtollError):
    status = 429

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderError(AtollError):
    """The LLM backend failed. Keeps what the upstream said."""

    def __init__(
        self, message: str, *, status: int = 500, model: str | None = None, body: str | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.model = model
        self.body = body


class UpstreamUnavailable(ProviderError):
    def __init__(self, message: str, *, status: int = 502, model: str | None = None) -> None:
        super().__init__(message, status=status, model=model)


class UpstreamTimeout(ProviderError):
    def __init__(self, message: str, *, model: str | None = None) -> None:
        super().__init__(message, status=504, model=model)


class ProviderNotInstalled(ProviderError):
    pass


class ToolError(AtollError):
    pass


class StepLimitExceeded(AtollError):
    pass
