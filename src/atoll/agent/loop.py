"""The tool-calling loop: ask the provider, run the calls it requests, feed the results back,
stop on a final answer or at the round limit."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from atoll.agent.approvals import Approvals, Pending, drop_questions, find_pending, is_yes, question
from atoll.agent.arguments import Checked, plan_calls
from atoll.agent.budget import cut_result, trim_history
from atoll.agent.events import (
    AgentEvent,
    ApprovalRequested,
    ClientToolCalls,
    RunFinished,
    ToolFinished,
    ToolStarted,
)
from atoll.agent.limits import OptionLimits
from atoll.agent.textcalls import TRIGGERS, find_text_calls, hold_from
from atoll.messages import (
    DoneReason,
    Finished,
    GenerationOptions,
    Message,
    ModelEvent,
    ModelRequest,
    ResponseFormat,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallRequested,
    ToolResult,
    ToolSpec,
    Usage,
)
from atoll.tools import call_timeout

if TYPE_CHECKING:
    from atoll.providers.base import Provider
    from atoll.tools import Toolbox

logger = logging.getLogger(__name__)

#: Time past a call's own timeout the loop still waits for the toolbox, which ends the call itself.
CALL_GRACE = 3.0


@dataclass
class RunRequest:
    """One turn of a conversation as the loop sees it (the agent's system prompt is added here)."""

    messages: list[Message]
    client_tools: list[ToolSpec] = field(default_factory=list)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    format: ResponseFormat = None
    think: bool | str | None = None
    #: Who asks (the API key, or "" without keys): approvals are bound to it.
    owner: str = ""
    #: A client's housekeeping request (Open WebUI's title, tags, follow-ups): no agent tools.
    background: bool = False


@dataclass
class _Round:
    """What one LLM call produced.

    With ``hold`` (the agent has tools), streamed text from the first character that may begin a
    tool call written as text (``<tool_call>``, ``{``, a code fence…) is held back until the round
    ends: :meth:`finish` then turns it into calls, or lets it out as text.
    """

    hold: bool = False
    text: str = ""
    thinking: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    reason: DoneReason = "stop"
    usage: Usage = field(default_factory=Usage)
    sent: int = 0
    holding: bool = False

    def take(self, event: ModelEvent) -> list[TextDelta | ThinkingDelta]:
        """Record ``event``; what to pass on as it streams."""
        if isinstance(event, TextDelta):
            self.text += event.text
            return self._release()
        if isinstance(event, ThinkingDelta):
            self.thinking += event.text
            return [event]
        if isinstance(event, ToolCallRequested):
            self.calls.append(event.call)
        elif isinstance(event, Finished):
            self.reason, self.usage = event.reason, event.usage
        return []

    def _release(self) -> list[TextDelta | ThinkingDelta]:
        if self.holding:
            return []
        pending = self.text[self.sent:]
        stop = hold_from(pending) if self.hold else None
        if stop is not None:
            self.holding = True
            pending = pending[:stop]
        elif self.hold:
            pending = pending[:len(pending) - _partial_trigger(pending)]
        self.sent += len(pending)
        return [TextDelta(pending)] if pending else []

    def finish(self, known: set[str]) -> list[TextDelta]:
        """At the round's end: calls written as text become calls; other held text goes out."""
        if not self.calls:
            found = find_text_calls(self.text, known)
            if found is not None:
                self.calls, self.text = found.calls, found.remainder
                return []
        rest, self.sent = self.text[self.sent:], len(self.text)
        return [TextDelta(rest)] if rest else []


def _partial_trigger(text: str) -> int:
    """How many trailing characters could be the start of a trigger (``<tool_``…): wait for more."""
    for size in range(min(len(text), 13), 0, -1):
        if any(t.startswith(text[-size:]) for t in TRIGGERS):
            return size
    return 0


class AgentRunner:
    def __init__(
        self,
        provider: Provider,
        toolbox: Toolbox,
        *,
        system_prompt: str | None,
        defaults: GenerationOptions,
        max_iterations: int = 10,
        tool_timeout: float = 60.0,
        max_repeated_calls: int = 3,
        max_tool_result_chars: int = 20_000,
        approvals: Approvals | None = None,
        limits: OptionLimits | None = None,
    ) -> None:
        self.provider = provider
        self.toolbox = toolbox
        self.system_prompt = system_prompt
        self.defaults = defaults
        self.limits = limits or OptionLimits()
        self.max_iterations = max_iterations
        self.tool_timeout = tool_timeout
        self.max_repeated_calls = max_repeated_calls
        self.max_tool_result_chars = max_tool_result_chars
        self.approvals = approvals if approvals is not None and approvals.rules else None

    def _prompt(self, messages: list[Message]) -> list[Message]:
        if self.system_prompt:
            return [Message(role="system", content=self.system_prompt), *messages]
        return list(messages)

    def _budget(self, options: GenerationOptions) -> int:
        """Tokens the prompt may use: the model's context less room for the reply (0: unknown)."""
        context = options.num_ctx or self.provider.profile.context_length or 0
        reserve = options.max_tokens or min(1024, context // 4)
        return max(context - reserve, 0)

    async def run(self, request: RunRequest) -> AsyncGenerator[AgentEvent, None]:
        """Yield text as it streams, tool progress, and exactly one final ``RunFinished``."""
        started = time.perf_counter_ns()
        transcript = self._prompt(drop_questions(request.messages))
        added: list[Message] = []
        usage = Usage()
        options = self.limits.apply(request.options.merged_over(self.defaults),
                                    self.provider.profile.context_length)
        budget = self._budget(options)
        repeats: Counter[str] = Counter()
        found = None
        if self.approvals is not None and not request.background:
            found = find_pending(self.approvals, request.messages, request.owner)
        if found is not None:
            pending, at = found
            transcript = [*self._prompt(drop_questions(request.messages[:at])), *pending.round]
            added.extend(pending.round)
            async for event in self._decided(pending, request.messages[-1].content, transcript, added):
                yield event
        for round_number in range(1, self.max_iterations + 1):
            own = {} if request.background else {spec.name: spec for spec in self.toolbox.specs()}
            client = {t.name: t for t in request.client_tools if t.name not in own}
            offered = [*own.values(), *client.values()]
            model_request = ModelRequest(trim_history(transcript, budget, offered), offered, options,
                                         request.format, request.think)
            turn = _Round(hold=bool(own))
            async for model_event in self.provider.stream(model_request):
                for out in turn.take(model_event):
                    yield out
            usage = usage + turn.usage
            for out in turn.finish(set(own)):
                yield out
            plan = plan_calls(turn.calls, own, client)
            assistant = Message(role="assistant", content=turn.text, thinking=turn.thinking or None,
                                tool_calls=plan.as_requested or None,
                                internal=bool(plan.server) and not plan.client)
            transcript.append(assistant)
            added.append(assistant)
            repeated = self._repeated(plan.server, repeats)
            if repeated is not None:
                plan.server = [checked if checked.call is not repeated else
                               Checked(repeated, f"Error: not run again: {repeated.name!r} was already called "
                                                 f"{self.max_repeated_calls - 1} times with these arguments.")
                               for checked in plan.server]
            gated = self._gated(plan.server, own)
            if gated:
                async for event in self._ask(gated, plan.server, turn, transcript, added, request):
                    yield event
                yield RunFinished(turn.reason, _total(usage, started), added, round_number)
                return
            if plan.server:
                async for event in self._run_tools(plan.server, transcript, added):
                    yield event
            if repeated is not None:
                why = (f"I stopped calling tools because {repeated.name!r} was requested with the same "
                       f"arguments {self.max_repeated_calls} times (the agent's max_repeated_calls limit).")
                async for event in self._wrap_up(transcript, added, options, request, why, usage, started,
                                                 round_number):
                    yield event
                return
            if plan.client:
                yield ClientToolCalls(plan.client)
            if not plan.server or plan.client:
                yield RunFinished(turn.reason, _total(usage, started), added, round_number)
                return
        why = (f"I stopped after {self.max_iterations} tool-calling rounds without reaching a final "
               "answer (the agent's max_iterations limit).")
        async for event in self._wrap_up(transcript, added, options, request, why, usage, started,
                                         self.max_iterations):
            yield event

    def _gated(self, calls: list[Checked], own: dict[str, ToolSpec]) -> list[Checked]:
        """The calls that wait for a person's approval."""
        if self.approvals is None:
            return []
        rules = self.approvals.rules
        return [c for c in calls if c.error is None and c.call.name in own and rules.needs(own[c.call.name])]

    async def _ask(self, gated: list[Checked], calls: list[Checked], turn: _Round, transcript: list[Message],
                   added: list[Message], request: RunRequest) -> AsyncIterator[AgentEvent]:
        """End the turn with a question: the first gated call waits for approval (with the round it
        belongs to); the other calls run, except further gated ones, which the model may ask again."""
        assert self.approvals is not None
        first = gated[0]
        round_messages = [added.pop()]  # the assistant's calls: kept with the approval, not in the session yet
        others = [c if not any(c is g for g in gated) else
                  Checked(c.call, "Not run: another call is waiting for the user's approval; call this one "
                                  "again afterwards if it is still needed.")
                  for c in calls if c is not first]
        if others:
            async for event in self._run_tools(others, transcript, round_messages):
                yield event
        pending = self.approvals.open(request.owner, first.call, round_messages)
        text = question(pending)
        yield TextDelta(("\n\n" if turn.text.strip() else "") + text)
        yield ApprovalRequested(pending.id, first.call)
        added.append(Message(role="assistant", content=text, approval={
            "id": pending.id, "tool": first.call.name, "arguments": first.call.arguments, "state": "pending"}))

    async def _decided(self, pending: Pending, reply: str, transcript: list[Message],
                       added: list[Message]) -> AsyncIterator[AgentEvent]:
        """Apply the decision (the user's reply, unless the API decided first): run the call once,
        or tell the model it was refused. A decision sent again gets the recorded outcome."""
        assert self.approvals is not None
        if pending.state == "pending":
            self.approvals.decide(pending, is_yes(reply), by="chat")
        call = pending.call
        record = {"id": pending.id, "tool": call.name, "decision": pending.state, "by": pending.decided_by,
                  "reason": pending.reason or None}
        if pending.result is None and pending.state == "approved":
            async for event in self._run_tools([Checked(call)], transcript, added):
                yield event
            pending.result = ToolResult(content=transcript[-1].content)
            transcript[-1].approval = record
            return
        if pending.result is None:
            why = f" ({pending.reason})" if pending.reason else ""
            pending.result = ToolResult(content=f"The user declined this call{why}; it was not run. Do not call "
                                                "it again unless they ask; answer without it.", is_error=True)
        yield ToolStarted(call, "atoll")
        yield ToolFinished(call, pending.result)
        message = Message(role="tool", content=pending.result.content, tool_call_id=call.id, tool_name=call.name,
                          internal=True, approval=record)
        transcript.append(message)
        added.append(message)

    def _repeated(self, calls: list[Checked], repeats: Counter[str]) -> ToolCall | None:
        """The first call made ``max_repeated_calls`` times with the same arguments, if any."""
        found = None
        for checked in calls:
            if checked.error is not None:
                continue
            key = checked.call.name + json.dumps(checked.call.arguments, sort_keys=True, default=str)
            repeats[key] += 1
            if repeats[key] >= self.max_repeated_calls and found is None:
                found = checked.call
        return found

    async def _wrap_up(self, transcript: list[Message], added: list[Message], options: GenerationOptions,
                       request: RunRequest, why: str, usage: Usage, started: int,
                       rounds: int) -> AsyncIterator[AgentEvent]:
        """One last round with no tools on offer: the model answers from what it has, then the
        reason the loop stopped. The run ends with that answer (the best there is so far)."""
        nudge = Message(role="user", content=f"[atoll] {why} Do not call any tool now. Answer my question as "
                                             "well as you can with the information you already have.")
        last = _Round(hold=False)
        final_request = ModelRequest(trim_history([*transcript, nudge], self._budget(options)), [], options,
                                     request.format, request.think)
        async for model_event in self.provider.stream(final_request):
            for out in last.take(model_event):
                yield out
        usage = usage + last.usage
        notice = ("\n\n" if last.text.strip() else "") + why
        yield TextDelta(notice)
        added.append(Message(role="assistant", content=last.text + notice, thinking=last.thinking or None))
        yield RunFinished("stop", _total(usage, started), added, rounds)

    async def _run_tools(
        self, calls: list[Checked], transcript: list[Message], added: list[Message]
    ) -> AsyncIterator[AgentEvent]:
        """Run independent calls concurrently; report each start and finish as it happens. A call
        that failed its checks is not run: its error is its result.

        Plain asyncio tasks rather than a task group: an async generator must not yield inside a
        task group's scope, and if the consumer goes away (client disconnect) the ``finally``
        cancels whatever is still running.
        """
        specs = {spec.name: spec for spec in self.toolbox.specs()}
        sources = {name: spec.source for name, spec in specs.items()}
        for checked in calls:
            yield ToolStarted(checked.call, sources.get(checked.call.name, "atoll"))
        runnable = [c.call for c in calls if c.error is None]
        results: dict[str, ToolResult] = {c.call.id: ToolResult(content=c.error, is_error=True, source="atoll")
                                          for c in calls if c.error is not None}
        for call in (c.call for c in calls if c.error is not None):
            yield ToolFinished(call, results[call.id])
        tasks = [asyncio.ensure_future(self._call_tool(call, call_timeout(specs.get(call.name), self.tool_timeout)))
                 for call in runnable]
        try:
            for finished in asyncio.as_completed(tasks):
                call, result = await finished
                result.content = cut_result(result.content, self.max_tool_result_chars)
                results[call.id] = result
                yield ToolFinished(call, result)
        finally:
            for task in tasks:
                task.cancel()
        for checked in calls:
            call = checked.call
            message = Message(role="tool", content=results[call.id].content, tool_call_id=call.id,
                              tool_name=call.name, internal=True)
            transcript.append(message)
            added.append(message)

    async def _call_tool(self, call: ToolCall, timeout: float) -> tuple[ToolCall, ToolResult]:
        """One call; every failure becomes an error result the LLM sees, never an exception.
        ``timeout`` is the call's own (:func:`atoll.tools.call_timeout`); past it plus a grace for
        the toolbox's own clean-up, the call is abandoned."""
        try:
            with anyio.fail_after(timeout + CALL_GRACE):
                result = await self.toolbox.call(call.name, call.arguments, timeout=timeout)
        except TimeoutError:
            result = ToolResult(content=f"Error: tool {call.name!r} timed out after {timeout:g} s",
                                is_error=True)
        except Exception as exc:
            logger.exception("tool %s failed", call.name)
            result = ToolResult(content=f"Error: tool {call.name!r} failed: {exc}", is_error=True)
        return call, result


def _total(usage: Usage, started_ns: int) -> Usage:
    usage.total_duration_ns = time.perf_counter_ns() - started_ns
    return usage
