"""One MCP server: connect, list its tools, call them, reconnect when the link is lost.

Why a runner task: the SDK's ``Client`` is an async context manager full of anyio cancel scopes
and task groups, which must be entered and exited by the same task. So each connection attempt
gets its own long-lived task (a *runner*) that opens ``async with Client(...)``, lists the tools,
then parks until told to stop. Callers in any task use the open client to send requests.

A runner ends when it is told to stop, or on its own when the transport breaks (a crashed HTTP
transport cancels the task that entered it). A stdio server that dies leaves the client open
but closed underneath: the next request fails at once with "Connection closed". Either way the
next call starts a fresh runner (restarting the stdio process or opening a new HTTP session) and
is retried once. Old runners are retired in the background and awaited by :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import anyio
from mcp import Client
from mcp.client.subscriptions import ListenNotSupportedError, SubscriptionLost
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    CallToolResult,
    Implementation,
    RequestParamsMeta,
    Tool,
    ToolListChangedNotification,
)
from pydantic import ValidationError

from atoll._version import __version__
from atoll.config import McpServerConfig
from atoll.mcp_client.transports import StderrTail, open_transport

logger = logging.getLogger(__name__)

ServerState = Literal["idle", "connecting", "connected", "restarting", "failed", "disabled", "closed"]

#: How long aclose() waits for runners to shut their servers down before cancelling them.
#: The SDK's stdio shutdown alone may take 2 s (stdin close) + 2 s (SIGTERM) before SIGKILL.
CLOSE_TIMEOUT = 8.0
#: Upper bound on tools/list pages, so a server whose cursor never ends cannot hang us.
MAX_LIST_PAGES = 100

#: Errors the HTTP transport synthesises when the server no longer knows our session.
_HTTP_SESSION_LOST = {(INVALID_REQUEST, "Session terminated"), (INTERNAL_ERROR, "Server returned an error response")}


class ServerUnavailable(Exception):
    """The server could not be (re)connected; the message says why."""


@dataclass(eq=False)
class _Runner:
    """One connection attempt and, once connected, the open client it holds."""

    stop: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    changed: anyio.Event = field(default_factory=anyio.Event)
    client: Client | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None
    #: Cancels the attempt while it is still connecting (a native ``task.cancel()`` can be
    #: absorbed by the SDK's own timeout scopes; an anyio scope cannot).
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class McpConnection:
    """A named MCP server and its current runner."""

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        connect_timeout: float = 10.0,
        on_tools_changed: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.connect_timeout = connect_timeout
        self.state: ServerState = "idle" if config.enabled else "disabled"
        self.tools: list[Tool] = []
        self.last_error: str | None = None
        self.protocol_version: str | None = None
        #: Successful reconnections after the first connection.
        self.restarts = 0
        #: Tool lists re-fetched because the server said they changed.
        self.refreshes = 0
        self._on_tools_changed = on_tools_changed or (lambda: None)
        self._runner: _Runner | None = None
        self._generation = 0
        self._lock = anyio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def closed(self) -> bool:
        """Read through a property so type narrowing from before an ``await`` does not stick."""
        return self.state == "closed"

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "transport": self.config.type,
            "tools": len(self.tools),
            "last_error": self.last_error,
            "protocol_version": self.protocol_version,
            "restarts": self.restarts,
        }

    # ---- connecting ---------------------------------------------------------------------

    async def connect(self) -> bool:
        """First connection; a failure is logged as a warning naming the server and the reason."""
        async with self._lock:
            return await self._open(self.connect_timeout)

    async def _open(self, timeout: float) -> bool:
        """Retire the current runner, start a new one and wait for it up to ``timeout``."""
        if self.state == "closed":
            raise ServerUnavailable(f"MCP server {self.name!r} is closed")
        reconnecting = self._runner is not None
        self.state = "restarting" if reconnecting else "connecting"
        if self._runner is not None:
            self._retire(self._runner)
        runner = _Runner()
        self._runner = runner
        runner.task = asyncio.create_task(self._run(runner), name=f"mcp-server-{self.name}")
        with anyio.move_on_after(timeout):
            await runner.ready.wait()
        if self.closed:  # aclose() ran meanwhile and retired this runner
            return False
        if runner.client is None:
            if not runner.ready.is_set():
                runner.error = f"no answer within {timeout:g} s"
                self._retire(runner)
            self.state, self.last_error = "failed", runner.error
            logger.warning("MCP server %r is unavailable: %s", self.name, runner.error)
            return False
        self._generation += 1
        if reconnecting:
            self.restarts += 1
        self.state, self.last_error = "connected", None
        self.protocol_version = runner.client.protocol_version
        logger.info("MCP server %r connected (%s, protocol %s, %d tools)",
                    self.name, self.config.type, self.protocol_version, len(self.tools))
        return True

    def _retire(self, runner: _Runner) -> None:
        """Let ``runner`` close its client in the background (cancelled if still connecting)."""
        runner.stop.set()
        task = runner.task
        if task is None or task.done():
            return
        if not runner.ready.is_set():
            runner.scope.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _run(self, runner: _Runner) -> None:
        """The runner task: hold ``async with Client`` until told to stop or the link breaks."""
        with runner.scope:
            await self._hold_client(runner)

    async def _hold_client(self, runner: _Runner) -> None:
        stderr = StderrTail(self.name) if self.config.type == "stdio" else None
        try:
            async with self._client(runner, stderr) as client:
                if stderr is not None:
                    stderr.release()
                tools = await self._list_tools(client)
                if runner is self._runner:
                    self._set_tools(tools)
                runner.client = client
                runner.ready.set()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_subscription, client, runner)
                    tg.start_soon(self._refresh_on_change, client, runner)
                    await runner.stop.wait()
                    tg.cancel_scope.cancel()
        except Exception as exc:  # task top: any failure ends this runner, never the process
            if stderr is not None:
                await stderr.drain()
            runner.error = describe_error(exc, stderr, self.config.command if self.config.type == "stdio" else None)
            if runner.ready.is_set() and runner is self._runner and not runner.stop.is_set():
                self.state, self.last_error = "failed", runner.error
                logger.warning("MCP server %r disconnected: %s", self.name, runner.error)
        finally:
            if stderr is not None:
                stderr.release()
            runner.client = None
            runner.ready.set()

    def _client(self, runner: _Runner, stderr: StderrTail | None) -> Client:
        async def on_message(message: Any) -> None:
            if isinstance(message, ToolListChangedNotification):
                runner.changed.set()

        return Client(
            open_transport(self.config, stderr),
            read_timeout_seconds=self.config.timeout,
            message_handler=on_message,
            client_info=Implementation(name="atoll", version=__version__),
        )

    # ---- tool lists ---------------------------------------------------------------------

    async def _list_tools(self, client: Client) -> list[Tool]:
        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    def _set_tools(self, tools: list[Tool]) -> None:
        self.tools = tools
        self._on_tools_changed()

    async def _watch_subscription(self, client: Client, runner: _Runner) -> None:
        """2026-07-28 servers announce list changes only on a ``subscriptions/listen`` stream;
        older ones send ``notifications/tools/list_changed`` to the message handler."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    runner.changed.set()
        except ListenNotSupportedError:
            return
        except (MCPError, SubscriptionLost, TimeoutError) as exc:
            logger.info("MCP server %r: no tools/list_changed subscription: %s", self.name, exc)

    async def _refresh_on_change(self, client: Client, runner: _Runner) -> None:
        while True:
            await runner.changed.wait()
            runner.changed = anyio.Event()
            try:
                tools = await self._list_tools(client)
            except (MCPError, TimeoutError, ValidationError) as exc:
                logger.warning("MCP server %r: refreshing the tool list failed: %s", self.name, exc)
                continue
            if runner is self._runner:
                self.refreshes += 1
                self._set_tools(tools)
                logger.info("MCP server %r: tool list changed, now %d tools", self.name, len(tools))

    # ---- calling ------------------------------------------------------------------------

    async def call_tool(self, tool: str, arguments: dict[str, Any], *, timeout: float,
                        meta: dict[str, Any] | None = None) -> CallToolResult:
        """Call ``tool`` (with ``meta`` as the request's ``_meta``); on a lost link reconnect once and retry.

        Raises ``MCPError`` (JSON-RPC errors, timeouts), ``ServerUnavailable`` and ``TimeoutError``.
        """
        deadline = anyio.current_time() + timeout
        params_meta = cast(RequestParamsMeta, meta) if meta else None
        client, generation = await self._usable_client(deadline)
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=_left(deadline), meta=params_meta)
        except MCPError as exc:
            if not self._link_lost(exc):
                raise
            logger.info("MCP server %r: %s; reconnecting", self.name, exc.error.message)
        client = await self._reconnect(generation, deadline)
        return await client.call_tool(tool, arguments, read_timeout_seconds=_left(deadline), meta=params_meta)

    def _link_lost(self, exc: MCPError) -> bool:
        if exc.error.code == CONNECTION_CLOSED:
            return True
        return self.config.type != "stdio" and (exc.error.code, exc.error.message) in _HTTP_SESSION_LOST

    async def _usable_client(self, deadline: float) -> tuple[Client, int]:
        runner = self._runner
        if runner is not None and runner.client is not None:
            return runner.client, self._generation
        return await self._reconnect(self._generation, deadline), self._generation

    async def _reconnect(self, seen_generation: int, deadline: float) -> Client:
        """A new runner, unless another caller already replaced the one seen as broken."""
        with anyio.fail_after(_left(deadline)):
            async with self._lock:
                runner = self._runner
                if self._generation == seen_generation or runner is None or runner.client is None:
                    await self._open(min(self.connect_timeout, _left(deadline)))
                    runner = self._runner
        if runner is None or runner.client is None:
            raise ServerUnavailable(f"MCP server {self.name!r} is unavailable: {self.last_error}")
        return runner.client

    # ---- closing ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the runners; each closes its client, which ends the server process."""
        if self._runner is not None:
            self._retire(self._runner)
            self._runner = None
        if self.state != "disabled":
            self.state = "closed"
        tasks = set(self._retired)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        for task in pending:
            logger.warning("MCP server %r did not shut down in %g s; cancelling", self.name, CLOSE_TIMEOUT)
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)


def _left(deadline: float) -> float:
    """Seconds until ``deadline``, never zero (the SDK treats 0 as "expired already")."""
    return max(deadline - anyio.current_time(), 0.001)


def describe_error(exc: BaseException, stderr: StderrTail | None = None, command: str | None = None) -> str:
    """One line for a connection failure: the innermost errors, plus the server's stderr tail.
    ``command`` is the stdio server's command, named when it cannot be found."""
    leaves = list(_leaves(exc))
    text = "; ".join(_describe_leaf(e, command) for e in leaves)
    if stderr is not None and stderr.lines:
        text += f" (stderr: {stderr.text()})"
    return text


def _describe_leaf(exc: BaseException, command: str | None) -> str:
    if isinstance(exc, FileNotFoundError) and (exc.filename or command):
        return f"command not found: {exc.filename or command}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]
