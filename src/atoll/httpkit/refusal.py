"""``Refusal``: an answer the shared HTTP front gives before any route runs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    #: The management API's ``error_code`` (``FORBIDDEN_ORIGIN``, ``FORBIDDEN_HOST``, ``UNAUTHORIZED``...).
    code: str
    headers: dict[str, str] = field(default_factory=dict)
