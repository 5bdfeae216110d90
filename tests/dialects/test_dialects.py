"""The dialect layer's shape: each dialect parses into the same neutral request and knows no other
dialect; content parts and tool-result pairing behave the same whichever dialect a message came in."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import atoll.dialects
from atoll.dialects import error_body_for
from atoll.dialects.ollama.parse import chat_run_request as ollama_chat
from atoll.dialects.openai.parse import chat_run_request as openai_chat
from atoll.dialects.openai.wire import ChatCompletionRequest
from atoll.errors import RequestError
from atoll.wire import ChatRequest

DIALECTS = Path(atoll.dialects.__file__).parent
PNG = "iVBORw0KGgo="


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("dialect", sorted(p.name for p in DIALECTS.iterdir() if (p / "__init__.py").exists()))
def test_a_dialect_imports_no_other_dialect(dialect: str) -> None:
    others = {p.name for p in DIALECTS.iterdir() if (p / "__init__.py").exists()} - {dialect}
    for module in (DIALECTS / dialect).glob("*.py"):
        for name in _imported_modules(module):
            assert not any(name.startswith(f"atoll.dialects.{other}") for other in others), (module, name)


def _both(messages: list[dict[str, Any]]) -> list[Any]:
    """The neutral messages each dialect makes of the same wire messages."""
    native = ollama_chat(ChatRequest.model_validate({"model": "m", "messages": messages})).messages
    openai = openai_chat(ChatCompletionRequest.model_validate({"model": "m", "messages": messages})).messages
    return [native, openai]


def test_content_parts_become_text_and_images_in_every_dialect() -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    parts = [{"type": "text", "text": "look "}, image, {"type": "input_text", "text": "here"}]
    for messages in _both([{"role": "Developer", "content": "be brief"}, {"role": "user", "content": parts}]):
        assert [m.role for m in messages] == ["system", "user"]
        assert messages[1].content == "look here" and messages[1].images == [PNG]


def test_tool_results_are_paired_with_their_calls_in_every_dialect() -> None:
    calls = [{"id": "a", "function": {"name": "first", "arguments": "{}"}},
             {"id": "b", "function": {"name": "second", "arguments": {"x": 1}}}]
    wire = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "content": "2", "tool_call_id": "b"}, {"role": "tool", "content": "1"}]
    for messages in _both(wire):
        assert [(m.tool_name, m.tool_call_id) for m in messages[2:]] == [("second", "b"), ("first", "a")]
        assert messages[1].tool_calls is not None and messages[1].tool_calls[1].arguments == {"x": 1}


@pytest.mark.parametrize("bad", [{"role": "robot", "content": "x"},
                                 {"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}])
def test_bad_messages_are_refused_the_same_way_in_every_dialect(bad: dict[str, Any]) -> None:
    with pytest.raises(RequestError, match=r"messages\[0\]"):
        ollama_chat(ChatRequest.model_validate({"model": "m", "messages": [bad]}))
    with pytest.raises(RequestError, match=r"messages\[0\]"):
        openai_chat(ChatCompletionRequest.model_validate({"model": "m", "messages": [bad]}))


def test_which_dialect_an_error_is_worded_in_is_decided_by_path() -> None:
    assert error_body_for("/v1/chat/completions")("nope", 404)["error"]["type"] == "not_found_error"
    assert error_body_for("/api/chat")("nope", 404) == {"error": "nope", "detail": "nope"}
