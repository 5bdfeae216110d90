"""The agent as an A2A agent (A2A 1.0 through the official ``a2a-sdk``): its card at
``/.well-known/agent-card.json`` and the JSON-RPC binding at ``/a2a``.

A message runs one turn through ``converse`` in the session named by its ``contextId``; the
answer streams as chunks of one artifact, tool activity as ``working`` status messages. A turn that
ends on a tool call waiting for approval leaves the task ``input-required`` with the question; the
next message on that task (the same ``taskId`` and ``contextId``) is the user's answer. Tasks are
kept per API key (another key cannot get or cancel them), like sessions. Cancelling a task
cancels its run, which stops the generation and the tool calls in flight. Request headers count as
on the other dialects: ``X-Atoll-Tool-Activity``, and ``X-Atoll-Delegation-Depth`` (a request too
deep in a chain of delegating agents fails, with the message other dialects send with their 508).
Built on the first A2A request (:class:`atoll.server.lazy.LazyApp`): the SDK is heavy and most
agents are never asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from a2a.auth.user import User
from a2a.helpers import new_task, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
    TaskState,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from atoll.dialects.a2a import A2A_PATH, CARD_PATH
from atoll.dialects.a2a.parse import run_request
from atoll.dialects.a2a.render import ANSWER_ARTIFACT, TaskRenderer
from atoll.errors import AtollError
from atoll.server.context import caller
from atoll.server.conversation import converse

if TYPE_CHECKING:
    from atoll.server.runtime import AgentRuntime

logger = logging.getLogger(__name__)



class _KeyHolder(User):
    """The caller as the A2A SDK sees it: the fingerprint of its API key ("" without keys)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    @property
    def is_authenticated(self) -> bool:
        return bool(self.owner)

    @property
    def user_name(self) -> str:
        return self.owner


class _CallerContext(DefaultServerCallContextBuilder):
    def build_user(self, request: Request) -> User:
        return _KeyHolder(caller(request))


class AtollExecutor(AgentExecutor):
    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        task_id, context_id = context.task_id or "", context.context_id or ""
        updater = TaskUpdater(event_queue, task_id, context_id)
        if context.current_task is None:
            history = [context.message] if context.message is not None else []
            await event_queue.enqueue_event(new_task(task_id, context_id, TaskState.TASK_STATE_SUBMITTED,
                                                     history=history))
        try:
            run = run_request(context.message)
            self.runtime.require_ready()
        except AtollError as exc:
            await updater.reject(new_text_message(exc.message, context_id=context_id, task_id=task_id))
            return
        await updater.start_work()
        try:
            await self._run(updater, run, context)
        except AtollError as exc:
            await updater.failed(new_text_message(exc.message, context_id=context_id, task_id=task_id))

    async def _run(self, updater: TaskUpdater, run: Any, context: RequestContext) -> None:
        renderer, started = TaskRenderer(), False
        owner = context.call_context.user.user_name
        headers = context.call_context.state.get("headers") or {}  # lower-cased names
        async for event in converse(self.runtime, run, session_id=updater.context_id, owner=owner,
                                    headers=headers):
            for update in renderer.chunks(event):
                if update.kind == "answer":
                    await updater.add_artifact([new_text_part(update.text)], artifact_id=ANSWER_ARTIFACT,
                                               name=ANSWER_ARTIFACT, append=started, last_chunk=False)
                    started = True
                else:
                    await updater.update_status(TaskState.TASK_STATE_WORKING, new_text_message(
                        update.text, context_id=updater.context_id, task_id=updater.task_id))
        await updater.add_artifact([new_text_part("")], artifact_id=ANSWER_ARTIFACT, name=ANSWER_ARTIFACT,
                                   append=started, last_chunk=True)
        if renderer.approval is not None:
            await updater.requires_input(new_text_message(
                renderer.answer.strip(), context_id=updater.context_id, task_id=updater.task_id))
            return
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """The SDK has already cancelled :meth:`execute` (and with it the generation and its tools)."""
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


def _skills(runtime: AgentRuntime) -> list[AgentSkill]:
    agent = runtime.config.agent
    skills = [AgentSkill(id=f"capability:{c}", name=c, description=f"{agent.name}: {c}", tags=["capability"])
              for c in agent.capabilities]
    skills += [AgentSkill(id=f"tool:{s.name}", name=s.name, description=s.description or s.name, tags=["tool"])
               for s in runtime.toolbox.specs()]
    return skills or [AgentSkill(id="chat", name=agent.name, description=agent.description or "Chat with the agent.",
                                 tags=["chat"])]


def agent_card(runtime: AgentRuntime, base_url: str) -> AgentCard:
    """The card, with the interface URL under ``base_url`` (the URL the caller reached us by)."""
    agent = runtime.config.agent
    card = AgentCard(
        name=agent.name, description=agent.description or f"atoll agent {agent.name}", version=agent.version,
        supported_interfaces=[AgentInterface(url=base_url.rstrip("/") + A2A_PATH,
                                             protocol_binding=TransportProtocol.JSONRPC,
                                             protocol_version=PROTOCOL_VERSION_CURRENT)],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["text/plain"],
        default_output_modes=["text/plain"], skills=_skills(runtime))
    if runtime.config.server.api_keys:
        card.security_schemes["bearer"].CopyFrom(SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="bearer", description="one of the agent's API keys ([server] api_keys)")))
        card.security_requirements.append(SecurityRequirement(schemes={"bearer": StringList()}))
    return card


def public_base_url(request: Request) -> str:
    """The URL the caller reached this agent by. A proxy in front (the deployment server's
    ``/agent/{name}/`` pass-through) says so with ``X-Forwarded-Proto``/``-Host``/``-Prefix``; the
    card only ever goes back to the caller who sent them."""
    headers = request.headers
    scheme = headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = headers.get("x-forwarded-host", request.url.netloc).split(",")[0].strip()
    prefix = headers.get("x-forwarded-prefix", "").rstrip("/")
    return f"{scheme}://{host}{prefix}{request.scope.get('root_path', '')}"


def build_app(runtime: AgentRuntime) -> Starlette:
    handler = DefaultRequestHandler(agent_executor=AtollExecutor(runtime), task_store=InMemoryTaskStore(),
                                    agent_card=agent_card(runtime, "http://localhost"))

    async def card(request: Request) -> JSONResponse:
        return JSONResponse(agent_card_to_dict(agent_card(runtime, public_base_url(request))))

    routes = [Route(CARD_PATH, card, methods=["GET"]),
              *create_jsonrpc_routes(handler, A2A_PATH, context_builder=_CallerContext())]
    return Starlette(routes=routes)
