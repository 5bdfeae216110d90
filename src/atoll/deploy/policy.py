"""Restart policy: exponential backoff with jitter, and the crash-loop rule (N restarts in a window
means give up). Pure arithmetic, no clock of its own."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Timeouts:
    startup: float = 60.0
    stop: float = 10.0
    health_interval: float = 10.0
    health_threshold: int = 3
    #: Seconds between readiness polls while an agent starts.
    ready_poll: float = 0.05


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    #: Up to this fraction of the delay is added at random, so agents that crash together spread out.
    jitter: float = 0.1
    #: Seconds of healthy running after which the next crash starts again at ``initial``.
    reset_after: float = 30.0

    def delay(self, attempt: int, rand: float) -> float:
        """Delay before restart number ``attempt`` (0-based) given ``rand`` in [0, 1)."""
        base = min(self.cap, self.initial * self.factor**attempt)
        return base * (1.0 + self.jitter * rand)


@dataclass
class CrashLoopGuard:
    """Allows ``max_restarts`` restarts within ``window`` seconds; the next one is refused."""

    max_restarts: int = 5
    window: float = 60.0
    _times: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        while self._times and now - self._times[0] >= self.window:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        return True

    def reset(self) -> None:
        self._times.clear()
