"""Session ids: what a client may name a session (header ``X-Session-ID``, body ``session_id``, or
the id carried in ``/api/generate``'s ``context``). Checked before any work starts, so a bad id is a
400 and never a failure halfway through a generation."""

from __future__ import annotations

import re

from atoll.errors import RequestError

SESSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def check_session_id(value: str | None, where: str = "session_id") -> str | None:
    """``value`` when it is a valid id (None for none or an empty one); a ``RequestError`` naming
    ``where`` otherwise."""
    if not value:
        return None
    if not SESSION_ID.fullmatch(value):
        raise RequestError(f"invalid {where}: use 1-128 characters from letters, digits, '.', '_', ':' and '-'")
    return value
