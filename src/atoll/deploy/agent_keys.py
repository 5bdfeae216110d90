"""Per-agent credentials the deployment server holds, so it can reach agents that have
``[server] api_keys`` (for the dashboard's tools, sessions, metrics and chat) without ever knowing
or showing their clients' keys.

Each agent process gets its own random key in ``ATOLL_DEPLOY_AGENT_KEY``; the agent server accepts
it besides its configured keys (and only when it has some). The key never leaves this process and
the agent's: the dashboard sees only the deployment server's answers.
"""

from __future__ import annotations

import secrets

AGENT_KEY_ENV = "ATOLL_DEPLOY_AGENT_KEY"


class AgentKeys:
    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def key_for(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = secrets.token_urlsafe(32)
        return key

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_for(name)}"}

    def forget(self, name: str) -> None:
        self._keys.pop(name, None)
