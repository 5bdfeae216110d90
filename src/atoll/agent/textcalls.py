"""Tool calls that a model wrote as text instead of returning them as structured calls.

Small local models often do: their chat template teaches a text format (Hermes/Qwen
``<tool_call>{…}</tool_call>``, Llama 3.1 ``<|python_tag|>{…}`` and ``<function=name>{…}</function>``,
Llama 3.2 bare ``{"name": …, "parameters": …}`` or ``[func(a=1)]``, Mistral ``[TOOL_CALLS][…]`` /
``[TOOL_CALLS]name[ARGS]{…}``) and the serving stack does not always turn that back into a call; or
the model wraps the JSON in a ```` ```json ```` fence. :func:`find_text_calls` recognises these
shapes and returns calls **only for tools that exist**; text that names no known tool is left alone
(it is an answer).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import json_repair

from atoll.messages import ToolCall

_NAME_KEYS = ("name", "function", "tool", "tool_name", "function_name", "method")
_ARGS_KEYS = ("arguments", "parameters", "args", "input", "tool_input", "params")

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json|tool_call|tool_code|python)?\s*\n?(.*?)```", re.DOTALL)
_PYTHON_TAG = "<|python_tag|>"
_FUNCTION_TAG = re.compile(r"<function=([\w.-]+)>\s*(.*?)\s*(?:</function>|$)", re.DOTALL)
_MISTRAL = "[TOOL_CALLS]"
_MISTRAL_ARGS = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*\[ARGS\]")
_END_TOKENS = re.compile(r"<\|(?:eom_id|eot_id|im_end|end|tool_call)\|>|</s>")
_OBJECT_START = re.compile(r"[\[{]")

#: Characters after which streamed text may turn out to be a call: held back until the round ends.
TRIGGERS = ("<tool_call>", "<|python_tag|>", "<function=", "<|tool_call|>", "[TOOL_CALLS]", "{", "[", "```")


@dataclass
class TextCalls:
    calls: list[ToolCall]
    #: The text with the call markup removed (prose around the calls), stripped.
    remainder: str


def find_text_calls(text: str, known: set[str]) -> TextCalls | None:
    """The calls written in ``text`` to tools named in ``known``, or ``None`` if there are none.

    JSON nested deeper than Python's parsers go (a prompt injection can make a model write it) is
    no call in that shape, never a ``RecursionError`` out of the agent's turn."""
    if not known or not text.strip():
        return None
    cleaned = _END_TOKENS.sub("", text)
    for finder in (_tagged, _function_tag, _mistral, _python_tag, _fenced, _whole, _embedded):
        try:
            found = finder(cleaned, known)
        except RecursionError:
            continue
        if found is not None and found.calls:
            return found
    return None


def hold_from(text: str) -> int | None:
    """Where in streamed ``text`` a possible call starts (the rest waits for the round's end)."""
    positions = [i for i in (text.find(t) for t in TRIGGERS) if i >= 0]
    return min(positions) if positions else None


# ---- the shapes ----------------------------------------------------------------------------------


def _tagged(text: str, known: set[str]) -> TextCalls | None:
    """Hermes / Qwen 2.5 / Qwen 3: ``<tool_call>{"name": …, "arguments": …}</tool_call>``, one per call."""
    if "<tool_call>" not in text:
        return None
    calls = [c for body in _TAGGED.findall(text) for c in _calls_in(body, known)]
    return TextCalls(calls, _TAGGED.sub("", text).strip())


def _function_tag(text: str, known: set[str]) -> TextCalls | None:
    """Llama 3.1 custom tools: ``<function=name>{"arg": …}</function>``."""
    calls = []
    for name, body in _FUNCTION_TAG.findall(text):
        arguments = _loads(body) if body else {}
        if name in known:
            calls.append(ToolCall(name=name, arguments=arguments if isinstance(arguments, dict) else {}))
    return TextCalls(calls, _FUNCTION_TAG.sub("", text).strip()) if calls else None


def _mistral(text: str, known: set[str]) -> TextCalls | None:
    """Mistral: ``[TOOL_CALLS][{…}, …]`` (v3) or ``[TOOL_CALLS]name[ARGS]{…}`` (v11+), repeated."""
    if _MISTRAL not in text:
        return None
    head, _, rest = text.partition(_MISTRAL)
    calls: list[ToolCall] = []
    for part in rest.split(_MISTRAL):
        named = _MISTRAL_ARGS.match(part)
        if named:
            name = named.group(1)
            arguments = _loads(part[named.end():])
            if name in known:
                calls.append(ToolCall(name=name, arguments=arguments if isinstance(arguments, dict) else {}))
        else:
            calls.extend(_calls_in(part, known))
    return TextCalls(calls, head.strip())


