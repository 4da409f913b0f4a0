"""Beam options and the choice of local runner: one place that makes a beam.Pipeline."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, StandardOptions

from pipeline.config import Config

log = logging.getLogger(__name__)


# Prism (2.77) splits a bundle that reports no progress, on every stage, and frees the keys of the
# residual while the primary still holds elements of the same key: the residual's bundle then
# starts from state the primary has not committed, and the last to commit wins.  Our stateful
# stages lost entries that way: in 4 of 13 runs of the Prism test's burst, a language's story
# split in two, or the split bundles' counters were missing from the job's metrics; with
# splits off, 0 of 9.  Prism's own experiment turns them off (internal/execute.go).
PRISM_NO_SPLITS = "prism_disable_sdf_split"


def _is_prism(runner: str | None) -> bool:
    """`PrismRunner`, `prism`, or the class's dotted path, as Beam's runner lookup accepts them."""
    return (runner or "").rsplit(".", 1)[-1].lower().removesuffix("runner") == "prism"


def pipeline_options(config: Config, beam_args: Sequence[str], streaming: bool = False) -> PipelineOptions:
    """Config `beam_options` first, then the command line after `--` (which wins); on Prism,
    with Prism's dynamic splits turned off (PRISM_NO_SPLITS)."""
    args = [f"--{k}={v}" if not isinstance(v, bool) else f"--{k}" for k, v in config.beam_options
            if not (isinstance(v, bool) and not v)]
    args += list(beam_args)
    options = PipelineOptions(flags=args)
    if streaming:
        options.view_as(StandardOptions).streaming = True
    if _is_prism(options.view_as(StandardOptions).runner):
        debug = options.view_as(DebugOptions)
        if PRISM_NO_SPLITS not in (debug.experiments or []):
            debug.add_experiment(PRISM_NO_SPLITS)
    return options


def default_runner(beam_args: Sequence[str], config: Config, streaming: bool) -> Any:
    """Our choice of local runner unless the user (or config) names one: see BEAM notes."""
    named = any(a.startswith("--runner") for a in beam_args) or any(k == "runner" for k, _ in config.beam_options)
    if named:
        return None
    if streaming:
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
        return BundleBasedDirectRunner()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    return FnApiRunner()


def new_pipeline(config: Config, beam_args: Sequence[str], streaming: bool = False) -> beam.Pipeline:
    runner = default_runner(beam_args, config, streaming=streaming)
    with_runner = {"runner": runner} if runner is not None else {}
    return beam.Pipeline(options=pipeline_options(config, beam_args, streaming=streaming), **with_runner)
