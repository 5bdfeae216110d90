"""Two real agent server processes of one agent sharing a real redis-server: a conversation goes on
in either, concurrent turns on one session never interleave across them, and sessions expire as
with SQLite. One process reads the URL from its file, the other from ``ATOLL_SESSION_URL``."""

from __future__ import annotations

import concurrent.futures
import itertools
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import ollama
import pytest

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, server_env, write_agent
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[list[AgentServer]]:
    folder = tmp_path_factory.mktemp("redis-agents")
    # 6 s: long enough that turns queued behind each other on a loaded machine do not outlive it
    timing = "session_timeout_minutes = 0.1\nsession_cleanup_interval_s = 0.2\n"
    by_file = write_agent(folder / "a", scripted_agent_toml(
        "echo", extra=f'[server]\nsession_store = "redis"\nsession_url = "{redis_url}"\n{timing}'))
    by_env = write_agent(folder / "b", scripted_agent_toml("echo", extra=f"[server]\n{timing}"))
    with ExitStack() as stack:
        servers = [
            stack.enter_context(run_agent_server(by_file, cwd=by_file.parent)),
            stack.enter_context(run_agent_server(by_env, cwd=by_env.parent, env=server_env(
                HOME=str(folder), ATOLL_SESSION_URL=redis_url))),
        ]
        yield servers
    assert not list(folder.rglob("*.db"))  # no SQLite file anywhere, the agent's folder or $ATOLL_HOME


def chat(server: AgentServer, content: str, session: str) -> str:
    client = ollama.Client(host=server.url, headers={"X-Session-ID": session}, timeout=60)
    reply = client.chat(model="echo", messages=[{"role": "user", "content": content}])
    return str(reply.message.content)


def history(server: AgentServer, session: str) -> list[tuple[str, str]]:
    body = httpx.get(f"{server.url}/api/sessions/{session}", timeout=10).json()
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_a_conversation_continues_in_the_other_process(pair: list[AgentServer]) -> None:
    first, second = pair
    session = uuid.uuid4().hex
    assert chat(first, "one", session) == "You said: one"
    assert chat(second, "/history", session) == (
        "system:You are echo. | user:one | assistant:You said: one | user:/history")
    assert len(history(first, session)) == 4
    assert httpx.delete(f"{first.url}/api/sessions/{session}").status_code == 204
    assert httpx.get(f"{second.url}/api/sessions/{session}").status_code == 404


def test_concurrent_turns_across_processes_never_interleave(pair: list[AgentServer]) -> None:
    session = uuid.uuid4().hex
    words = [f"/slow 3 0.02 t{i}" for i in range(8)]
    servers = itertools.cycle(pair)
    jobs = [(next(servers), word) for word in words]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: chat(job[0], job[1], session), jobs))
    turns = history(pair[1], session)
    assert [role for role, _ in turns] == ["user", "assistant"] * 8
    assert sorted(content for role, content in turns if role == "user") == sorted(words)
    assert all(content.strip() == "s1 s2 s3" for role, content in turns if role == "assistant")


def test_sessions_expire_after_inactivity_as_with_sqlite(pair: list[AgentServer]) -> None:
    first, second = pair
    session = uuid.uuid4().hex
    chat(first, "short-lived", session)
    assert httpx.get(f"{second.url}/api/sessions/{session}").status_code == 200
    # 0.1 minutes = 6 s of inactivity; either process's cleanup task then removes it
    wait_until(lambda: httpx.get(f"{second.url}/api/sessions/{session}").status_code == 404,
               timeout=40, what="the session to expire", interval=0.2)
    assert httpx.get(first.url + "/api/sessions").json()["active_sessions"] == 0
