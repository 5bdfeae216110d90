"""The baseline for bench_chat_overhead: a bare Starlette app doing the same JSON round trip
as atoll's ``/api/chat`` with an instant LLM (parse the request, build the reply object)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def chat(request: Request) -> JSONResponse:
    body = await request.json()
    text = body["messages"][-1]["content"]
    return JSONResponse({
        "model": body["model"], "created_at": datetime.now(UTC).isoformat(),
        "message": {"role": "assistant", "content": f"You said: {text}"}, "done": True, "done_reason": "stop",
        "total_duration": 1, "load_duration": 0, "prompt_eval_count": 1, "prompt_eval_duration": 1,
        "eval_count": 1, "eval_duration": 1,
    })


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "healthy"})


app = Starlette(routes=[Route("/api/chat", chat, methods=["POST"]), Route("/health", health)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
