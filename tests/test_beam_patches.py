"""The Beam-internals patches (pipeline/graph/beam_patches.py) fail loudly when Beam changes."""
from __future__ import annotations

import apache_beam
import pytest

from pipeline.graph import beam_patches


def test_installed_beam_is_the_release_the_patches_were_written_for() -> None:
    # If this fails after a Beam upgrade: re-check both patches against the new runner code,
    # then move PATCHED_FOR. Do not just bump the constant.
    assert apache_beam.__version__.startswith(beam_patches.PATCHED_FOR)
    missing = [name for name, target in beam_patches.patch_targets().items() if target is None]
    assert missing == []


def test_patches_refuse_another_beam_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apache_beam, "__version__", "2.99.0")
    with pytest.raises(beam_patches.BeamChanged, match="2.99.0"):
        beam_patches.fix_direct_runner_metrics()
    with pytest.raises(beam_patches.BeamChanged, match="2.99.0"):
        beam_patches.larger_pubsub_pulls()


def test_patches_refuse_when_an_internal_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.direct import transform_evaluator
    monkeypatch.delattr(transform_evaluator, "_PubSubReadEvaluator")
    with pytest.raises(beam_patches.BeamChanged, match="_PubSubReadEvaluator"):
        beam_patches.require_patchable()


def test_patches_are_idempotent() -> None:
    from apache_beam.runners.direct import executor
    beam_patches.fix_direct_runner_metrics()
    first = executor.TransformExecutor.call
    beam_patches.fix_direct_runner_metrics()
    assert executor.TransformExecutor.call is first


def test_the_exactly_once_stream_and_portable_runners_do_not_patch_beam() -> None:
    """The patches belong to the Beam graph on the local runner only (issue 15)."""
    from pathlib import Path
    source = (Path(__file__).resolve().parents[1] / "pipeline" / "jobs" / "stream.py").read_text(encoding="utf-8")
    exactly_once = source[source.index("def run_stream_exactly_once"):source.index("def _summary_progress")]
    assert "fix_direct_runner_metrics" not in exactly_once and "larger_pubsub_pulls" not in exactly_once
    graph = source[source.index("def run_stream_graph"):source.index("# ====")]
    assert "if local:" in graph     # patched only when the runner is Beam's local one
