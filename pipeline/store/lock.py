"""One run at a time per store: an exclusive lock beside the state file."""
from __future__ import annotations

import fcntl
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.config import Config

log = logging.getLogger(__name__)


@contextmanager
def run_lock(config: Config) -> Iterator[None]:
    """One run at a time per store; `wait` or `exit` when another run holds it."""
    assert config.state.path is not None
    path = Path(f"{config.state.path}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + config.state.wait_timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if config.state.on_overlap == "exit" or time.monotonic() >= deadline:
                    raise OverlapError(f"another mediamon run holds {path} "
                                       f"(state.on_overlap: {config.state.on_overlap}); not running")
                if not announced:
                    print(f"waiting for another mediamon run to release {path} ...", file=sys.stderr)
                    announced = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class OverlapError(Exception):
    """Another run holds the store."""
