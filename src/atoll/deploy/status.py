"""What the deployment server prints: the startup block (the seed's lines, then remote servers) and
the ``atoll status`` table."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atoll.deploy.remote import RemoteStatus

# The remote states of ``atoll.deploy.remote``, spelled here so this module does not import httpx.
RUNNING, NOT_RUNNING, DISABLED = "running", "not_running", "disabled"

MARKS = {RUNNING: "✓", DISABLED: "○", NOT_RUNNING: "○"}


def startup_block(host: str, agents: list[dict[str, Any]], problems: list[dict[str, Any]],
                  remotes: list[RemoteStatus], api_url: str, agents_dir: str) -> list[str]:
    lines = ["[OK] ATOLL deployment server started", f"  Local Server: {host} (running)", "    Agents:"]
    for agent in agents:
        line = f"    ● {agent['name']} (Port: {agent['port']}) - {_state(agent)}"
        if agent.get("error_message") or agent.get("degraded_reasons"):
            line += f" ({agent.get('error_message') or '; '.join(agent['degraded_reasons'])})"
        lines.append(line)
    if not agents:
        lines.append("    (none found)")
    for problem in problems:
        label = problem.get("name") or problem["folder"]
        lines.append(f"    ✗ {label} - not started: {problem['reason']}")
    lines.append(f"  Management API and Ollama front door: {api_url}")
    lines.append(f"  Agents directory: {agents_dir}")
    if remotes:
        lines.append("  Remote Servers:")
        lines.extend(_remote_line(r) for r in remotes)
    return lines


def _remote_line(remote: RemoteStatus) -> str:
    mark = MARKS.get(remote.state, "✗")
    where = f"{remote.name} ({remote.host}:{remote.port})"
    if remote.state == RUNNING:
        names = ", ".join(str(a.get("name")) for a in remote.agents) or "no agents"
        return f"    {mark} {where} - running ({len(remote.agents)} agents: {names})"
    if remote.state == DISABLED:
        return f"    {mark} {where} - disabled"
    if remote.state == NOT_RUNNING:
        return f"    {mark} {where} - not running: {remote.error}"
    return f"    {mark} {where} - error: {remote.error}"


def _state(agent: dict[str, Any]) -> str:
    """The agent's state, or ``degraded`` when it runs and its health check says so."""
    return "degraded" if agent.get("degraded_reasons") else str(agent["status"])


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _age(stamp: str | None, now: datetime | None = None) -> str:
    """``2s ago`` for an ISO timestamp: short enough for a table row, and what a person wants."""
    if not stamp:
        return "-"
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    now = now or datetime.now(moment.tzinfo)
    return f"{max(0, round((now - moment).total_seconds()))}s ago"


def status_rows(agents: list[dict[str, Any]]) -> list[list[str]]:
    def show(value: Any) -> str:
        return "-" if value is None else str(value)

    return [[a["name"], show(a.get("port")), show(a.get("pid")),
             _state(a) + (" (adopted)" if a.get("adopted") else ""), show(a.get("restarts")),
             _uptime(a.get("uptime_s")), _age(a.get("last_health_check")), show(a.get("last_exit_code")),
             show(a.get("atoll_version"))]
            for a in agents]


def degraded_lines(agents: list[dict[str, Any]]) -> list[str]:
    """One line per reason a degraded agent gave, for under the table: ``! timely: MCP server 'time' …``."""
    return [f"! {a['name']}: {reason}" for a in agents for reason in a.get("degraded_reasons") or []]


#: ``health``: the age of the last health check; ``exit``: the last exit code; ``atoll``: its version.
STATUS_COLUMNS = ["agent", "port", "pid", "state", "restarts", "uptime", "health", "exit", "atoll"]
