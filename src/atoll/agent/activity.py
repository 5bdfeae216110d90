"""Tool activity made visible in clients that only show message text.

``details`` renders each finished call as the block Open WebUI (0.12.4) draws as a collapsible
tool call: ``<details type="tool_calls" done="true" id=… name=… arguments=… result=…>`` followed
by ``<summary>Tool Executed</summary>``. Open WebUI's markdown extension reads the attributes with
``(\\w+)="(.*?)"`` and HTML-unescapes them, so values are HTML-escaped JSON (arguments as an
object, the result as a JSON string), and the block must start on a line of its own and end with
``</details>`` and a newline. ``text`` writes one plain line per call; ``off`` shows nothing.

``auto`` picks ``details`` for Open WebUI and ``off`` for everything else. Open WebUI's backend is
the client of an Ollama server: it sends only ``Content-Type`` and ``Authorization`` (plus
``X-OpenWebUI-User-*`` / ``X-OpenWebUI-Chat-Id`` when ``ENABLE_FORWARD_USER_INFO_HEADERS`` is on)
from an aiohttp session, so its User-Agent is aiohttp's default ``Python/3.x aiohttp/3.y``.
ollama-python (and LangChain over it) send ``ollama-python/…``, ollama-js ``ollama-js/…``, the
openai SDK ``OpenAI/Python …``; curl ``curl/…``: those get clean content.

Incoming history is cleaned of these blocks (and of approval questions) before it reaches the
session or the model: :func:`strip_activity`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from atoll.agent.events import ApprovalRequested, ToolFinished, ToolStarted
from atoll.errors import RequestError
from atoll.messages import Message

Activity = Literal["auto", "details", "text", "off"]
MODES: tuple[str, ...] = ("auto", "details", "text", "off")
HEADER = "x-atoll-tool-activity"
OPTION = "tool_activity"

_RESULT_CHARS = 4000
_TEXT_CHARS = 300
_BLOCK = re.compile(r'<details type="tool_calls"[^>]*>\n<summary>[^<]*</summary>\n</details>\n?')
_TEXT_LINE = re.compile(r"^> 🔧 .*$\n?", re.MULTILINE)
_OPEN_WEBUI_AGENT = re.compile(r"^Python/[\d.]+ aiohttp/", re.IGNORECASE)


def choose_mode(headers: Mapping[str, str], options: dict[str, Any], default: str) -> str:
    """The mode for this request: the header, else the ``options`` key, else the agent's default;
    ``auto`` resolved from the client (see the module doc). A wrong value is a 400."""
    requested = headers.get(HEADER) or options.pop(OPTION, None) or default
    if not isinstance(requested, str) or requested.lower() not in MODES:
        raise RequestError(f"tool activity must be one of {', '.join(MODES)}, got {requested!r} "
                           f"(header X-Atoll-Tool-Activity or options.{OPTION})")
    mode = requested.lower()
    if mode == "auto":
        return "details" if is_open_webui(headers) else "off"
    return mode


def is_open_webui(headers: Mapping[str, str]) -> bool:
    if any(name.lower().startswith("x-openwebui-") for name in headers):
        return True
    return bool(_OPEN_WEBUI_AGENT.match(headers.get("user-agent", "")))


def render(event: ToolFinished, mode: str) -> str:
    """The text shown for one finished call in ``mode`` ("" for ``off``)."""
    call, result = event.call, event.result
    content = result.content if len(result.content) <= _RESULT_CHARS else result.content[:_RESULT_CHARS] + " …"
    if mode == "details":
        arguments = html.escape(json.dumps(call.arguments, ensure_ascii=False))
        shown = html.escape(json.dumps(content, ensure_ascii=False))
        return (f'\n<details type="tool_calls" done="true" id="{html.escape(call.id)}" '
                f'name="{html.escape(call.name)}" arguments="{arguments}" result="{shown}" files="" embeds="">\n'
                f"<summary>Tool Executed</summary>\n</details>\n")
    if mode == "text":
        summary = " ".join(content.split())
        if len(summary) > _TEXT_CHARS:
            summary = summary[:_TEXT_CHARS] + " …"
        outcome = "failed" if result.is_error else "→"
        return f"\n> 🔧 {call.name} {json.dumps(call.arguments, ensure_ascii=False)} {outcome} {summary}\n\n"
    return ""


def strip_activity(messages: list[Message]) -> list[Message]:
    """Assistant messages without the activity atoll rendered into them (clients echo it back)."""
    cleaned = []
    for message in messages:
        if message.role == "assistant" and ("<details" in message.content or "> 🔧 " in message.content):
            text = _TEXT_LINE.sub("", _BLOCK.sub("", message.content)).strip()
            message = message.model_copy(update={"content": text})
        cleaned.append(message)
    return cleaned


def progress(event: ToolStarted | ToolFinished | ApprovalRequested) -> dict[str, Any]:
    """Tool activity as structured data: the ``atoll`` field of native chunks and ``/v1`` chunks."""
    if isinstance(event, ApprovalRequested):
        return {"event": "approval_required", "approval_id": event.approval_id, "id": event.call.id,
                "name": event.call.name, "arguments": event.call.arguments}
    if isinstance(event, ToolStarted):
        return {"event": "tool_call", "id": event.call.id, "name": event.call.name,
                "arguments": event.call.arguments, "source": event.source}
    return {"event": "tool_result", "id": event.call.id, "name": event.call.name,
            "is_error": event.result.is_error, "duration_ms": round(event.result.duration_s * 1000, 1),
            "content": event.result.content[:2000]}


def is_background_task(messages: list[Message]) -> bool:
    """Open WebUI's own housekeeping requests (chat title, tags, follow-up questions, search
    queries, image prompts): one user message built from its ``### Task:`` templates around the
    ``<chat_history>``. They must never run tools or ask for approvals."""
    last = messages[-1] if messages else None
    return (last is not None and last.role == "user" and last.content.lstrip().startswith("### Task:")
            and "<chat_history>" in last.content)
