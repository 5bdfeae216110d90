"""JSON from clients: request bodies, and the JSON clients carry inside fields (a tool call's
``arguments`` string, a generate ``context``, a sessions ``cursor``); and JSON a model writes (its
tool calls' arguments, as text or as a string field), which a prompt injection can make as deep.

The standard library's parser (exact integers, its error messages), with one change: nesting too
deep for it (``[`` x 100000) is a ``ValueError`` like any other bad JSON, so it becomes a 400 naming
the field and never a ``RecursionError`` (a 500). No third-party import: the deployment server,
which keeps a memory budget, uses it too.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["TooDeep", "parse_json"]


class TooDeep(ValueError):
    """JSON nested deeper than the parser goes."""


def parse_json(raw: bytes | str) -> Any:
    """``json.loads``; JSON nested too deeply raises :class:`TooDeep` (a ``ValueError``)."""
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise TooDeep("JSON nested too deeply") from exc
