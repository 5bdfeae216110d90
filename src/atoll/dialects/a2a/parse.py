"""An A2A message -> the neutral request: text parts are the text, data parts are added as JSON,
image files become images; the message's ``contextId`` is the atoll session."""

from __future__ import annotations

import base64
import json

from a2a.helpers import get_data_parts
from a2a.types import Message as A2AMessage

from atoll.agent.loop import RunRequest
from atoll.errors import RequestError
from atoll.messages import Message


def run_request(message: A2AMessage | None) -> RunRequest:
    """One user turn; the session (the message's ``contextId``) supplies what came before."""
    texts: list[str] = []
    images: list[str] = []
    for part in message.parts if message is not None else []:
        kind = part.WhichOneof("content")
        if kind == "text":
            texts.append(part.text)
        elif kind == "data":
            texts.append(json.dumps(get_data_parts([part])[0], ensure_ascii=False))
        elif kind == "raw" and part.media_type.startswith("image/"):
            images.append(base64.b64encode(part.raw).decode())
        elif kind == "url":
            texts.append(f"[file: {part.filename or part.url} <{part.url}>]")
        elif kind == "raw":
            raise RequestError(f"unsupported file part: {part.media_type or 'unknown type'} "
                               "(text, data and images are understood)")
    text = "\n".join(t for t in texts if t)
    if not text.strip() and not images:
        raise RequestError("the message has no text: send at least one text part")
    return RunRequest([Message(role="user", content=text, images=images or None)])
