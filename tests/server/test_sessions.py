"""Server-side sessions: opt-in, no duplication, one writer per session, expiry, persistence."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from pathlib import Path

import httpx
import ollama

from tests.support.servers import AgentServer, run_agent_server, scripted_agent_toml, write_agent


def chat(server: AgentServer, messages: list[dict], session: str, **extra: object) -> httpx.Response:
    return httpx.post(server.url + "/api/chat", headers={"X-Session-ID": session}, timeout=30,
                      json={"model": "echo", "stream": False, "messages": messages, **extra})


def history(server: AgentServer, session: str) -> list[tuple[str, str]]:
    body = httpx.get(f"{server.url}/api/sessions/{session}").json()
    return [(m["role"], m["content"]) for m in body["messages"]]


def test_seed_session_endpoints(echo_server: AgentServer) -> None:
    chat(echo_server, [{"role": "user", "content": "hi"}], uuid.uuid4().hex)
    stats = httpx.get(echo_server.url + "/api/sessions").json()
    assert stats["timeout_minutes"] == 30 and stats["active_sessions"] >= 1
    assert httpx.post(echo_server.url + "/api/sessions/cleanup").json() == {"cleaned_sessions": 0}


def test_a_repeated_message_is_a_new_turn(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    chat(echo_server, [{"role": "user", "content": "yes"}], session)
    again = chat(echo_server, [{"role": "user", "content": "yes"}], session)
    assert again.json()["message"]["content"] == "You said: yes"
    assert history(echo_server, session)[-4:] == [("user", "yes"), ("assistant", "You said: yes")] * 2
    resent = chat(echo_server, [{"role": "user", "content": "yes"}, {"role": "assistant", "content": "You said: yes"},
                                {"role": "user", "content": "yes"}, {"role": "assistant", "content": "You said: yes"},
                                {"role": "user", "content": "/history"}], session)
    assert resent.json()["message"]["content"].count("user:yes") == 2  # the whole history resent: no duplicates


def test_client_may_send_only_new_messages(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    first = chat(echo_server, [{"role": "user", "content": "one"}], session)
    assert first.headers["x-session-id"] == session
    second = chat(echo_server, [{"role": "user", "content": "/history"}], session)
    assert second.json()["message"]["content"] == (
        "system:You are echo. | user:one | assistant:You said: one | user:/history")


def test_resent_full_history_is_not_duplicated(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    chat(echo_server, [{"role": "user", "content": "one"}], session)
    chat(echo_server, [{"role": "user", "content": "one"}, {"role": "assistant", "content": "You said: one"},
                       {"role": "user", "content": "two"}], session)
    assert history(echo_server, session) == [("user", "one"), ("assistant", "You said: one"),
                                             ("user", "two"), ("assistant", "You said: two")]


def test_session_id_in_body_and_delete(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    httpx.post(echo_server.url + "/api/chat", json={"model": "echo", "stream": False, "session_id": session,
                                                     "messages": [{"role": "user", "content": "x"}]})
    assert len(history(echo_server, session)) == 2
    assert httpx.delete(f"{echo_server.url}/api/sessions/{session}").status_code == 204
    gone = httpx.get(f"{echo_server.url}/api/sessions/{session}")
    assert gone.status_code == 404 and "not found" in gone.json()["error"]


def test_concurrent_turns_on_one_session_never_interleave(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    words = [f"/slow 3 0.02 t{i}" for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda w: chat(echo_server, [{"role": "user", "content": w}], session), words))
    turns = history(echo_server, session)
    assert len(turns) == 12
    assert [role for role, _ in turns] == ["user", "assistant"] * 6
    assert sorted(content for role, content in turns if role == "user") == sorted(words)


def test_streamed_turns_are_recorded_too(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    client = ollama.Client(host=echo_server.url, headers={"X-Session-ID": session})
    list(client.chat(model="echo", messages=[{"role": "user", "content": "streamed"}], stream=True))
    assert history(echo_server, session) == [("user", "streamed"), ("assistant", "You said: streamed")]


def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml())
    session = uuid.uuid4().hex
    with run_agent_server(agent, cwd=tmp_path) as server:
        chat(server, [{"role": "user", "content": "persist me"}], session)
    # sessions belong to the agent (by name) under $ATOLL_HOME, not to the folder of its files
    assert (tmp_path / "home" / ".atoll" / "sessions" / "echo.db").exists()
    assert not (tmp_path / "sessions.db").exists()
    with run_agent_server(agent, cwd=tmp_path) as server:
        assert history(server, session) == [("user", "persist me"), ("assistant", "You said: persist me")]
        follow = chat(server, [{"role": "user", "content": "/history"}], session)
        assert "user:persist me" in follow.json()["message"]["content"]


def test_explicit_session_db_wins_and_a_legacy_file_moves_under_atoll_home(tmp_path: Path) -> None:
    explicit = scripted_agent_toml("Mail_Bot", extra='[server]\nsession_db = "sessions.db"\n')
    agent = write_agent(tmp_path / "agent", explicit)
    session = uuid.uuid4().hex
    with run_agent_server(agent, cwd=tmp_path) as server:
        httpx.post(server.url + "/api/chat", headers={"X-Session-ID": session}, timeout=30,
                   json={"model": "Mail_Bot", "stream": False, "messages": [{"role": "user", "content": "old"}]})
    legacy = tmp_path / "agent" / "sessions.db"
    assert legacy.exists()  # the explicit session_db, relative to the agent file
    write_agent(tmp_path / "agent", scripted_agent_toml("Mail_Bot"))  # now without session_db
    with run_agent_server(agent, cwd=tmp_path) as server:
        assert history(server, session) == [("user", "old"), ("assistant", "You said: old")]
    stored = [p.name for p in (tmp_path / "home" / ".atoll" / "sessions").glob("*.db")]
    assert stored == ["mail_bot.db"]  # names are unique regardless of case
    assert not legacy.exists()


def test_sessions_expire_after_inactivity(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml(extra="[server]\nsession_timeout_minutes = 0.02\n"
                                                            "session_cleanup_interval_s = 0.2\n"))
    session = uuid.uuid4().hex
    with run_agent_server(agent, cwd=tmp_path) as server:
        chat(server, [{"role": "user", "content": "short-lived"}], session)
        # 0.02 minutes = 1.2 s of inactivity; the background task then removes it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and httpx.get(server.url + "/api/sessions").json()["active_sessions"]:
            time.sleep(0.1)
        assert httpx.get(server.url + "/api/sessions").json()["active_sessions"] == 0
        assert httpx.get(f"{server.url}/api/sessions/{session}").status_code == 404


def test_deleting_a_session_mid_turn_is_not_undone_by_that_turn(echo_server: AgentServer) -> None:
    session = uuid.uuid4().hex
    chat(echo_server, [{"role": "user", "content": "first"}], session)  # the session exists
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # 4 s of generation: a loaded machine's polls still see it in progress
        turn = pool.submit(chat, echo_server, [{"role": "user", "content": "/slow 40 0.1"}], session)
        deadline = time.monotonic() + 10
        while httpx.get(echo_server.url + "/atoll/status").json().get("active_generations", 0) == 0:
            assert time.monotonic() < deadline and not turn.done(), "the turn was never seen in progress"
            time.sleep(0.02)
        deleted = httpx.delete(f"{echo_server.url}/api/sessions/{session}", timeout=30)
        assert turn.result().status_code == 200
    assert deleted.status_code == 204  # it waited for the turn, then deleted what the turn saved
    assert httpx.get(f"{echo_server.url}/api/sessions/{session}").status_code == 404


def test_session_list_pages_newest_first_and_plain_generate_keeps_nothing(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml())
    with run_agent_server(agent, cwd=tmp_path) as server:
        for _ in range(3):  # plain, as Ollama clients send it: stateless, no session on the server
            plain = httpx.post(server.url + "/api/generate", json={"model": "echo", "prompt": "hi", "stream": False})
            assert plain.status_code == 200 and "x-session-id" not in plain.headers
        # context carries the conversation itself, so Ollama clients still continue it
        client = ollama.Client(host=server.url)
        first = client.generate(model="echo", prompt="remember me")
        second = client.generate(model="echo", prompt="/history", context=first.context)
        assert second.response == "system:You are echo. | user:remember me | assistant:You said: remember me" \
                                  " | user:/history"
        assert httpx.get(server.url + "/api/sessions").json()["sessions"] == []
        ids = [uuid.uuid4().hex for _ in range(3)]
        for session in ids:
            chat(server, [{"role": "user", "content": "one"}], session)
        chat(server, [{"role": "user", "content": "two"}], ids[0])  # now the newest, with two turns
        first = httpx.get(server.url + "/api/sessions", params={"limit": 2}).json()
        assert first["active_sessions"] == 3 and first["timeout_minutes"] == 30
        assert [s["id"] for s in first["sessions"]] == [ids[0], ids[2]]
        assert first["sessions"][0]["turns"] == 2 and first["sessions"][0]["updated_at"].endswith("+00:00")
        rest = httpx.get(server.url + "/api/sessions", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [s["id"] for s in rest["sessions"]] == [ids[1]] and rest["next_cursor"] is None
        bad = httpx.get(server.url + "/api/sessions", params={"cursor": "nonsense"})
        assert bad.status_code == 400 and "cursor" in bad.json()["error"]
        assert httpx.get(server.url + "/api/sessions", params={"limit": 0}).status_code == 400
        one = httpx.get(f"{server.url}/api/sessions/{ids[0]}").json()
        assert one["created_at"].endswith("+00:00")
        wrong = httpx.post(server.url + "/api/generate", json={"model": "nope", "prompt": "x"}).json()
        assert wrong["error"] == "model 'nope' not found"  # Ollama's text, which clients compare
        assert wrong["detail"] == "model 'nope' not found; this server serves: echo:latest"


def test_with_keys_each_key_lists_only_its_own_sessions(tmp_path: Path) -> None:
    agent = write_agent(tmp_path, scripted_agent_toml(extra='[server]\napi_keys = ["key-a", "key-b"]\n'))
    with run_agent_server(agent, cwd=tmp_path) as server:
        for key in ("key-a", "key-b"):
            httpx.post(server.url + "/api/chat", timeout=30, headers={"X-Session-ID": f"of-{key}",
                                                                      "Authorization": f"Bearer {key}"},
                       json={"model": "echo", "stream": False, "messages": [{"role": "user", "content": "x"}]})
        listed = httpx.get(server.url + "/api/sessions", headers={"Authorization": "Bearer key-a"}).json()
    assert [s["id"] for s in listed["sessions"]] == ["of-key-a"]
