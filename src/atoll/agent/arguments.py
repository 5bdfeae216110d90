"""Checking a model's tool call before it runs: is the tool real, are the arguments what its input
schema asks for? Faults a small model commonly makes are repaired (arguments as a JSON string,
single quotes, trailing commas, numbers as strings, ``functions.`` prefixes, ``-``/``_`` mix-ups);
anything else becomes a precise error the model can act on, instead of a failed or wrong call."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import json_repair
import jsonschema

from atoll import toolschema
from atoll.client_json import parse_json
from atoll.messages import ToolCall, ToolSpec


@dataclass
class Checked:
    """A call ready to run (``error is None``) or the error result to give the model instead."""

    call: ToolCall
    error: str | None = None
    repaired: bool = False


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.rsplit(".", 1)[-1].lower())


def resolve_name(name: str, specs: dict[str, ToolSpec]) -> str | None:
    """The real tool ``name`` means: itself, or the one tool it matches ignoring case, ``-``/``_``
    and a ``functions.``-style prefix. ``None`` when there is no such single tool."""
    if name in specs:
        return name
    matches = [real for real in specs if _squash(real) == _squash(name)]
    return matches[0] if len(matches) == 1 else None


def unknown_tool_error(name: str, specs: dict[str, ToolSpec]) -> str:
    names = sorted(specs)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {_or_list(close)}?" if close else ""
    listing = ", ".join(names[:30]) + (" …" if len(names) > 30 else "")
    return (f"Error: there is no tool named {name!r}.{hint} The tools you can call are: {listing}. "
            "Call one of them, or answer without a tool.")


def check_call(call: ToolCall, specs: dict[str, ToolSpec]) -> Checked:
    """Resolve the name, repair the arguments, validate them against the tool's input schema."""
    real = resolve_name(call.name, specs)
    if real is None:
        return Checked(call, unknown_tool_error(call.name, specs))
    schema = specs[real].parameters or {}
    arguments, repaired = repair_arguments(call.arguments, schema)
    fixed = ToolCall(id=call.id, name=real, arguments=arguments if arguments is not None else {})
    repaired = repaired or real != call.name
    if arguments is None:
        raw = str(call.arguments.get("_raw", call.arguments))[:300]
        return Checked(fixed, f"Error: the arguments for {real!r} are not a JSON object: {raw!r}. "
                              f"Send a JSON object matching this schema: {_schema_text(schema)}", repaired)
    problem = validation_error(arguments, schema)
    if problem:
        return Checked(fixed, f"Error: invalid arguments for {real!r}: {problem}. Nothing was run. "
                              f"The tool's input schema: {_schema_text(schema)}", repaired)
    return Checked(fixed, None, repaired)


def repair_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """Arguments as an object (``None`` if they cannot be), and whether anything was changed."""
    repaired = False
    if set(arguments) == {"_raw"} and isinstance(arguments["_raw"], str):
        parsed = _parse_object(arguments["_raw"])
        if parsed is None:
            return None, False
        arguments, repaired = parsed, True
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if isinstance(properties, dict) and properties and len(arguments) == 1:
        # {"arguments": {...}} or {"parameters": {...}} around the real arguments
        (key, inner), = arguments.items()
        if key not in properties and key in ("arguments", "parameters", "args", "input") and isinstance(inner, dict):
            arguments, repaired = inner, True
    if isinstance(properties, dict):
        coerced = {key: _coerce(value, properties.get(key)) for key, value in arguments.items()}
        if coerced != arguments:
            arguments, repaired = coerced, True
    return arguments, repaired


def validation_error(arguments: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The first schema violation in plain words (which field, what was expected), or ``None``."""
    if not schema:
        return None
    try:
        validator = toolschema.validator(schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: (len(e.path), e.message))
    except (jsonschema.SchemaError, toolschema.Unresolvable, TypeError, ValueError):
        # a broken schema, or one referring outside itself (never fetched), is the tool's problem
        return None
    if not errors:
        return None
    error = errors[0]
    where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.path).lstrip(".")
    message = str(error.message)
    if error.validator == "required":
        return message.replace("is a required property", "is required but missing")
    if error.validator == "additionalProperties":
        return message
    expected = error.validator_value if error.validator == "type" else None
    detail = f"expected {expected}, got {error.instance!r}" if expected else message
    return f"field {where!r}: {detail}" if where else detail


def _parse_object(text: str) -> dict[str, Any] | None:
    try:
        value = parse_json(text)  # too deep is a ValueError too, never a RecursionError
    except ValueError:
        try:
            value = json_repair.loads(text)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, str):  # doubly encoded
        return _parse_object(value) if value.strip().startswith("{") else None
    return value if isinstance(value, dict) else None


def _coerce(value: Any, schema: Any) -> Any:
    """A string where the schema wants a number, boolean, object or array: convert it if it parses."""
    if not isinstance(schema, dict) or not isinstance(value, str):
        return value
    kind = schema.get("type")
    text = value.strip()
    try:
        if kind == "integer" and re.fullmatch(r"-?\d+", text):
            return int(text)
        if kind == "number" and re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind in ("object", "array") and text[:1] in "{[":
            parsed = json_repair.loads(text)
            if isinstance(parsed, dict if kind == "object" else list):
                return parsed
    except (ValueError, RecursionError):
        return value
    return value


def _schema_text(schema: dict[str, Any]) -> str:
    text = json.dumps(schema, separators=(",", ":"))
    return text if len(text) <= 1500 else text[:1500] + "…"


def _or_list(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


@dataclass
class CallPlan:
    """A round's calls sorted: checked calls for the agent to run (or answer with an error), calls
    to return to the HTTP client, and the calls as the model asked for them (for the transcript)."""

    server: list[Checked]
    client: list[ToolCall]
    as_requested: list[ToolCall]


def plan_calls(calls: list[ToolCall], own: dict[str, ToolSpec], client: dict[str, ToolSpec]) -> CallPlan:
    """Calls to the client's tools go back to it; everything else is checked against the agent's
    own tools, so an invented name becomes an error result the model sees, not a client call."""
    server: list[Checked] = []
    to_client: list[ToolCall] = []
    requested: list[ToolCall] = []
    for call in calls:
        client_name = call.name if call.name in client else resolve_name(call.name, client)
        if call.name not in own and client_name is not None and resolve_name(call.name, own) is None:
            fixed = call if client_name == call.name else call.model_copy(update={"name": client_name})
            to_client.append(fixed)
            requested.append(fixed)
            continue
        checked = check_call(call, own)
        if checked.error is not None and resolve_name(call.name, own) is None:
            checked = Checked(call, unknown_tool_error(call.name, {**own, **client}))
        server.append(checked)
        requested.append(checked.call if checked.error is None else call)
    return CallPlan(server, to_client, requested)
