"""JSON on the hot paths (a reply's every chunk, the upstream's every line), with ``orjson``.

Per chunk of a streamed reply, the standard library's encoder cost more than everything else
atoll does with the chunk (``json.dumps`` with options builds a new encoder each call); ``orjson``
is ~20x faster at both ends (``benchmarks/bench_gateway.py``, the 500-chunk stream). Output is the
same compact UTF-8 JSON. What ``orjson`` does not encode (integers past 64 bits, keys that are not
strings) is handed to the standard library, so nothing that encoded before fails now.

Request bodies from clients are still parsed by :func:`atoll.client_json.parse_json` (the
standard library's exact integers and error messages); :func:`loads` is for upstream lines.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_FALLBACK = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities become ``null`` (they are not JSON)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _FALLBACK.encode(value).encode()


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; a malformed one raises ``ValueError`` (``json.JSONDecodeError``).
    Integers past 64 bits come back as floats, as a Go upstream (Ollama) has already made them."""
    return orjson.loads(data)
