"""`poll` killed between publishing and recording what it published, on the real emulator.

The next pass publishes the same items again (nothing was recorded); the exactly-once stream
counts the second copies as duplicates, so its stored counts equal one batch run over the feeds.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)
from tests.test_stream_e2e import rows, write_world

PY = sys.executable


def mediamon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "pipeline", *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def test_crash_between_publish_and_record_is_deduplicated_downstream(
        pubsub_emulator: str, tmp_path: Path) -> None:  # noqa: F811
    stream_cfg, replay_cfg = write_world(tmp_path)
    crashed = mediamon("poll", str(stream_cfg), "--once", env={"MEDIAMON_CRASH_AT": "after_publish"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    archive = tmp_path / "out" / "archive.jsonl"
    assert not archive.exists() or archive.read_text(encoding="utf-8") == ""   # killed before the archive
    again = mediamon("poll", str(stream_cfg), "--once")                # nothing recorded: all again
    assert again.returncode == 0 and "4 new published" in again.stdout, again.stdout + again.stderr
    summary_path = tmp_path / "summary.json"
    proc = subprocess.Popen([PY, "-m", "pipeline", "stream", str(stream_cfg), "--summary", str(summary_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "out" / "stream.db"

    def seen() -> int:
        try:
            with sqlite3.connect(tmp_path / "out" / "state.db") as conn:
                return int(conn.execute("SELECT COALESCE(SUM(articles + duplicates), 0) FROM stream_batches").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
    deadline = time.monotonic() + 120
    while seen() < 8 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    summary: dict[str, Any] = json.loads(summary_path.read_text(encoding="utf-8"))
    assert (summary["items_read"], summary["articles"], summary["duplicates"]) == (8, 4, 4), summary
    replayed = mediamon("run", str(replay_cfg), "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    batch_db = tmp_path / "out" / "batch.db"
    assert rows(db, "counts") == rows(batch_db, "counts") and rows(db, "counts")
    assert rows(db, "topics") == rows(batch_db, "topics")