def _python_tag(text: str, known: set[str]) -> TextCalls | None:
    """Llama 3.1: ``<|python_tag|>{"name": …, "parameters": …}`` (several separated by ``;``)."""
    if _PYTHON_TAG not in text:
        return None
    head, _, rest = text.partition(_PYTHON_TAG)
    calls = [c for piece in _split_semicolons(rest) for c in _calls_in(piece, known)]
    return TextCalls(calls, head.strip())


def _fenced(text: str, known: set[str]) -> TextCalls | None:
    """A call in a Markdown code fence (```json … ```)."""
    calls = [c for body in _FENCED.findall(text) for c in _calls_in(body, known)]
    return TextCalls(calls, _FENCED.sub("", text).strip()) if calls else None


def _whole(text: str, known: set[str]) -> TextCalls | None:
    """Llama 3.2 and many others: the whole message is the call (JSON, a JSON list, or pythonic)."""
    return TextCalls(_calls_in(text, known), "")


def _embedded(text: str, known: set[str]) -> TextCalls | None:
    """Prose, then a JSON call object: ``Sure! {"name": "x", "arguments": {…}}``."""
    for match in _OBJECT_START.finditer(text):
        calls = _calls_in(text[match.start():], known)
        if calls:
            return TextCalls(calls, text[:match.start()].strip())
    return None


# ---- from a piece of text to calls ----------------------------------------------------------------


def _calls_in(body: str, known: set[str]) -> list[ToolCall]:
    body = body.strip()
    if not body:
        return []
    if body.startswith(("{", "[")):
        calls = [c for value in _values(body) for c in _from_value(value, known)]
        if calls:
            return calls
    return _pythonic(body, known)


def _values(body: str) -> list[Any]:
    """The JSON values in ``body``: usually one, sometimes several one after another."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while position < len(body):
        try:
            value, end = decoder.raw_decode(body, position)
        except ValueError:
            break
        values.append(value)
        position = end
        while position < len(body) and body[position] in " \t\r\n,;":
            position += 1
    if position < len(body) and not values:
        return [_loads(body)]
    return values


def _from_value(value: Any, known: set[str]) -> Iterator[ToolCall]:
    if isinstance(value, list):
        for item in value:
            yield from _from_value(item, known)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("function"), dict):  # OpenAI shape: {"type": "function", "function": {…}}
        yield from _from_value(value["function"], known)
        return
    if isinstance(value.get("tool_calls"), list):
        yield from _from_value(value["tool_calls"], known)
        return
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None or name not in known:
        return
    arguments: Any = next((value[k] for k in _ARGS_KEYS if k in value), {})
    if isinstance(arguments, str):
        parsed = _loads(arguments)
        arguments = parsed if isinstance(parsed, dict) else {"_raw": arguments}
    if not isinstance(arguments, dict):
        arguments = {"_raw": json.dumps(arguments)}
    yield ToolCall(name=name, arguments=arguments)


def _loads(text: str) -> Any:
    """Strict JSON first; then the repairs small models need (quotes, commas, unclosed brackets)."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        value, _ = json.JSONDecoder().raw_decode(text)  # a valid value followed by chatter
        return value
    except ValueError:
        pass
    try:
        return json_repair.loads(text)
    except (ValueError, RecursionError):
        return None


def _pythonic(body: str, known: set[str]) -> list[ToolCall]:
    """``[get_weather(city="Paris"), …]`` or ``get_weather(city="Paris")`` (Llama 3.2/4 pythonic)."""
    if "(" not in body or len(body) > 20_000:
        return []
    aliases = {f"_atoll_tool_{n}": name for n, name in enumerate(sorted(known)) if not name.isidentifier()}
    for alias, name in aliases.items():  # "get-sum(" is not Python: parse it under another name
        body = body.replace(f"{name}(", f"{alias}(")
    try:
        tree = ast.parse(body.strip().rstrip(";"), mode="eval").body
    except SyntaxError:
        return []
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls: list[ToolCall] = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return []
        name = ast.unparse(node.func)
        name = aliases.get(name, name)
        if name not in known:
            return []
        try:
            arguments: dict[str, Any] = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            return []
        calls.append(ToolCall(name=name, arguments=arguments))
    return calls


def _split_semicolons(text: str) -> list[str]:
    """Llama 3.1 separates several JSON calls with ``;``; split only between objects."""
    return re.split(r"(?<=})\s*;\s*(?={)", text.strip())
