"""Where an agent's sessions live: they belong to the agent, not to one version of its files.

Without an explicit ``[server] session_db``, an agent keeps its sessions in
``$ATOLL_HOME/sessions/<slug of the agent name>.db``, so a redeploy (which moves the agent's folder to
``.previous/``) or a rollback keeps every conversation, and the built-in agent's store stays out of
the working directory. An explicit ``session_db`` (relative to the agent file) still wins.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from atoll.config import AgentConfig, atoll_home

logger = logging.getLogger(__name__)

#: The file name agents used before sessions moved under ``$ATOLL_HOME`` (beside the agent file).
LEGACY_NAME = "sessions.db"
#: SQLite keeps a WAL and a shared-memory file beside the database; they move with it.
SQLITE_SUFFIXES = ("", "-wal", "-shm")

_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def slug(name: str) -> str:
    """A file name for ``name``: lower case (agent names are unique regardless of case), only
    ``[a-z0-9._-]``; when that changed the name, a short hash keeps distinct names distinct."""
    lowered = name.lower()
    safe = _UNSAFE.sub("-", lowered).strip(".-")[:64] or "agent"
    if safe == lowered:
        return safe
    return f"{safe}-{hashlib.sha256(lowered.encode()).hexdigest()[:8]}"


def sessions_dir() -> Path:
    return atoll_home() / "sessions"


def agent_session_file(name: str) -> Path:
    """The default session database of the agent called ``name``."""
    return sessions_dir() / f"{slug(name)}.db"


def move_database(source: Path, target: Path) -> bool:
    """Move a SQLite database with its WAL files; False when there is nothing at ``source``."""
    if not source.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in SQLITE_SUFFIXES:
        part = Path(f"{source}{suffix}")
        if part.exists():
            os.replace(part, Path(f"{target}{suffix}"))
    return True


def session_file(config: AgentConfig) -> Path:
    """The agent's SQLite session file; moves a legacy ``sessions.db`` from beside the agent file."""
    if config.server.session_db is not None:
        return config.resolve_path(config.server.session_db)
    target = agent_session_file(config.agent.name)
    if config.source is not None and not target.exists():
        legacy = config.source.parent / LEGACY_NAME
        if move_database(legacy, target):
            logger.info("moved the sessions of agent '%s' from %s to %s", config.agent.name, legacy, target)
    return target
