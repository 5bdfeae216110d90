"""The management API's admin token: configured (``admin_token`` / ``ATOLL_ADMIN_TOKEN``), or
generated on first start into ``$ATOLL_HOME/admin_token`` (mode 0600), where the CLI reads it.

The token is never printed or logged; the start-up block shows the file's path.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from atoll.config import atoll_home
from atoll.errors import ConfigError

TOKEN_FILE_NAME = "admin_token"


def admin_token_path(home: Path | None = None) -> Path:
    return (home or atoll_home()) / TOKEN_FILE_NAME


def read_admin_token(home: Path | None = None) -> str | None:
    """The generated token, if there is one (for CLI commands)."""
    try:
        token = admin_token_path(home).read_text().strip()
    except OSError:
        return None
    return token or None


def ensure_admin_token(home: Path | None = None) -> str:
    """The generated token, created (0600, owner only) when missing. A file others can read is
    refused: anyone who can read it can deploy code as this user."""
    path = admin_token_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"the admin token file is readable by others (mode {mode:o}); "
                          f"run: chmod 600 {path}", path=str(path))
    token = read_admin_token(home)
    if token is None:
        raise ConfigError("the admin token file is empty; delete it to have a new token generated",
                          path=str(path))
    return token
