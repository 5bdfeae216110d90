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


def signed_token(secret: bytes, holder: str) -> str:
    """A token that names its holder, ``<holder>.<mac>``: whoever has ``secret`` checks it with
    :func:`signed_holder`, keeping no list of the tokens handed out (the model host's callers)."""
    return f"{holder}.{_mac(secret, holder)}"


def signed_holder(secret: bytes, authorization: str | None) -> str | None:
    """The holder named by a valid :func:`signed_token` in a ``Bearer`` header, else None."""
    presented = (bearer_token(authorization) or b"").decode("utf-8", "replace")
    holder, _, mac = presented.rpartition(".")
    return holder if holder and hmac.compare_digest(mac, _mac(secret, holder)) else None


def _mac(secret: bytes, holder: str) -> str:
    return hmac.new(secret, holder.encode(), hashlib.sha256).hexdigest()
