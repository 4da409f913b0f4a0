"""Every patch of Beam internals, in one place, checked against the Beam version it was written for."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def fix_direct_runner_metrics() -> None:
    """Make Beam metrics count every bundle on the bundle-based DirectRunner (Beam 2.77).

    Its single worker thread keeps one StateSampler, which caches a step's ScopedState, with the
    MetricsContainer of the step's FIRST bundle, by name: every later bundle increments that old
    container, which was already committed, so the metrics stop at the first bundle's values.
    Giving each bundle a fresh sampler (as the worker would if it had one per task) fixes it.
    Idempotent; touches only the local runner's TransformExecutor.
    """
    from apache_beam.runners.direct import executor
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils import counters
    if getattr(executor.TransformExecutor.call, "_mediamon_fresh_sampler", False):
        return
    original = executor.TransformExecutor.call

    def call(self: Any, state_sampler: Any) -> Any:
        fresh = statesampler.StateSampler("", counters.CounterFactory())
        statesampler.set_current_tracker(fresh)
        try:
            return original(self, fresh)
        finally:
            statesampler.set_current_tracker(state_sampler)

    call._mediamon_fresh_sampler = True  # type: ignore[attr-defined]
    executor.TransformExecutor.call = call  # type: ignore[method-assign]


PULL_BATCH = 100  # messages per pull; the emulator and the service return at most this many


class _LargerPulls:
    """Proxy for the local reader's SubscriberClient: `pull` asks for PULL_BATCH messages."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def pull(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["max_messages"] = PULL_BATCH
        return self._client.pull(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def larger_pubsub_pulls() -> None:
    """The local runner's Pub/Sub reader pulls 10 messages per bundle (hard-coded in Beam 2.77),
    and each bundle costs ~0.2 s of fixed work: 100 per pull lifts throughput about six-fold
    (benchmarks/README.md). Idempotent; touches only the local runner's reader."""
    from apache_beam.runners.direct import transform_evaluator as te
    reader: Any = te._PubSubReadEvaluator
    if getattr(reader._get_subscriber_client, "_mediamon_larger_pulls", False):
        return
    original = reader._get_subscriber_client.__func__

    def get_client(cls: Any, transform: Any) -> Any:
        return _LargerPulls(original(cls, transform))

    get_client._mediamon_larger_pulls = True  # type: ignore[attr-defined]
    reader._get_subscriber_client = classmethod(get_client)
