"""How a job is asked to stop: SIGINT or SIGTERM sets an event the job watches; and the crash
hook the kill tests use.

`StopOnSignal(on_first).install()` replaces both handlers; the first signal calls
`on_first(name)` and records `reason`; `restore()` puts the previous handlers back.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable


class StopOnSignal:
    def __init__(self, on_first: Callable[[str], None]) -> None:
        self.stop = threading.Event()
        self.reason = "signal"
        self._on_first = on_first
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.stop.is_set():
            self.reason = signal.Signals(signum).name
            self._on_first(self.reason)
        self.stop.set()

    def install(self) -> "StopOnSignal":
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def crash_point(name: str, occurrence: int = 1) -> None:
    """Test hook: MEDIAMON_CRASH_AT=<name>[:<n>] makes the process SIGKILL itself at the n-th
    occurrence of that point (default the first; a job without repeats passes 1)."""
    point, _, nth = os.environ.get("MEDIAMON_CRASH_AT", "").partition(":")
    if point == name and occurrence == int(nth or 1):
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
