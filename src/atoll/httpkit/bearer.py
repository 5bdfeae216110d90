"""``Authorization: Bearer <token>`` parsing and constant-time comparison against known tokens."""

from __future__ import annotations

import hashlib
import hmac


def bearer_token(authorization: str | None) -> bytes | None:
    """The token of a ``Bearer`` header (scheme case-insensitive), or None for any other header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token.encode() if scheme.lower() == "bearer" and token else None


def fingerprint(token: str) -> str:
    """A stable, non-secret name for a token: sessions are bound to it and it may appear in logs."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class TokenSet:
    """Tokens a server accepts. ``match`` compares the presented one against every token, always,
    in constant time, and answers the matching token's fingerprint (or None)."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [(token.encode(), fingerprint(token)) for token in tokens if token]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def match(self, authorization: str | None) -> str | None:
        presented = bearer_token(authorization) or b""
        found = None
        for token, name in self._tokens:
            if hmac.compare_digest(presented, token):
                found = name
        return found
