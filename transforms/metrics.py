"""Beam counters by name, each made once per DoFn instance (`Metrics.counter` costs about 3 us
a call, once per article per stage otherwise)."""
from __future__ import annotations

from typing import Any

from apache_beam.metrics import Metrics


class Counters:
    """The counters of one namespace, by name (`by_language`/`en`, `by_topic`/`raqqa`)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._made: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        counter = self._made.get(name)
        if counter is None:
            counter = self._made[name] = Metrics.counter(self.namespace, name)
        counter.inc(n)
