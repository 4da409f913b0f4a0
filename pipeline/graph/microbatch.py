"""The stages of one stream micro-batch, as one Beam pipeline, in a worker process.

`StagesPipeline` is the pipeline: the batch's messages (a spool file) -> `apply_stages`, the
stages of `mediamon run` (parse, dedup, language, topics; stories and counts are done at commit,
against the store) -> the articles and dead letters in an output spool file.  Its Beam graph is
built once per process and run once per batch: building it cost about 80 ms of CPU (Beam's
`apply` parses every option view with argparse and inspects each DoFn's signatures), a third of
a batch's fixed cost, for a graph that is the same for every batch but for its two paths.  So
the graph reads a fixed inbox (a symbolic link to the batch's spool file, made for the run) and
writes a fixed outbox (renamed to the batch's output file after the run); on the local
FnApiRunner its runner-API form (pickled DoFns, coders) is made once too and handed to the
runner for every later run (`StagesPipeline._execute`).
`stages_pipeline` is the one-shot form (a graph built for one batch).

`StageWorker` runs those pipelines in `processes` long-lived child processes (spawned, so no
thread or gRPC channel of the driver is forked), so that while children run the stages of
batches N+1 and N+2, the driver commits batch N, acknowledges and exports: the work uses every
core.  `processes=0` runs them in the calling process instead (tests, or one core).  The child ignores SIGINT and SIGTERM: the driver decides when to stop (it drains), and
a Ctrl-C in the terminal must not fail the batch in hand; it exits as soon as the driver is
gone (a SIGKILL of the job leaves no orphan).  If the child dies (a message that
exhausts memory, a crash in a C extension), `submit`'s future fails with BrokenProcessPool and
`restart` starts a new one: the driver then isolates the message like any other failure.
"""
from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Sequence, cast

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.options.pipeline_options_context import scoped_pipeline_options
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineResult
from apache_beam.transforms.environments import EmbeddedPythonEnvironment

from pipeline.config import Config
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import apply_stages
from pipeline.graph.summary import metric_counters
from pipeline.io.spool import ReadSpool, SpoolOutputs, write_spool
from transforms.langid import LanguageDetector
from transforms.records import RawItem
from transforms.timeutil import now_iso

log = logging.getLogger(__name__)


class StagesPipeline:
    """The stages pipeline of one process: built on the first batch, run once per batch.

    `run(spool, out)` reads the batch's messages from `spool` and writes its articles and dead
    letters to `out` (no file when there are none, as `SpoolOutputs` does); it returns the run's
    counters (Beam's metrics are per run: nothing carries over from one batch to the next).
    The graph's inbox and outbox live beside `out` (the outbox is renamed, so it must be on
    out's file system); a batch whose `out` is in another folder gets a graph of its own.
    One batch at a time: the inbox and outbox are the graph's, so runs take a lock.
    """

    def __init__(self, config: Config, beam_args: Sequence[str]) -> None:
        self.config = config
        self.beam_args = list(beam_args)
        self._lock = threading.Lock()
        self._pipeline: beam.Pipeline | None = None
        self._proto: beam_runner_api_pb2.Pipeline | None = None    # made after the first run
        self._reusable = False            # the runner takes a reused runner-API form (_execute)
        self.reused = 0                   # runs that reused the graph's runner-API form
        self._inbox = self._outbox = Path()

    def _build(self, folder: Path) -> None:
        name = f".stages-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._inbox, self._outbox = folder / f"{name}.in", folder / f"{name}.out"
        p = new_pipeline(self.config, self.beam_args)
        items = p | "Messages" >> ReadSpool(self._inbox)
        outputs = apply_stages(items, self.config, counts=False, stories=False, compress_shuffle=False)
        (outputs.articles, outputs.dead_letters) | "Outputs" >> SpoolOutputs(self._outbox)
        self._pipeline = p
        self._proto = None
        self._reusable = (type(p.runner) is FnApiRunner
                          and p.options.view_as(DirectOptions).direct_running_mode == "in_memory")

    def _execute(self) -> PipelineResult:
        """One run of the graph.  Beam's `Pipeline.run` turns the graph into its runner-API form
        on every run (pickling every DoFn, inspecting every method's signature: 90 ms of a run's
        190-200 on a slow hour of this machine); that form is the same for every batch (the
        paths are fixed), so on the local FnApiRunner (in memory) it is made once, after the
        first run, and each later run hands a copy of it to the runner's `run_via_runner_api`,
        which is what `run_pipeline` does with the form it builds (112 ms a run).  Any other
        runner takes `Pipeline.run` every time."""
        p = self._pipeline
        assert p is not None
        if not self._reusable:
            return p.run()
        if self._proto is None:
            result = p.run()
            self._proto = p.to_runner_api(default_environment=EmbeddedPythonEnvironment.default())
            return result
        proto = beam_runner_api_pb2.Pipeline()
        proto.CopyFrom(self._proto)
        self.reused += 1
        runner = cast(FnApiRunner, p.runner)
        with scoped_pipeline_options(p.options):
            return runner.run_via_runner_api(proto, p.options)

    def run(self, spool: Path, out: Path) -> dict[str, int]:
        """Messages in `spool` -> the stages -> articles and dead letters in `out`; the counters."""
        with self._lock:
            if self._pipeline is None or self._outbox.parent != out.parent:
                self._build(out.parent)
            assert self._pipeline is not None
            self._outbox.unlink(missing_ok=True)          # what a failed run may have left
            link = self._inbox.with_name(self._inbox.name + ".link")
            link.unlink(missing_ok=True)
            os.symlink(os.path.abspath(spool), link)
            os.replace(link, self._inbox)
            try:
                result = self._execute()
                result.wait_until_finish()
            finally:
                self._inbox.unlink(missing_ok=True)
            if self._outbox.exists():
                os.replace(self._outbox, out)
            return metric_counters(result)


