"""Tool names that stay unique across every source (MCP servers, child agents).

LLM APIs (Ollama, OpenAI) want function names matching ``[A-Za-z0-9_-]{1,64}``, unique within a
request. A tool keeps its bare name when no other source offers the same one; otherwise every
holder of the clashing name becomes ``<source>__<tool>``. Names that would still clash after that
(or after sanitising and truncating) get a short stable hash suffix.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence

MAX_NAME_LENGTH = 64
SEPARATOR = "__"

_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize(name: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """``name`` reduced to ``[A-Za-z0-9_-]`` and at most ``max_length`` characters.

    A name that had to be cut keeps a hash of the original, so two long names that share a
    prefix stay distinct.
    """
    clean = _DISALLOWED.sub("_", name).strip("_") or "tool"
    if len(clean) <= max_length:
        return clean
    digest = _digest(name)
    return clean[: max_length - len(digest) - 1] + "_" + digest


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def assign_names(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Unique exposed names for ``(source, tool)`` pairs, in the same order.

    Deterministic: the same entries always give the same names.
    """
    bare = [sanitize(tool) for _, tool in entries]
    counts = Counter(bare)
    names = [
        name if counts[name] == 1 else sanitize(f"{source}{SEPARATOR}{tool}")
        for name, (source, tool) in zip(bare, entries, strict=True)
    ]
    return _deduplicate(names, entries)


def _deduplicate(names: list[str], entries: Sequence[tuple[str, str]]) -> list[str]:
    """Add a hash suffix to names still shared (e.g. two tools differing only in '.' vs '_')."""
    counts = Counter(names)
    result: list[str] = []
    taken: set[str] = {n for n in names if counts[n] == 1}
    for name, (source, tool) in zip(names, entries, strict=True):
        if counts[name] == 1:
            result.append(name)
            continue
        digest = _digest(f"{source}\0{tool}")
        candidate = name[: MAX_NAME_LENGTH - len(digest) - 1] + "_" + digest
        while candidate in taken:
            digest = _digest(candidate)
            candidate = name[: MAX_NAME_LENGTH - len(digest) - 1] + "_" + digest
        taken.add(candidate)
        result.append(candidate)
    return result
