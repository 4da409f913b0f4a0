"""pytest fixture: a real Pub/Sub emulator on a free local port, for one test module.

Starts `gcloud beta emulators pubsub start --host-port=127.0.0.1:PORT` in its own process group
(the gcloud wrapper leaves its java child running if only the wrapper is killed), waits until it
answers, sets PUBSUB_EMULATOR_HOST for the tests, and ends the whole group afterwards.
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


@pytest.fixture(scope="module")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Yields the emulator's host:port; PUBSUB_EMULATOR_HOST is set while the module runs."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        _unavailable("gcloud is not on PATH")
    port = _free_port()
    log_path: Path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    log = log_path.open("wb")
    proc = subprocess.Popen([str(gcloud), "beta", "emulators", "pubsub", "start",
                             f"--host-port=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port):
            if proc.poll() is not None:
                _unavailable(f"the emulator exited ({proc.returncode}): "
                             + log_path.read_text(errors="replace")[-800:])
            if time.monotonic() > deadline:
                _unavailable(f"no answer on port {port} within {START_TIMEOUT:g}s")
            time.sleep(0.2)
        host = f"127.0.0.1:{port}"
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
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
