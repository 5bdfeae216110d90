"""Credentials written into URLs (``https://user:password@host/...``) are never shown: anything a
server reports about its upstreams passes through ``redact_urls`` first."""

from __future__ import annotations

import re
from typing import Any

#: ``scheme://userinfo@``: the userinfo (user, or user:password) is what gets replaced.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@\s]+@")
REDACTED = "***"


def redact_urls(value: Any) -> Any:
    """``value`` with the user information of every URL in every string replaced by ``***``."""
    if isinstance(value, str):
        return _USERINFO.sub(rf"\1{REDACTED}@", value)
    if isinstance(value, dict):
        return {key: redact_urls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_urls(item) for item in value]
    return value
