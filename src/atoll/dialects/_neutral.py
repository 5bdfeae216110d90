"""What every dialect's parser shares: one way to build a neutral message (role names, content
parts, tool calls), tool results paired with the calls they answer, and function tools as specs."""

from __future__ import annotations

from typing import Any

from atoll.errors import RequestError
from atoll.messages import Message, Role, ToolCall, ToolSpec
from atoll.wire import WireTool, WireToolCall

_ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")

#: Content may be a string or a list of parts; these part types carry text.
_TEXT_PARTS = ("text", "input_text")


def _role(role: str, index: int) -> Role:
    """Roles are matched case-insensitively, and OpenAI's ``developer`` is a system message."""
    name = role.strip().lower()
    name = "system" if name == "developer" else name
    for known in _ROLES:
        if name == known:
            return known
    raise RequestError(f"messages[{index}].role: unknown role '{role}' (expected system, user, assistant or tool)")


def _image(part: dict[str, Any], index: int) -> str:
    """Images come as data URLs (``image_url`` parts); providers want bare base64."""
    url = part.get("image_url")
    url = url.get("url", "") if isinstance(url, dict) else str(url or "")
    if not url.startswith("data:"):
        raise RequestError(f"messages[{index}]: only base64 data URLs are supported for images")
    return url.partition(",")[2]


def text_and_images(content: str | list[dict[str, Any]] | None, index: int) -> tuple[str, list[str]]:
    """Content as text plus images: a plain string, or OpenAI-style parts (text kept, images decoded)."""
    if not isinstance(content, list):
        return content or "", []
    text = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type", "text")
                   in _TEXT_PARTS)
    images = [_image(p, index) for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    return text, images


def neutral_message(index: int, role: str, content: str | list[dict[str, Any]] | None, *,
                    thinking: str | None = None, images: list[str] | None = None,
                    tool_calls: list[WireToolCall] | None = None, tool_name: str | None = None,
                    tool_call_id: str | None = None) -> Message:
    """The neutral message for ``messages[index]`` of any dialect."""
    text, part_images = text_and_images(content, index)
    calls = [ToolCall(id=c.id or f"call_{index}_{n}", name=c.function.name, arguments=c.function.arguments)
             for n, c in enumerate(tool_calls or [])]
    return Message(role=_role(role, index), content=text, thinking=thinking,
                   images=[*(images or []), *part_images] or None, tool_calls=calls or None,
                   tool_name=tool_name, tool_call_id=tool_call_id)


def paired(messages: list[Message]) -> list[Message]:
    """Give tool results the tool name the client left out (langchain sends neither ``tool_name``
    nor ``tool_call_id``): match by id, else by order after the calling turn."""
    pending: list[ToolCall] = []
    for message in messages:
        if message.role == "assistant":
            pending = list(message.tool_calls or [])
        elif message.role == "tool" and pending:
            match = next((c for c in pending if c.id == message.tool_call_id), None) or pending[0]
            pending.remove(match)
            message.tool_name = message.tool_name or match.name
            message.tool_call_id = message.tool_call_id or match.id
    return messages


def tool_specs(tools: list[WireTool] | None) -> list[ToolSpec]:
    """Function tools the client offers (and will run itself); both dialects use this shape."""
    return [
        ToolSpec(name=t.function.name, description=t.function.description or "",
                 parameters=t.function.parameters or {"type": "object", "properties": {}}, source="client")
        for t in tools or []
    ]
