"""The SQLite schema as an ordered list of named migrations, each recorded once applied."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_sessions",
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            messages TEXT NOT NULL
        );
        CREATE INDEX sessions_updated ON sessions (updated);
        """,
    ),
    (
        # One row per message, so a turn appends its messages instead of rewriting the transcript.
        "002_message_rows",
        """
        CREATE TABLE messages (
            session_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (session_id, seq)
        ) WITHOUT ROWID;
        INSERT INTO messages (session_id, seq, body)
            SELECT sessions.id, CAST(entry.key AS INTEGER), entry.value
            FROM sessions, json_each(sessions.messages) AS entry;
        ALTER TABLE sessions DROP COLUMN messages;
        """,
    ),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; return their names."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, script in MIGRATIONS:
        if name in done:
            continue
        with db:
            db.executescript(script)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied
