"""Server-side conversation sessions (the seed's "optional session tracking")."""

from atoll.sessions.manager import SessionManager, open_store
from atoll.sessions.store import SessionRecord, SessionStore

__all__ = ["SessionManager", "SessionRecord", "SessionStore", "open_store"]