def stages_pipeline(config: Config, beam_args: Sequence[str], spool: Path, out: Path) -> dict[str, int]:
    """Messages in `spool` -> the stages -> articles and dead letters in `out`; the counters
    (a graph built for this one batch: a worker keeps a `StagesPipeline` instead)."""
    return StagesPipeline(config, beam_args).run(spool, out)


def warm_up(config: Config, stages: StagesPipeline | None = None, folder: Path | None = None) -> None:
    """Language profiles load once per process (cached): before the first batch, not in it.
    With `stages` and `folder` (where the batches' files are), one made-up message also runs
    through the stages, so the first real batch finds the graph built and the runner warm
    (cold, a batch of 100 messages took 0.8 s instead of 0.1 s)."""
    LanguageDetector(allowed=config.language.allowed, aliases=dict(config.language.aliases),
                     second_opinion=config.language.second_opinion).detect("warm up")
    if stages is None or folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    spool, out = folder / f".warm-up-{os.getpid()}.bin", folder / f".warm-up-{os.getpid()}.out"
    now = now_iso()
    item = {"id": "https://mediamon.invalid/warm-up", "url": "https://mediamon.invalid/warm-up",
            "title": "The stages warm up before the first batch", "source": "warm-up", "published": now,
            "summary": "One made-up message runs through parse, dedup, language and topics; its output is dropped."}
    try:
        write_spool(spool, [RawItem("warm-up", json.dumps(item).encode("utf-8"), now)])
        stages.run(spool, out)
    except Exception as exc:  # noqa: BLE001 - only slower: the first real batch meets the same error
        log.warning("warming up the stages failed (%s: %s); the first batch will be slower",
                    type(exc).__name__, exc)
    finally:
        spool.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


YOUNG_OBJECTS = 50_000      # the young generation's threshold in a long-running job (Python's: 700)


def settle_heap() -> tuple[int, ...]:
    """For a long-running process, once started (profiles, models, graph loaded): what exists
    now lives as long as the process, so `gc.freeze()` keeps it out of every later full
    collection, and the young generation is collected every 50,000 new objects instead of 700
    (a micro-batch makes a few per article and frees them by reference counting).  Measured on
    the stream benchmark's batches: garbage collection took 0.02-0.25 s of every 2,500
    articles' 1.5-2 s, and 0-0.07 s after this.  Cycles are still collected, less often.
    Returns the thresholds before, for `restore_heap`."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *before[1:])
    return before


def restore_heap(before: tuple[int, ...]) -> None:
    """Undo `settle_heap` (a job run inside a longer-lived process, such as a test session)."""
    gc.set_threshold(*before)
    gc.unfreeze()


_STAGES: StagesPipeline | None = None     # the child's pipeline, set by _child_init


def _exit_with(parent: int) -> None:
    """The child's watch: when the driver is gone (SIGKILL), so is the child, at once (it
    holds no state; the unacknowledged messages come back to the next job)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _child_init(config: Config, beam_args: list[str], parent: int, folder: Path | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="driver-watch", daemon=True).start()
    global _STAGES
    _STAGES = StagesPipeline(config, beam_args)
    warm_up(config, _STAGES, folder)
    settle_heap()


def _child_stages(spool: str, out: str) -> dict[str, int]:
    assert _STAGES is not None, "the worker was not initialised"
    return _STAGES.run(Path(spool), Path(out))


class StageWorker:
    """Runs a `StagesPipeline` in each of `processes` child processes (or one in this process
    with `processes=0`)."""

    def __init__(self, config: Config, beam_args: Sequence[str], processes: int = 1,
                 folder: Path | None = None) -> None:
        """`folder`: where the batches' spool files will be (the stages warm up there)."""
        self.config = config
        self.beam_args = list(beam_args)
        self.processes = processes
        self.folder = folder
        self.pool: ProcessPoolExecutor | None = None
        self.restarts = 0
        self.stages = StagesPipeline(config, beam_args)     # used with processes=0
        if processes:
            self._start()
        else:
            warm_up(config, self.stages, folder)

    def _start(self) -> None:
        self.pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_child_init,
                                        initargs=(self.config, self.beam_args, os.getpid(), self.folder))
        self.pool.submit(int).result()      # started and warmed before the first batch is timed

    def submit(self, spool: Path, out: Path) -> "Future[dict[str, int]]":
        if self.pool is None:
            done: Future[dict[str, int]] = Future()
            try:
                done.set_result(self.stages.run(spool, out))
            except BaseException as exc:  # the caller reads it from the future, as from a child
                done.set_exception(exc)
            return done
        return self.pool.submit(_child_stages, str(spool), str(out))

    def restart(self) -> None:
        """After the child died: a new one (the batch it had is retried by the caller)."""
        self.close()
        self.restarts += 1
        if self.processes:
            self._start()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
