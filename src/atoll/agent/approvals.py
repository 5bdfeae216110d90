"""Human approval before chosen tools run, in any chat client.

When the model calls a tool that needs approval, the turn ends with a question in plain words
carrying a short approval id. The user's next message decides: one of :data:`YES_WORDS` runs the
call and the loop goes on; anything else refuses it and the model is told so. The pending call
is found from the id in the previous assistant message (clients such as Open WebUI resend the
whole history; no server-side session is needed) plus the state kept here under that id: the
round the model was in, bound to the caller's API key, expiring after ``approval_timeout``. An id
runs its call at most once: a resent "yes" (Open WebUI's regenerate) gets the recorded result.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from atoll.messages import Message, ToolCall, ToolResult, ToolSpec

#: Replies that approve (case-insensitive, surrounding punctuation and spaces ignored).
YES_WORDS = ("yes", "y", "ok", "okay", "approve", "approved", "allow", "go ahead", "sure")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_IN_TEXT = re.compile(r"\(approval id: ([a-z0-9]{6})\)")
_ID_MARK = "(approval id: "  # what every match of _ID_IN_TEXT contains

State = Literal["pending", "approved", "denied", "expired"]


def is_yes(text: str) -> bool:
    words = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    return words in YES_WORDS


@dataclass
class ApprovalRules:
    """Which tools need approval: per source (an MCP server name, or ``agent:<child>``) ``True``
    or globs, and globs over every source (``[agent] require_approval``)."""

    by_source: dict[str, bool | list[str]] = field(default_factory=dict)
    everywhere: list[str] = field(default_factory=list)

    def needs(self, spec: ToolSpec) -> bool:
        if any(fnmatch.fnmatchcase(spec.name, glob) for glob in self.everywhere):
            return True
        rule = self.by_source.get(spec.source, False)
        if isinstance(rule, bool):
            return rule
        return any(fnmatch.fnmatchcase(spec.name, glob) for glob in rule)

    def __bool__(self) -> bool:
        return bool(self.everywhere) or any(self.by_source.values())


@dataclass
class Pending:
    id: str
    owner: str
    call: ToolCall
    #: The round the model was in: its assistant message and the results of the calls that ran.
    round: list[Message]
    created: float
    state: State = "pending"
    decided_by: str = ""
    reason: str = ""
    #: Set once the call has run (or was refused): a resent decision gets this, never a second run.
    result: ToolResult | None = None

    def public(self) -> dict[str, object]:
        return {"id": self.id, "tool": self.call.name, "arguments": self.call.arguments, "state": self.state,
                "created_at": self.created, "decided_by": self.decided_by or None, "reason": self.reason or None}


def question(pending: Pending) -> str:
    arguments = json.dumps(pending.call.arguments, ensure_ascii=False)
    return (f"I would like to run the tool **{pending.call.name}** with {arguments}. "
            f"Reply **yes** to allow it, or anything else to refuse. (approval id: {pending.id})")


def approval_id_in(text: str) -> str | None:
    found = _ID_IN_TEXT.findall(text)
    return found[-1] if found else None


class Approvals:
    """Pending approvals of one agent server, in memory (they expire within minutes)."""

    def __init__(self, rules: ApprovalRules, timeout_s: float = 600.0) -> None:
        self.rules = rules
        self.timeout_s = timeout_s
        self._pending: dict[str, Pending] = {}
        #: requested / approved / denied / expired, for /metrics.
        self.counts: Counter[str] = Counter()

    def open(self, owner: str, call: ToolCall, round_messages: list[Message]) -> Pending:
        self._expire()
        approval_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))
        pending = Pending(approval_id, owner, call, round_messages, time.time())
        self._pending[approval_id] = pending
        self.counts["requested"] += 1
        return pending

    def get(self, approval_id: str, owner: str) -> Pending | None:
        """The approval if it exists for this caller and has not expired."""
        self._expire()
        pending = self._pending.get(approval_id)
        return pending if pending is not None and secrets.compare_digest(pending.owner, owner) else None

    def listing(self, owner: str) -> list[Pending]:
        self._expire()
        return [p for p in self._pending.values() if p.owner == owner and p.state == "pending"]

    def decide(self, pending: Pending, approve: bool, *, by: str, reason: str = "") -> None:
        if pending.state != "pending":
            return
        pending.state = "approved" if approve else "denied"
        pending.decided_by, pending.reason = by, reason
        self.counts[pending.state] += 1

    def _expire(self) -> None:
        now = time.time()
        for key, pending in list(self._pending.items()):
            if now - pending.created > self.timeout_s:
                if pending.state == "pending":
                    self.counts["expired"] += 1
                del self._pending[key]


def find_pending(approvals: Approvals, messages: list[Message], owner: str) -> tuple[Pending, int] | None:
    """The approval the user's last message answers, and the index of the question it answers."""
    if len(messages) < 2 or messages[-1].role != "user":
        return None
    at = len(messages) - 2
    while at >= 0 and messages[at].role != "assistant":
        at -= 1
    approval_id = approval_id_in(messages[at].content) if at >= 0 else None
    pending = approvals.get(approval_id, owner) if approval_id else None
    return (pending, at) if pending is not None else None


def drop_questions(messages: list[Message]) -> list[Message]:
    """History without answered approval questions and the replies to them: the model sees the
    call and its result (or refusal) instead, in the turn that resumed.

    A question is answered when a message follows it; its reply is the user message right after
    it (or after the questions right after it), unless that is the last message. One scan finds
    the questions (a substring test before the pattern), so a long conversation without any costs
    a filter, not a loop."""
    last = len(messages) - 1
    asked = [index for index, message in enumerate(messages[:last]) if message.role == "assistant"
             and _ID_MARK in message.content and approval_id_in(message.content)]
    if not asked:
        return list(messages)
    dropped = set(asked)
    dropped.update(index + 1 for index in asked
                   if index + 1 < last and messages[index + 1].role == "user")
    return [message for index, message in enumerate(messages) if index not in dropped]
