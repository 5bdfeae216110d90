"""Per-agent credentials the deployment server holds, so it can reach agents that have
``[server] api_keys`` (for the dashboard's tools, sessions, metrics and chat) without ever knowing
or showing their clients' keys.

Each agent process gets its own random key in ``ATOLL_DEPLOY_AGENT_KEY``; the agent server accepts
it besides its configured keys (and only when it has some). The key never leaves this process and
the agent's: the dashboard sees only the deployment server's answers.

With ``path`` the keys are also kept in a file only the owner can read (``$ATOLL_HOME/run/``), so a
deployment server that adopts running agents after a crash or ``restart-server`` still holds theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

AGENT_KEY_ENV = "ATOLL_DEPLOY_AGENT_KEY"


class AgentKeys:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._keys: dict[str, str] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                kept = json.loads(path.read_text())
                self._keys = {str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else {}

    def key_for(self, name: str) -> str:
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = secrets.token_urlsafe(32)
            self._keep()
        return key

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_for(name)}"}

    def forget(self, name: str) -> None:
        if self._keys.pop(name, None) is not None:
            self._keep()

    def _keep(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self._keys, handle)
        os.replace(scratch, self.path)
