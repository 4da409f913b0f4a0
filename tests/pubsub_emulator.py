"""pytest fixture: a real Pub/Sub emulator on a free local port, for one test module.

Starts `gcloud beta emulators pubsub start --host-port=127.0.0.1:PORT` in its own process group
(the gcloud wrapper leaves its java child running if only the wrapper is killed), waits until it
answers, sets PUBSUB_EMULATOR_HOST for the tests, and ends the whole group afterwards.
`start_emulator` / `stop_emulator` do the same outside pytest (benchmarks/stream_bench.py).
Skips with the reason when gcloud or the emulator is missing, unless MEDIAMON_REQUIRE_EMULATOR=1,
in which case it fails.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("MEDIAMON_REQUIRE_EMULATOR") == "1":
        pytest.fail(f"Pub/Sub emulator required (MEDIAMON_REQUIRE_EMULATOR=1) but {reason}")
    pytest.skip(f"Pub/Sub emulator not available: {reason}")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class EmulatorUnavailable(RuntimeError):
    """gcloud or the emulator is missing, or the emulator did not answer in time."""


def start_emulator(log_path: Path, timeout: float = START_TIMEOUT) -> tuple[subprocess.Popen[bytes], str]:
    """Start the emulator on a free port in its own process group; return (process, host:port).

    Does not set PUBSUB_EMULATOR_HOST.  End it with `stop_emulator`.  Raises EmulatorUnavailable.
    """
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorUnavailable("gcloud is not on PATH")
    port = _free_port()
    with log_path.open("wb") as log:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([str(gcloud), "beta", "emulators", "pubsub", "start",
                                 f"--host-port=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if proc.poll() is not None:
            stop_emulator(proc)                 # a java child may outlive the gcloud wrapper
            raise EmulatorUnavailable(f"the emulator exited ({proc.returncode}): "
                                      + log_path.read_text(errors="replace")[-800:])
        if time.monotonic() > deadline:
            stop_emulator(proc)
            raise EmulatorUnavailable(f"no answer on port {port} within {timeout:g}s")
        time.sleep(0.2)
    return proc, f"127.0.0.1:{port}"


def stop_emulator(proc: subprocess.Popen[bytes]) -> None:
    """End the emulator's whole process group (gcloud and its java child)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yields the emulator's host:port; PUBSUB_EMULATOR_HOST is set while the module runs."""
    log_path: Path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    try:
        proc, host = start_emulator(log_path)
    except EmulatorUnavailable as exc:
        _unavailable(str(exc))
        raise                                   # not reached: _unavailable skips or fails
    try:
        previous = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            if previous is None:
                os.environ.pop("PUBSUB_EMULATOR_HOST", None)
            else:
                os.environ["PUBSUB_EMULATOR_HOST"] = previous
    finally:
        stop_emulator(proc)
