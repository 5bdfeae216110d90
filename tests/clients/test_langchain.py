"""LangChain's ``ChatOllama`` (``langchain-ollama``), unmodified (checklist items 4 and 15)."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from pydantic import BaseModel

from tests.clients.helpers import tool_command
from tests.support.servers import AgentServer


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"sunny in {city}"


class Weather(BaseModel):
    city: str
    degrees: int


def test_item_04_validate_model_on_init_with_and_without_latest(echo_server: AgentServer) -> None:
    for name in ("echo", "echo:latest"):
        model = ChatOllama(model=name, base_url=echo_server.url, validate_model_on_init=True)
        assert model.invoke("/count 1").content == "w1"


def test_item_15_invoke(echo_server: AgentServer) -> None:
    reply = ChatOllama(model="echo", base_url=echo_server.url).invoke("hello chain")
    assert reply.content == "You said: hello chain"
    assert reply.usage_metadata is not None and reply.usage_metadata["output_tokens"] == 4
    assert reply.response_metadata["done_reason"] == "stop"


def test_item_15_stream(echo_server: AgentServer) -> None:
    chunks = list(ChatOllama(model="echo", base_url=echo_server.url).stream("/count 4"))
    assert len(chunks) > 2 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == "w1 w2 w3 w4"


def test_item_15_bind_tools_invoke_returns_tool_calls(echo_server: AgentServer) -> None:
    model = ChatOllama(model="echo", base_url=echo_server.url).bind_tools([get_weather])
    reply = model.invoke(tool_command("get_weather", city="Lima"))
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Lima"})]


def test_item_15_tool_loop_history_is_accepted(echo_server: AgentServer) -> None:
    """LangChain replays the call with no content and the result with neither name nor id."""
    model = ChatOllama(model="echo", base_url=echo_server.url).bind_tools([get_weather])
    question = tool_command("get_weather", city="Lima")
    call = model.invoke(question)
    result = get_weather.invoke(call.tool_calls[0])
    answer = model.invoke([("user", question), call, result])
    assert answer.content == "Tool results: get_weather=sunny in Lima"


def test_item_15_with_structured_output(echo_server: AgentServer) -> None:
    structured = ChatOllama(model="echo", base_url=echo_server.url).with_structured_output(Weather)
    result = structured.invoke("weather in Oslo")
    assert isinstance(result, Weather) and result.degrees == 42 and result.city == "weather in Oslo"
