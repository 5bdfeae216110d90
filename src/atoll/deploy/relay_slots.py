"""How many front-door relays each agent has open, so slow streams to one agent cannot take every
connection the front door has (``max_relays_per_agent``; past it a new request gets 429)."""

from __future__ import annotations

from collections.abc import Callable


class RelaySlots:
    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def take(self, agent: str, cap: int) -> Callable[[], None] | None:
        """A slot for one relay to ``agent``, as the function that gives it back (safe to call
        more than once), or None when ``cap`` relays are open already."""
        if self.open.get(agent, 0) >= cap:
            return None
        self.open[agent] = self.open.get(agent, 0) + 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                left = self.open[agent] - 1
                if left:
                    self.open[agent] = left
                else:
                    del self.open[agent]

        return release
