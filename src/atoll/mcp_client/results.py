"""Turn an MCP ``CallToolResult`` into the text fed back to the LLM.

A tool message is plain text, so every content block becomes text: text as is, embedded text
resources with their URI, and binary blocks (images, audio, blobs) as a short placeholder naming
the type and size, since their base64 would only burn the context window. Structured content
is used when the result carries no text of its own (the spec asks servers to duplicate it as
text, and most do).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

EMPTY_RESULT = "(the tool returned no content)"


def result_to_text(result: CallToolResult) -> str:
    """The LLM-facing text of a tool result, one block per paragraph."""
    parts = [block_to_text(block) for block in result.content]
    has_text = any(isinstance(block, TextContent) and block.text for block in result.content)
    if result.structured_content is not None and not has_text:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(part for part in parts if part)
    return text or EMPTY_RESULT


def block_to_text(block: Any) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return f"[image: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, AudioContent):
        return f"[audio: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, ResourceLink):
        return _link_to_text(block)
    if isinstance(block, EmbeddedResource):
        return _resource_to_text(block.resource)
    return f"[unsupported content: {getattr(block, 'type', type(block).__name__)}]"


def _link_to_text(link: ResourceLink) -> str:
    details = ", ".join(str(v) for v in (link.mime_type, link.description) if v)
    label = link.title or link.name
    return f"[resource link: {label} <{link.uri}>" + (f" ({details})" if details else "") + "]"


def _resource_to_text(resource: TextResourceContents | BlobResourceContents) -> str:
    if isinstance(resource, TextResourceContents):
        return f"[resource <{resource.uri}>]\n{resource.text}"
    mime = resource.mime_type or "application/octet-stream"
    return f"[binary resource <{resource.uri}>: {mime}, {_decoded_size(resource.blob)} bytes]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
