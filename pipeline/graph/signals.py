"""How a long-running job is asked to stop: SIGINT or SIGTERM sets an event the job watches.

`StopOnSignal(on_first).install()` replaces both handlers; the first signal calls
`on_first(name)` and records `reason`; `restore()` puts the previous handlers back.
"""
from __future__ import annotations

import signal
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
