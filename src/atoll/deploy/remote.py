"""Remote deployment servers from ``remote_servers``: their state and, where they run, their agents."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from atoll.deploy.config import RemoteServer

RUNNING, NOT_RUNNING, DISABLED, ERROR = "running", "not_running", "disabled", "error"
#: Sent on calls to other deployment servers' front doors so two servers listing each other as
#: remotes do not ask each other forever.
HOP_HEADER = "X-Atoll-Front-Door-Hop"
#: Listings and health checks give up on an agent or remote that does not answer within this.
LISTING_TIMEOUT = 2.0


@dataclass
class RemoteStatus:
    name: str
    host: str
    port: int
    enabled: bool
    description: str
    state: str
    error: str | None = None
    agents: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_for(remote: RemoteServer) -> ssl.SSLContext | bool:
    """How a remote's certificate is checked: against its ``ca_bundle`` alone when set, else the
    system's CAs (never not at all)."""
    return ssl.create_default_context(cafile=str(remote.ca_bundle)) if remote.ca_bundle else True


def plain_http_warnings(remotes: list[RemoteServer]) -> list[str]:
    """Remotes whose credentials would cross the network in clear text."""
    return [f"remote '{r.name}' ({r.url}) has credentials (api_key/admin_token) but is plain HTTP: anyone on "
            "the path can read them; use an https:// host (and ca_bundle for a private CA)"
            for r in remotes if r.enabled and not r.tls and (r.api_key or r.admin_token)]


def front_door_auth(remote: RemoteServer, caller: str | None) -> str | None:
    """The ``Authorization`` to send to a remote's front door: its configured ``api_key`` when set
    (the operator vouches for every caller of this front door), else the caller's own header."""
    return f"Bearer {remote.api_key}" if remote.api_key else caller


def _management_headers(remote: RemoteServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {remote.admin_token}"} if remote.admin_token else {}


def _base(remote: RemoteServer, **extra: Any) -> dict[str, Any]:
    return {"name": remote.name, "host": remote.host, "port": remote.port, "enabled": remote.enabled,
            "description": remote.description, **extra}


async def check_remote(client: httpx.AsyncClient, remote: RemoteServer, timeout: float = LISTING_TIMEOUT
                       ) -> RemoteStatus:
    if not remote.enabled:
        return RemoteStatus(**_base(remote, state=DISABLED))
    try:
        health = await client.get(f"{remote.url}/health", timeout=timeout)
        if health.status_code != 200:
            return RemoteStatus(**_base(remote, state=ERROR, error=f"/health answered {health.status_code}"))
        if remote.kind != "deployment":  # no management API: healthy is all there is to know
            return RemoteStatus(**_base(remote, state=RUNNING))
        agents = await client.get(f"{remote.url}/agents", headers=_management_headers(remote), timeout=timeout)
        if agents.status_code == 401:
            return RemoteStatus(**_base(remote, state=ERROR, error="its management API refused the admin token "
                                        "(set admin_token for this remote)"))
        agents.raise_for_status()
        listed = agents.json().get("agents", [])
    except httpx.ConnectError as exc:
        return RemoteStatus(**_base(remote, state=NOT_RUNNING, error=f"cannot connect: {exc}"))
    except httpx.TimeoutException:
        return RemoteStatus(**_base(remote, state=NOT_RUNNING, error=f"no answer within {timeout:g}s"))
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        return RemoteStatus(**_base(remote, state=ERROR, error=str(exc) or type(exc).__name__))
    return RemoteStatus(**_base(remote, state=RUNNING, agents=listed if isinstance(listed, list) else []))


async def check_all(client: httpx.AsyncClient, remotes: list[RemoteServer]) -> list[RemoteStatus]:
    return list(await asyncio.gather(*(check_remote(client, r) for r in remotes)))


async def remote_models(client: httpx.AsyncClient, remote: RemoteServer, timeout: float = LISTING_TIMEOUT
                        ) -> list[dict[str, Any]]:
    """The models a remote front door lists (its local agents only), asked with the remote's own
    ``api_key`` or no credentials (never a caller's); [] when it cannot be asked."""
    headers = {HOP_HEADER: "1"}
    if remote.api_key:
        headers["Authorization"] = f"Bearer {remote.api_key}"
    try:
        response = await client.get(f"{remote.url}/api/tags", headers=headers, timeout=timeout)
        response.raise_for_status()
        models = response.json().get("models", [])
    except (httpx.HTTPError, ValueError, AttributeError):
        return []
    return [m for m in models if isinstance(m, dict)]
