"""Every patch of Beam internals, in one place, checked against the Beam version it was written for.

Both patches fix Beam 2.77's local bundle-based DirectRunner (the streaming runner of
`mediamon stream`); nothing else in mediamon touches Beam's private parts. Each patch first calls
`require_patchable()`: on any other Beam release it raises `BeamChanged` instead of patching code
it was not written against (tests/test_beam_patches.py fails loudly on a Beam upgrade too).
"""
from __future__ import annotations

import logging
from typing import Any

import apache_beam

log = logging.getLogger(__name__)

PATCHED_FOR = "2.77."   # the Beam release line these patches were written and tested against


class BeamChanged(RuntimeError):
    """The installed Beam is not the release the patches were written for, or its internals moved."""


def patch_targets() -> dict[str, Any]:
    """The private Beam objects the patches replace, looked up by name (KeyError-free)."""
    from apache_beam.runners.direct import executor, transform_evaluator
    from apache_beam.runners.worker import statesampler
    targets = {
        "executor.TransformExecutor.call": getattr(getattr(executor, "TransformExecutor", None), "call", None),
        "statesampler.StateSampler": getattr(statesampler, "StateSampler", None),
        "statesampler.set_current_tracker": getattr(statesampler, "set_current_tracker", None),
        "transform_evaluator._PubSubReadEvaluator._get_subscriber_client": getattr(
            getattr(transform_evaluator, "_PubSubReadEvaluator", None), "_get_subscriber_client", None),
    }
    return targets


def require_patchable() -> None:
    """Raise BeamChanged unless this Beam is the release line the patches know, with its internals."""
    version = apache_beam.__version__
    if not version.startswith(PATCHED_FOR):
        raise BeamChanged(f"pipeline/graph/beam_patches.py was written for Beam {PATCHED_FOR}x, "
                          f"this is Beam {version}: re-check both patches against it before use")
    missing = [name for name, target in patch_targets().items() if target is None]
    if missing:
        raise BeamChanged(f"Beam {version} no longer has {', '.join(missing)}: the patches need rework")


def fix_direct_runner_metrics() -> None:
    """Make Beam metrics count every bundle on the bundle-based DirectRunner (Beam 2.77).

    Its single worker thread keeps one StateSampler, which caches a step's ScopedState, with the
    MetricsContainer of the step's FIRST bundle, by name: every later bundle increments that old
    container, which was already committed, so the metrics stop at the first bundle's values.
    Giving each bundle a fresh sampler (as the worker would if it had one per task) fixes it.
    Idempotent; touches only the local runner's TransformExecutor.
    """
    require_patchable()
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
    require_patchable()
    from apache_beam.runners.direct import transform_evaluator as te
    reader: Any = te._PubSubReadEvaluator
    if getattr(reader._get_subscriber_client, "_mediamon_larger_pulls", False):
        return
    original = reader._get_subscriber_client.__func__

    def get_client(cls: Any, transform: Any) -> Any:
        return _LargerPulls(original(cls, transform))

    get_client._mediamon_larger_pulls = True  # type: ignore[attr-defined]
    reader._get_subscriber_client = classmethod(get_client)
