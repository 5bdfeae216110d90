"""The compatibility checklist (reference/ollama_api.md section 9) over raw HTTP, one test per item.

Items that a client library proves better live next to that library's tests (``test_item_NN_*``
in the other modules of this folder); this module covers the wire details libraries hide.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from datetime import UTC, datetime

import httpx
import pytest

from tests.clients.helpers import WEATHER_TOOL, ndjson, sse_events, tool_command
from tests.support.servers import AgentServer

JSON = "application/json"
METRICS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
           "eval_duration")


def _chat(server: AgentServer, text: str, **extra: object) -> httpx.Response:
    return httpx.post(server.url + "/api/chat", json={
        "model": "echo", "messages": [{"role": "user", "content": text}], **extra})


def test_item_01_root_get_and_head(echo_server: AgentServer) -> None:
    for method in ("GET", "HEAD"):
        response = httpx.request(method, echo_server.url + "/")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert httpx.get(echo_server.url + "/").text == "Ollama is running"


def test_item_02_version(echo_server: AgentServer) -> None:
    version = httpx.get(echo_server.url + "/api/version").json()["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)
    assert httpx.head(echo_server.url + "/api/version").status_code == 200


def test_item_03_tags_entries(echo_server: AgentServer) -> None:
    response = httpx.get(echo_server.url + "/api/tags")
    assert response.headers["content-type"].startswith(JSON)
    (entry,) = response.json()["models"]
    assert entry["name"] == entry["model"] == "echo:latest"
    datetime.fromisoformat(entry["modified_at"])
    assert isinstance(entry["size"], int) and re.fullmatch(r"[0-9a-f]{64}", entry["digest"])
    assert {"parent_model", "format", "family", "families", "parameter_size", "quantization_level"} <= set(
        entry["details"])


@pytest.mark.parametrize("field", ["model", "name"])
def test_item_05_show_by_model_or_name(echo_server: AgentServer, field: str) -> None:
    shown = httpx.post(echo_server.url + "/api/show", json={field: "echo"})
    assert shown.status_code == 200
    body = shown.json()
    assert isinstance(body["model_info"], dict) and isinstance(body["capabilities"], list)
    for key, kind in (("details", dict), ("template", str), ("parameters", str), ("modified_at", str)):
        assert isinstance(body[key], kind), key


def test_item_06_show_unknown_and_missing_model(echo_server: AgentServer) -> None:
    unknown = httpx.post(echo_server.url + "/api/show", json={"model": "nope"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "model 'nope' not found"
    missing = httpx.post(echo_server.url + "/api/show", json={})
    assert missing.status_code == 400 and missing.json()["error"] == "model is required"


def test_item_07_ps_fields(echo_server: AgentServer) -> None:
    (entry,) = httpx.get(echo_server.url + "/api/ps").json()["models"]
    for key in ("name", "model", "size", "digest", "details", "expires_at", "size_vram", "context_length"):
        assert key in entry, key
    assert datetime.fromisoformat(entry["expires_at"]) > datetime.now(UTC)


def test_item_08_chat_streams_ndjson_by_default(echo_server: AgentServer) -> None:
    response = _chat(echo_server, "/count 3")
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-ndjson"
    chunks = ndjson(response)
    assert len(chunks) > 1 and chunks[-1]["done"] is True


def test_item_09_chat_stream_false_is_one_object(echo_server: AgentServer) -> None:
    body = _chat(echo_server, "/count 3", stream=False).json()
    assert body["done"] is True and body["done_reason"] == "stop" and body["message"]["content"] == "w1 w2 w3"
    assert all(isinstance(body[key], int) for key in METRICS)


def test_item_10_every_chat_chunk_is_complete(echo_server: AgentServer) -> None:
    for chunk in ndjson(_chat(echo_server, "/count 4")):
        assert {"model", "created_at", "message", "done"} <= set(chunk)
        assert chunk["message"]["role"] == "assistant" and isinstance(chunk["message"]["content"], str)


def test_item_11_final_chunk(echo_server: AgentServer) -> None:
    final = ndjson(_chat(echo_server, "/count 4", options={"num_predict": 2}))[-1]
    assert final["done"] is True and final["done_reason"] == "length" and final["message"]["content"] == ""
    assert all(isinstance(final[key], int) for key in METRICS)


def test_item_12_generate_stream_not_and_load(echo_server: AgentServer) -> None:
    url = echo_server.url + "/api/generate"
    chunks = ndjson(httpx.post(url, json={"model": "echo", "prompt": "/count 2"}))
    assert all("response" in c for c in chunks) and all(key in chunks[-1] for key in METRICS)
    whole = httpx.post(url, json={"model": "echo", "prompt": "/count 2", "stream": False}).json()
    assert whole["response"] == "w1 w2" and all(key in whole for key in METRICS)
    load = httpx.post(url, json={"model": "echo", "prompt": ""})
    assert load.headers["content-type"].startswith(JSON) and load.json()["done_reason"] == "load"
    unload = httpx.post(url, json={"model": "echo", "prompt": "", "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload"


def test_item_13_chat_load_and_unload(echo_server: AgentServer) -> None:
    load = httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "messages": []}).json()
    assert load["done_reason"] == "load"
    unload = httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "messages": [], "keep_alive": 0})
    assert unload.json()["done_reason"] == "unload"


def test_item_16_native_tool_call_chunk_shape(echo_server: AgentServer) -> None:
    chunks = ndjson(_chat(echo_server, tool_command("get_weather", city="Paris"), tools=[WEATHER_TOOL]))
    (call_chunk,) = [c for c in chunks if c["message"].get("tool_calls")]
    call = call_chunk["message"]["tool_calls"][0]
    assert re.fullmatch(r"call_\w+", call["id"]) and call["function"] == {
        "index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    assert call_chunk["done"] is False and chunks[-1]["done"] is True


@pytest.mark.parametrize("arguments", [{"city": "Rome"}, '{"city": "Rome"}'], ids=["object", "json-string"])
def test_item_17_18_history_without_content_names_or_object_arguments(echo_server: AgentServer,
                                                                      arguments: object) -> None:
    response = httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "stream": False, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "content": "sunny"}]})
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "Tool results: get_weather=sunny"


@pytest.mark.parametrize("fmt", ["json", {"type": "object", "properties": {"n": {"type": "integer"}},
                                          "required": ["n"]}, "", None], ids=["json", "schema", "empty", "null"])
def test_item_19_format(echo_server: AgentServer, fmt: object) -> None:
    response = _chat(echo_server, "hi", stream=False, format=fmt)
    assert response.status_code == 200, response.text
    content = response.json()["message"]["content"]
    if fmt == "json":
        assert isinstance(json.loads(content), dict)
    elif isinstance(fmt, dict):
        assert json.loads(content) == {"n": 42}
    else:
        assert content == "You said: hi"


def test_item_20_think_on_v1_is_reasoning(thinker: AgentServer) -> None:
    events = sse_events(httpx.post(thinker.url + "/v1/chat/completions", json={
        "model": "thinker", "stream": True, "reasoning_effort": "low",
        "messages": [{"role": "user", "content": "/count 1"}]}))
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[:-1]]
    assert [d.get("reasoning") for d in deltas[:2]] == ["Let me", " think."] and deltas[2]["content"] == "w1"
    bad = httpx.post(thinker.url + "/v1/chat/completions", json={
        "model": "thinker", "reasoning_effort": "extreme", "messages": [{"role": "user", "content": "x"}]})
    assert bad.status_code == 400 and "invalid reasoning value" in bad.json()["error"]["message"]


@pytest.mark.parametrize("think", [True, "high", False])
def test_item_20_think_on_an_agent_without_thinking_is_accepted(echo_server: AgentServer, think: object) -> None:
    """The documented choice (docs/clients.md): ``think`` is accepted on every agent; only an agent
    whose LLM reasons separately sends thinking text, and only it lists the capability."""
    assert "thinking" not in httpx.post(echo_server.url + "/api/show", json={"model": "echo"}).json()["capabilities"]
    response = _chat(echo_server, "/count 1", stream=False, think=think)
    assert response.status_code == 200 and "thinking" not in response.json()["message"]
    assert response.json()["message"]["content"] == "w1"


@pytest.mark.parametrize("keep_alive", ["5m", 300, -1, -1.0, "-1m"])
def test_item_21_options_and_keep_alive_are_lenient(echo_server: AgentServer, keep_alive: object) -> None:
    response = _chat(echo_server, "/count 1", stream=False, keep_alive=keep_alive,
                     options={"mirostat": None, "numa": False, "tfs_z": 1.0, "temperature": None})
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "w1"


def test_item_22_images_are_accepted(echo_server: AgentServer) -> None:
    response = httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "stream": False, "messages": [
        {"role": "user", "content": "/count 1", "images": ["iVBORw0KGgo="]}]})
    assert response.status_code == 200 and response.json()["message"]["content"] == "w1"
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    v1 = httpx.post(echo_server.url + "/v1/chat/completions", json={"model": "echo", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "/count 1"}, image]}]})
    assert v1.status_code == 200 and v1.json()["choices"][0]["message"]["content"] == "w1"


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed", "/api/embeddings"])
def test_item_23_unknown_model_is_404_json(echo_server: AgentServer, path: str) -> None:
    response = httpx.post(echo_server.url + path, json={
        "model": "llama3", "messages": [{"role": "user", "content": "x"}], "prompt": "x", "input": "x"})
    assert response.status_code == 404 and response.headers["content-type"].startswith(JSON)
    assert response.json()["error"] == "model 'llama3' not found"


@pytest.mark.parametrize("path", ["/api/chat", "/api/embed", "/api/pull", "/v1/chat/completions",
                                  "/v1/embeddings"])
def test_item_24_malformed_and_empty_bodies_are_400(echo_server: AgentServer, path: str) -> None:
    for body in (b"{not json", b""):
        response = httpx.post(echo_server.url + path, content=body)
        assert response.status_code == 400, (path, body, response.text)
        error = response.json()["error"]
        message = error["message"] if path.startswith("/v1/") else error
        assert message and "detail" not in str(message)
        if body == b"" and not path.startswith("/v1/"):
            assert message == "missing request body"


def test_item_25_failure_after_stream_started_is_a_last_error_line(echo_server: AgentServer) -> None:
    response = _chat(echo_server, "/error-after lost it")
    assert response.status_code == 200 and ndjson(response)[-1] == {"error": "lost it"}


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/nothing", 404), ("GET", "/api/chat", 405), ("GET", "/api/embed", 405), ("GET", "/api/pull", 405),
    ("POST", "/api/tags", 405), ("GET", "/v1/nothing", 404), ("GET", "/v1/chat/completions", 405),
    ("DELETE", "/v1/models", 405), ("POST", "/api/experimental/web_search", 404)])
def test_item_26_unknown_path_404_wrong_method_405(echo_server: AgentServer, method: str, path: str,
                                                   status: int) -> None:
    response = httpx.request(method, echo_server.url + path)
    assert response.status_code == status
    if path.startswith("/v1/"):
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_item_27_embed_raw_shapes(echo_server: AgentServer, plain: AgentServer) -> None:
    many = httpx.post(echo_server.url + "/api/embed", json={"model": "echo", "input": ["a", "b"],
                                                             "options": {"num_ctx": None}}).json()
    assert len(many["embeddings"]) == 2 and many["model"] == "echo"
    assert all(isinstance(many[key], int) for key in ("total_duration", "load_duration", "prompt_eval_count"))
    legacy = httpx.post(echo_server.url + "/api/embeddings", json={"model": "echo", "prompt": "a"}).json()
    assert legacy["embedding"] == pytest.approx(many["embeddings"][0])
    empty = httpx.post(echo_server.url + "/api/embeddings", json={"model": "echo", "prompt": ""}).json()
    assert empty == {"embedding": []}
    refused = httpx.post(plain.url + "/v1/embeddings", json={"model": "plain", "input": "a"})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == '"plain" does not support embeddings'


def test_item_28_pull_stream_ends_in_success_and_unknown_is_an_error(echo_server: AgentServer) -> None:
    streamed = httpx.post(echo_server.url + "/api/pull", json={"name": "echo"})
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert ndjson(streamed)[-1] == {"status": "success"}
    whole = httpx.post(echo_server.url + "/api/pull", json={"model": "echo", "stream": False})
    assert whole.json() == {"status": "success"}
    for stream in (True, False):
        unknown = httpx.post(echo_server.url + "/api/pull", json={"model": "llama3", "stream": stream})
        # Not this agent: Ollama's "not found" for a model name, before any status line is streamed.
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["error"] == "model 'llama3' not found"


def test_item_29_management_endpoints_are_documented_errors(echo_server: AgentServer) -> None:
    url = echo_server.url
    cases = [
        ("POST", "/api/push", {"model": "echo"}, 403), ("POST", "/api/push", {"model": "x"}, 404),
        ("POST", "/api/create", {"model": "mine", "from": "echo"}, 403), ("POST", "/api/create", {}, 400),
        ("POST", "/api/copy", {"source": "echo", "destination": "e2"}, 403),
        ("POST", "/api/copy", {"source": "x", "destination": "e2"}, 404),
        ("DELETE", "/api/delete", {"name": "echo"}, 403), ("DELETE", "/api/delete", {"model": "x"}, 404),
        ("POST", "/api/blobs/sha256:" + "0" * 64, None, 403),
    ]
    for method, path, body, status in cases:
        response = httpx.request(method, url + path, json=body)
        assert response.status_code == status, (method, path, body, response.text)
        assert response.json()["error"]
    assert httpx.post(url + "/api/copy", json={"source": "x", "destination": "y"}).json()["error"] == \
        'model "x" not found'
    assert httpx.head(url + "/api/blobs/sha256:" + "0" * 64).status_code == 404
    assert httpx.get(url + "/api/status").json() == {"cloud": {"disabled": True, "source": "atoll"}}


def test_item_30_v1_models_raw(echo_server: AgentServer) -> None:
    body = httpx.get(echo_server.url + "/v1/models").json()
    assert body["object"] == "list" and set(body["data"][0]) == {"id", "object", "created", "owned_by"}


def test_item_33_sse_order(echo_server: AgentServer) -> None:
    response = httpx.post(echo_server.url + "/v1/chat/completions", json={
        "model": "echo", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "/count 2"}]})
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "w1"}
    assert chunks[1]["choices"][0]["delta"] == {"content": " w2"}
    assert chunks[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens"] == 2
    assert len(chunks) == 4 and {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_item_33_empty_reply_still_sends_the_role_first(echo_server: AgentServer) -> None:
    events = sse_events(httpx.post(echo_server.url + "/v1/chat/completions", json={
        "model": "echo", "stream": True, "messages": [{"role": "user", "content": "/count 0"}]}))
    first, finish = (json.loads(e) for e in events[:2])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert finish["choices"][0]["finish_reason"] == "stop" and events[2] == "[DONE]"


def test_item_35_v1_errors_raw(echo_server: AgentServer) -> None:
    url = echo_server.url + "/v1/chat/completions"
    cases = [({"model": "echo", "messages": []}, 400, "invalid_request_error"),
             ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "not_found_error"),
             ({"messages": [{"role": "user", "content": "x"}]}, 400, "invalid_request_error"),
             ({"model": "echo", "messages": "hi"}, 400, "invalid_request_error"),
             ({"model": "echo", "messages": [{"role": "user", "content": "/error boom"}]}, 500, "api_error")]
    for body, status, kind in cases:
        response = httpx.post(url, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json() == {"error": {"message": response.json()["error"]["message"], "type": kind,
                                             "param": None, "code": None}}
    late = sse_events(httpx.post(url, json={"model": "echo", "stream": True,
                                            "messages": [{"role": "user", "content": "/error-after lost it"}]}))
    assert json.loads(late[-1])["error"]["message"] == "lost it"


def test_item_36_v1_embeddings_base64_is_little_endian_float32(echo_server: AgentServer) -> None:
    url = echo_server.url + "/v1/embeddings"
    floats = httpx.post(url, json={"model": "echo", "input": "alpha"}).json()["data"][0]["embedding"]
    encoded = httpx.post(url, json={"model": "echo", "input": "alpha", "encoding_format": "base64"}).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(floats, abs=1e-6)


def test_item_38_open_webui_flow_simulated(echo_server: AgentServer) -> None:
    """What Open WebUI 0.12.4 sends (reference section 10), replayed: verify, list, title task,
    streamed chat carrying tools, the tool turn with ``tool_call_id`` and object arguments, unload."""
    url = echo_server.url
    assert httpx.get(url + "/api/version").json()["version"]
    assert httpx.get(url + "/api/tags").json()["models"][0]["name"] == "echo:latest"
    assert "expires_at" in httpx.get(url + "/api/ps").json()["models"][0]
    task = [{"role": "user", "content": "### Task:\nGenerate a concise title"}]
    title = httpx.post(url + "/api/chat", json={"model": "echo:latest", "stream": False,
                                                "options": {"num_predict": 1000}, "messages": task})
    assert title.headers["content-type"].startswith(JSON) and title.json()["done"]
    loose_tool = {"type": "function", "function": {"name": "get_current_timestamp", "description": "now",
                                                   "parameters": {"type": "object", "additionalProperties": True,
                                                                  "properties": {"tz": {"type": "string",
                                                                                        "default": "UTC"}}}}}
    calls = ndjson(_chat(echo_server, tool_command("get_current_timestamp", tz="UTC"), tools=[loose_tool]))
    call = next(c for c in calls if c["message"].get("tool_calls"))["message"]["tool_calls"][0]
    history = [{"role": "user", "content": "time?"},
               {"role": "assistant", "content": "", "tool_calls": [{"index": 0, "id": "call_owui", "function": {
                   "name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]},
               {"role": "tool", "content": '{"ts": 1}', "tool_call_id": "call_owui"}]
    answer = ndjson(httpx.post(url + "/api/chat", json={"model": "echo:latest", "stream": True, "messages": history,
                                                        "tools": [loose_tool]}))
    assert "".join(c["message"]["content"] for c in answer) == 'Tool results: get_current_timestamp={"ts": 1}'
    unload = httpx.post(url + "/api/generate", json={"model": "echo:latest", "keep_alive": 0, "prompt": ""})
    assert unload.status_code == 200


def test_item_40_copilot_flow(echo_server: AgentServer) -> None:
    url = echo_server.url
    version = httpx.get(url + "/api/version").json()["version"]
    assert tuple(int(p) for p in version.split(".")) >= (0, 6, 4)
    model = httpx.get(url + "/api/tags").json()["models"][0]["model"]
    shown = httpx.post(url + "/api/show", json={"model": model}).json()
    assert "tools" in shown["capabilities"] and "vision" not in shown["capabilities"]
    arch = shown["model_info"]["general.architecture"]
    assert shown["model_info"][f"{arch}.context_length"] == 4096 and shown["model_info"]["general.basename"]


def test_item_41_cors_preflight_and_authorization_ignored(echo_server: AgentServer) -> None:
    for origin in ("http://localhost:3000", "vscode-webview://abc"):
        preflight = httpx.options(echo_server.url + "/v1/chat/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os,openai-beta"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    response = httpx.post(echo_server.url + "/api/chat", headers={"Authorization": "Bearer sk-anything"}, json={
        "model": "echo", "stream": False, "messages": [{"role": "user", "content": "/count 1"}]})
    assert response.status_code == 200 and response.json()["message"]["content"] == "w1"


def test_item_41_cors_origins_are_configurable(echo_server: AgentServer, plain: AgentServer) -> None:
    headers = {"Origin": "https://chat.example.org", "Access-Control-Request-Method": "POST"}
    allowed = httpx.options(plain.url + "/v1/chat/completions", headers=headers)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://chat.example.org"
    assert "access-control-allow-origin" not in httpx.options(echo_server.url + "/v1/models", headers=headers).headers
