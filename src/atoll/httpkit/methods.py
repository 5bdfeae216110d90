"""HTTP method names as metric labels: a fixed set, so a client inventing methods cannot grow
the label space (each distinct label value is a new time series kept in memory forever)."""

from __future__ import annotations

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
OTHER = "OTHER"


def metric_method(method: str) -> str:
    """``method`` if it is a standard one, else ``OTHER``."""
    return method if method in KNOWN_METHODS else OTHER
