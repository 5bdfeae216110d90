"""The agent's MCP tool: its name and input schema, and its arguments -> the neutral request."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from atoll.agent.loop import RunRequest
from atoll.errors import RequestError
from atoll.messages import Message
from atoll.sessions.ids import check_session_id

#: What the agent's tool takes: one message, and the session to continue (a new one without it).
ASK_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask or tell the agent."},
        "session_id": {"type": "string", "description": "Continue this conversation (the session_id of an "
                                                        "earlier answer); leave it out to start a new one."},
    },
    "required": ["message"],
}

#: What its result carries besides the answer's text.
ASK_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "session_id": {"type": "string"},
                   "done_reason": {"type": "string"}},
    "required": ["answer", "session_id"],
}


def tool_name(agent_name: str) -> str:
    """An MCP tool name for an agent name (MCP names allow letters, digits, ``_``, ``-`` and ``.``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", agent_name)[:128]


def tool_description(description: str, capabilities: list[str]) -> str:
    text = description or "An atoll agent."
    if capabilities:
        text += " Capabilities: " + ", ".join(capabilities) + "."
    return text + " Pass session_id from an earlier answer to continue that conversation."


@dataclass
class AskTurn:
    run: RunRequest
    session_id: str


def ask_turn(arguments: dict[str, Any] | None) -> AskTurn:
    """One user turn in a session (a new session unless ``session_id`` names one)."""
    arguments = arguments or {}
    message, session_id = arguments.get("message"), arguments.get("session_id")
    if not isinstance(message, str) or not message.strip():
        raise RequestError("'message' is required: the text to send to the agent")
    if session_id is not None and not isinstance(session_id, str):
        raise RequestError("'session_id' must be a string when given")
    session = check_session_id(session_id) or uuid.uuid4().hex
    return AskTurn(RunRequest([Message(role="user", content=message)]), session)
