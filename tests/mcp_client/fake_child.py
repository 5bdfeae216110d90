"""A tiny child agent on 127.0.0.1: just enough of Ollama's ``/api/chat``, ``/api/tags`` and atoll's
``/health`` for the child-agent toolbox, served by uvicorn in a thread. It keeps a conversation per
``X-Session-ID`` and records every request it sees."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.mcp_client.helpers import free_port

MODEL = "child-agent"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeChild:
    token: str | None = None
    health_status: int = 200
    port: int = field(default_factory=free_port)
    seen: list[Seen] = field(default_factory=list)
    conversations: dict[str, list[str]] = field(default_factory=dict)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chats(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/api/chat"]

    async def _health(self, request: Request) -> JSONResponse:
        self.seen.append(Seen("/health", dict(request.headers)))
        return JSONResponse({"status": "healthy" if self.health_status == 200 else "starting"},
                            status_code=self.health_status)

    async def _tags(self, request: Request) -> JSONResponse:
        self.seen.append(Seen("/api/tags", dict(request.headers)))
        return JSONResponse({"models": [{"name": MODEL, "model": MODEL}]})

    async def _chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.seen.append(Seen("/api/chat", dict(request.headers), body))
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if body.get("model") != MODEL:
            return JSONResponse({"error": f"model '{body.get('model')}' not found"}, status_code=404)
        task = body["messages"][-1]["content"]
        if task.startswith("sleep:"):
            await asyncio.sleep(float(task.removeprefix("sleep:")))
        history = self.conversations.setdefault(request.headers.get("x-session-id", ""), [])
        history.append(task)
        answer = f"answer #{len(history)} to: {task}"
        return JSONResponse({"model": MODEL, "message": {"role": "assistant", "content": answer},
                             "done": True, "done_reason": "stop"})

    def start(self) -> None:
        app = Starlette(routes=[
            Route("/health", self._health),
            Route("/api/tags", self._tags),
            Route("/api/chat", self._chat, methods=["POST"]),
        ])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=0.5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-child", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake child agent did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
