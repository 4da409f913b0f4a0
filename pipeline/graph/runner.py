"""Beam options and the choice of local runner: one place that makes a beam.Pipeline."""
from __future__ import annotations

import logging
from typing import Any, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import Config

log = logging.getLogger(__name__)


def pipeline_options(config: Config, beam_args: Sequence[str], streaming: bool = False) -> PipelineOptions:
    """Config `beam_options` first, then the command line after `--` (which wins)."""
    args = [f"--{k}={v}" if not isinstance(v, bool) else f"--{k}" for k, v in config.beam_options
            if not (isinstance(v, bool) and not v)]
    args += list(beam_args)
    options = PipelineOptions(flags=args)
    if streaming:
        from apache_beam.options.pipeline_options import StandardOptions
        options.view_as(StandardOptions).streaming = True
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
