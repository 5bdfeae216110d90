"""Which of a request's messages a session does not hold yet: a client sends only its new turn, or
resends the whole conversation (the HTTP round trips are in tests/server/test_sessions.py)."""

from __future__ import annotations

from atoll.messages import Message
from atoll.sessions.manager import new_messages


def user(text: str) -> Message:
    return Message(role="user", content=text)


def reply(text: str, internal: bool = False) -> Message:
    return Message(role="assistant", content=f"You said: {text}", internal=internal)


def conversation(*texts: str) -> list[Message]:
    return [m for text in texts for m in (user(text), reply(text))]


STORED = [*conversation("a", "b"), Message(role="tool", content="ran", internal=True), *conversation("c")]


def test_a_full_resend_adds_only_what_follows_the_held_messages() -> None:
    resent = [*conversation("a", "b", "c"), user("d")]
    assert new_messages(STORED, resent) == [user("d")]
    assert new_messages(STORED, [*conversation("a", "b", "c"), reply("c"), user("d")]) == [user("d")]


def test_a_resend_ending_on_the_last_held_message_is_a_new_turn() -> None:
    """Nothing follows "c": the client says "c" again (as one says "yes" twice)."""
    resent = [*conversation("a", "b"), user("c")]
    assert new_messages(STORED, resent) is resent
    assert new_messages(STORED, conversation("a", "b", "c")) == []  # only our reply follows: nothing new


def test_fewer_messages_than_the_session_holds_are_all_new() -> None:
    """However they begin: a client that sends only its new turn, even one repeating the session's
    first messages, adds all it sent."""
    for incoming in ([user("a")], [user("a"), user("b")], [*conversation("a", "b"), reply("c")],
                     [user("a"), reply("a"), user("b"), reply("b")]):
        assert new_messages(STORED, incoming) is incoming


def test_a_resend_that_departs_from_the_session_is_all_new() -> None:
    for incoming in ([*conversation("a", "x"), user("d")], [*conversation("a", "b"), user("d"), user("e")]):
        assert new_messages(STORED, incoming) is incoming


def test_the_first_turn_of_a_session_is_all_new() -> None:
    incoming = [user("a")]
    assert new_messages([], incoming) is incoming
    assert new_messages([reply("x", internal=True)], incoming) is incoming  # nothing a client wrote
