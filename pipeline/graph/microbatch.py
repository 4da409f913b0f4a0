"""The stages of one stream micro-batch, as one Beam pipeline, in a worker process.

`stages_pipeline` is the pipeline: the batch's messages (a spool file) -> `apply_stages`, the
stages of `mediamon run` (parse, dedup, language, topics; stories and counts are done at commit,
against the store) -> the articles and dead letters in an output spool file.

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

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

from pipeline.config import Config
from pipeline.graph.runner import new_pipeline
from pipeline.graph.stages import apply_stages
from pipeline.graph.summary import metric_counters
from pipeline.io.spool import ReadSpool, SpoolOutputs
from transforms.langid import LanguageDetector


def stages_pipeline(config: Config, beam_args: Sequence[str], spool: Path, out: Path) -> dict[str, int]:
    """Messages in `spool` -> the stages -> articles and dead letters in `out`; the counters."""
    p = new_pipeline(config, list(beam_args))
    items = p | "Messages" >> ReadSpool(spool)
    outputs = apply_stages(items, config, counts=False, stories=False)
    (outputs.articles, outputs.dead_letters) | "Outputs" >> SpoolOutputs(out)
    result = p.run()
    result.wait_until_finish()
    return metric_counters(result)


def warm_up(config: Config) -> None:
    """Language profiles load once per process (cached): before the first batch, not in it."""
    LanguageDetector(allowed=config.language.allowed, aliases=dict(config.language.aliases),
                     second_opinion=config.language.second_opinion).detect("warm up")


_JOB: tuple[Config, list[str]] | None = None     # the child's config, set by _child_init


def _exit_with(parent: int) -> None:
    """The child's watch: when the driver is gone (SIGKILL), so is the child, at once (it
    holds no state; the unacknowledged messages come back to the next job)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def _child_init(config: Config, beam_args: list[str], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="driver-watch", daemon=True).start()
    global _JOB
    _JOB = (config, beam_args)
    warm_up(config)


def _child_stages(spool: str, out: str) -> dict[str, int]:
    assert _JOB is not None, "the worker was not initialised"
    return stages_pipeline(_JOB[0], _JOB[1], Path(spool), Path(out))


class StageWorker:
    """Runs `stages_pipeline` in `processes` child processes (or in this one with `processes=0`)."""

    def __init__(self, config: Config, beam_args: Sequence[str], processes: int = 1) -> None:
        self.config = config
        self.beam_args = list(beam_args)
        self.processes = processes
        self.pool: ProcessPoolExecutor | None = None
        self.restarts = 0
        if processes:
            self._start()
        else:
            warm_up(config)

    def _start(self) -> None:
        self.pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_child_init, initargs=(self.config, self.beam_args, os.getpid()))
        self.pool.submit(int).result()      # started and warmed before the first batch is timed

    def submit(self, spool: Path, out: Path) -> "Future[dict[str, int]]":
        if self.pool is None:
            done: Future[dict[str, int]] = Future()
            try:
                done.set_result(stages_pipeline(self.config, self.beam_args, spool, out))
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
