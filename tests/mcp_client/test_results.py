from __future__ import annotations

import base64

from mcp.types import (
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

from atoll.mcp_client.results import EMPTY_RESULT, result_to_text


def test_text_blocks_are_joined() -> None:
    result = CallToolResult(content=[TextContent(text="one"), TextContent(text="two")])
    assert result_to_text(result) == "one\ntwo"


def test_image_becomes_a_placeholder_with_its_size() -> None:
    data = base64.b64encode(b"\x89PNG" + b"\0" * 96).decode()
    result = CallToolResult(content=[ImageContent(data=data, mime_type="image/png")])
    assert result_to_text(result) == "[image: image/png, 100 bytes]"


def test_structured_content_is_used_without_text() -> None:
    result = CallToolResult(content=[], structured_content={"temperature": 21})
    assert result_to_text(result) == '{"temperature": 21}'


def test_structured_content_is_not_duplicated_when_text_exists() -> None:
    result = CallToolResult(content=[TextContent(text='{"t": 1}')], structured_content={"t": 1})
    assert result_to_text(result) == '{"t": 1}'


def test_resource_link_and_embedded_resources() -> None:
    blob = base64.b64encode(b"abc").decode()
    result = CallToolResult(content=[
        ResourceLink(name="Doc", uri="demo://doc/1", mime_type="text/plain", description="a doc"),
        EmbeddedResource(resource=TextResourceContents(uri="demo://t", text="hello")),
        EmbeddedResource(resource=BlobResourceContents(uri="demo://b", blob=blob, mime_type="application/gzip")),
    ])
    assert result_to_text(result).splitlines() == [
        "[resource link: Doc <demo://doc/1> (text/plain, a doc)]",
        "[resource <demo://t>]",
        "hello",
        "[binary resource <demo://b>: application/gzip, 3 bytes]",
    ]


def test_empty_result_says_so() -> None:
    assert result_to_text(CallToolResult(content=[])) == EMPTY_RESULT
