"""Approval rules, yes-words, expiry, and background requests, at the loop's level (the HTTP round
trips are in tests/integration/test_approvals.py)."""

from __future__ import annotations

import time
from typing import Any

from atoll.agent import AgentRunner, RunFinished
from atoll.agent.activity import is_background_task
from atoll.agent.approvals import ApprovalRules, Approvals, drop_questions, is_yes
from atoll.agent.events import ApprovalRequested
from atoll.agent.loop import RunRequest
from atoll.messages import GenerationOptions, Message, ToolCall, ToolSpec
from tests.support.replay import RecordingToolbox, ReplayProvider, load_corpus

TOOLS = load_corpus()["tools"]
TITLE_TASK = ("### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n"
              "<chat_history>\nUSER: write the file\n</chat_history>")


def test_yes_words_are_documented_and_tolerant() -> None:
    for text in ("yes", "Y", "OK.", "okay!", "Approve", "approved", "allow", "Go ahead!", "sure", " Yes! "):
        assert is_yes(text), text
    for text in ("no", "yes but not now", "nope", "", "maybe", "yes please do it twice"):
        assert not is_yes(text), text


def test_answered_questions_and_their_replies_leave_the_history() -> None:
    def says(role: str, text: str) -> Message:
        return Message(role=role, content=text)  # type: ignore[arg-type]

    def asks() -> Message:
        return says("assistant", "Reply **yes** to allow it, or anything else to refuse. (approval id: abc123)")

    history = [says("user", "delete it"), asks(), says("user", "yes"), says("tool", "deleted"),  # 0-3
               says("assistant", "not a question (approval id: ABC)"), says("user", "and the other?"),  # 4-5
               asks(), asks(), says("user", "no"), says("assistant", "(approval id: 0000zz) noted"),  # 6-9
               says("tool", "a result, not a reply"), says("user", "ok"), asks(), says("user", "yes")]  # 10-13
    kept = drop_questions(history)
    assert [next(i for i, m in enumerate(history) if m is k) for k in kept] == [0, 3, 4, 5, 10, 11, 13]
    waiting = [says("user", "delete it"), asks()]
    assert drop_questions(waiting) == waiting  # the last message is a question nobody answered yet
    plain = [says("user", "hi"), says("assistant", "hello")]
    assert drop_questions(plain) == plain and drop_questions(plain) is not plain


def test_rules_by_source_and_everywhere() -> None:
    rules = ApprovalRules({"files": ["write_*"], "agent:mailer": True, "time": False}, ["delete_*"])
    assert rules.needs(ToolSpec(name="write_file", source="files"))
    assert not rules.needs(ToolSpec(name="read_file", source="files"))
    assert rules.needs(ToolSpec(name="ask_mailer", source="agent:mailer"))
    assert rules.needs(ToolSpec(name="delete_all", source="time"))
    assert not rules.needs(ToolSpec(name="now", source="time"))
    assert not ApprovalRules({"time": False}, [])


def test_approvals_expire_and_are_bound_to_their_key() -> None:
    approvals = Approvals(ApprovalRules(everywhere=["*"]), timeout_s=0.05)
    pending = approvals.open("key-a", ToolCall(name="write_file"), [])
    assert approvals.get(pending.id, "key-a") is pending and approvals.get(pending.id, "key-b") is None
    time.sleep(0.1)
    assert approvals.get(pending.id, "key-a") is None and approvals.counts["expired"] == 1


def test_open_webui_background_tasks_are_recognised() -> None:
    assert is_background_task([Message(role="user", content=TITLE_TASK)])
    assert not is_background_task([Message(role="user", content="### Task: write a poem")])


async def test_background_requests_run_no_tools_and_ask_nothing() -> None:
    toolbox = RecordingToolbox(TOOLS)
    replies = [{"tool_calls": [{"name": "write_file", "arguments": {"path": "x", "content": "y"}}]}]
    approvals = Approvals(ApprovalRules(everywhere=["write_*"]))
    provider = ReplayProvider(replies)
    agent = AgentRunner(provider, toolbox, system_prompt=None, defaults=GenerationOptions(),
                        approvals=approvals)
    events: list[Any] = [e async for e in agent.run(RunRequest([Message(role="user", content=TITLE_TASK)],
                                                                background=True))]
    assert not toolbox.ran and not any(isinstance(e, ApprovalRequested) for e in events)
    assert approvals.counts["requested"] == 0
    assert all(request.tools == [] for request in provider.requests)  # no agent tools on offer
    assert isinstance(events[-1], RunFinished)
