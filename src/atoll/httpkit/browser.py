"""What keeps web pages away from a local server: the ``Origin`` check (cross-site requests, CSRF)
and the ``Host`` check (DNS rebinding).

A browser sends ``Origin`` with every cross-origin request, including the "simple" ones it sends
without a preflight (a multipart form POST, ``text/plain`` JSON). Refusing a disallowed origin
before any route runs is what stops a page from using the API; CORS headers alone only decide
whether the page may *read* the answer.

DNS rebinding: a page on ``evil.example`` re-points its own name at 127.0.0.1, and its requests
are then same-origin to the browser. They still carry ``Host: evil.example``, so a server that
listens on loopback refuses host names that are not its own.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Scope

from atoll.config import env
from atoll.httpkit.refusal import Refusal
from atoll.httpkit.requests import header
from atoll.net import is_loopback

logger = logging.getLogger(__name__)

#: Origins allowed with no configuration (Ollama's list): local pages and desktop/editor webviews.
DEFAULT_ORIGINS = re.compile(
    r"^(https?://(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(:\d+)?"
    r"|app://.*|file://.*|tauri://.*|vscode-webview://.*|vscode-file://.*)$",
    re.IGNORECASE,
)


def _glob(pattern: str) -> re.Pattern[str]:
    """``chrome-extension://*`` style: ``*`` matches anything, the rest literally."""
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$", re.IGNORECASE)


def _trim(origin: str) -> str:
    """Without a trailing slash (``https://x/`` is ``https://x``), but ``file://`` stays whole."""
    origin = origin.strip()
    return origin if origin.endswith("://") else origin.rstrip("/")


def _split(values: Iterable[str]) -> list[str]:
    return [_trim(v) for value in values for v in value.split(",") if v.strip()]


class OriginPolicy:
    """Which ``Origin`` values may use the server: the defaults plus configured ones (``*`` = any)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.extra = _split(extra)
        self.any = "*" in self.extra
        self._patterns = [_glob(origin) for origin in self.extra if origin != "*"]

    def allows(self, origin: str) -> bool:
        origin = _trim(origin)
        return self.any or bool(DEFAULT_ORIGINS.match(origin)) or any(p.match(origin) for p in self._patterns)


def host_name(host_header: str) -> str:
    """The name or address of a ``Host`` header, without port, brackets or trailing dot, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


@functools.lru_cache(maxsize=1024)
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """Host names a loopback listener answers to: loopback addresses, ``localhost``, ``*.localhost``,
    this machine's host name and the configured ones (``*`` = any; ``*.example.org`` = its sub-names)."""

    def __init__(self, extra: Iterable[str] = (), machine: str | None = None) -> None:
        self.extra = [h.lower() for h in _split(extra)]
        self.any = "*" in self.extra
        own = (machine if machine is not None else socket.gethostname()).lower().rstrip(".")
        self._names = {"localhost", own, *(h for h in self.extra if not h.startswith("*."))} - {""}
        self._suffixes = (".localhost", *(h[1:] for h in self.extra if h.startswith("*.")))

    def allows(self, host_header: str | None) -> bool:
        if not host_header or self.any:  # HTTP/1.0 clients may send no Host; no browser does
            return True
        name = host_name(host_header)
        if _is_ip(name):
            return is_loopback(name) or ipaddress.ip_address(name).is_unspecified
        return name in self._names or name.endswith(self._suffixes)


class BrowserPolicy:
    """Both checks, in the order a request meets them; ``refusal`` is the 403 for a refused request."""

    def __init__(self, origins: OriginPolicy, hosts: HostPolicy) -> None:
        self.origins = origins
        self.hosts = hosts

    def refusal(self, scope: Scope) -> Refusal | None:
        host = header(scope, b"host")
        if _on_loopback(scope) and not self.hosts.allows(host):
            return Refusal(403, f"host '{host}' is not allowed: this server listens on loopback and answers "
                           "only to loopback names (add the name to allowed_hosts or ATOLL_ALLOWED_HOSTS)",
                           "FORBIDDEN_HOST")
        origin = header(scope, b"origin")
        if origin is None or self.origins.allows(origin) or self._same_origin(origin, host):
            return None
        return Refusal(403, f"origin '{origin}' is not allowed: a web page may use this server only from an "
                       "allowed origin (add it to cors_origins or ATOLL_ORIGINS)", "FORBIDDEN_ORIGIN")

    def _same_origin(self, origin: str, host: str | None) -> bool:
        """A page served by this server itself, reached by an address or an allowed name (a name
        could be a rebinding one, so it has to be allowed)."""
        if not host:
            return False
        netloc = urlsplit(origin).netloc.lower()
        if netloc != host.strip().lower():
            return False
        return _is_ip(host_name(host)) or self.hosts.allows(host)


def _on_loopback(scope: Scope) -> bool:
    server = scope.get("server")
    return server is not None and isinstance(server[0], str) and is_loopback(server[0])


def browser_policy(cors_origins: Iterable[str], allowed_hosts: Iterable[str], *, server: str) -> BrowserPolicy:
    """The policy from a server's settings plus ``ATOLL_ORIGINS`` / ``ATOLL_ALLOWED_HOSTS``; warns
    at start-up when any origin or any host is allowed."""
    origins = OriginPolicy([*cors_origins, env("ATOLL_ORIGINS") or ""])
    hosts = HostPolicy([*allowed_hosts, env("ATOLL_ALLOWED_HOSTS") or ""])
    if origins.any:
        logger.warning("%s: cors_origins allows '*': any web page the user opens can use this server", server)
    if hosts.any:
        logger.warning("%s: allowed_hosts allows '*': the DNS rebinding check is off", server)
    return BrowserPolicy(origins, hosts)
