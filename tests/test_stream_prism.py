"""The Beam streaming graph on Prism (the graph a team would run on Dataflow or Flink: the
splittable-DoFn Pub/Sub reader acknowledging in a bundle finalizer), on the real emulator.

Same messages, two subscriptions: the Prism graph's final counts must equal those of the local
exactly-once mode. And the batch demo config on Prism must give the records of the default runner.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.prism_runner import prism, prism_args  # noqa: F401  (fixture)
from tests.pubsub_emulator import pubsub_emulator  # noqa: F401  (fixture)
from tests.test_stream_exactly_once import COMMON, items, message, publish, rows, stop, wait_for

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """The environment now (the emulator fixture sets PUBSUB_EMULATOR_HOST), the venv first on
    PATH (Prism's worker pool starts `python` from PATH)."""
    return {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def config(tmp: Path, name: str, sub: str, state: bool) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f"""name: {name}
sources: {{pubsub: {{subscription: {sub}}}}}
{"state: {path: " + name + "/state.db}" if state else ""}
{COMMON.replace("windows: {size: 10m, allowed_lateness: 1d}", "windows: {size: 10m, allowed_lateness: 1d, early: 1s}")}
sinks:
  - {{type: sqlite, path: {name}/out.db, what: counts}}
  - {{type: sqlite, path: {name}/out.db, what: topics}}
  - {{type: sqlite, path: {name}/out.db, what: articles}}
""", encoding="utf-8")
    return cfg


def articles_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def story_report(local_db: Path, graph_db: Path) -> str:
    """What differs (counts rows only in one mode) and each mode's stories in those windows."""
    only_local = rows(local_db, "counts") - rows(graph_db, "counts")
    only_graph = rows(graph_db, "counts") - rows(local_db, "counts")
    lines = [f"only local: {sorted(only_local)}", f"only graph: {sorted(only_graph)}"]
    for label, db in (("local", local_db), ("graph", graph_db)):
        with sqlite3.connect(db) as conn:
            lines.append(f"{label} stories: " + repr(conn.execute(
                "SELECT language, story, COUNT(*) FROM articles GROUP BY language, story").fetchall()))
    return "\n".join(lines)


def test_prism_streaming_graph_counts_equal_the_exactly_once_mode(
        pubsub_emulator: str, prism: Path, tmp_path: Path) -> None:  # noqa: F811
    from pipeline.io.pubsub import ensure_subscription
    topic = "projects/mediamon-test/topics/prism"
    subs = {m: f"projects/mediamon-test/subscriptions/prism-{m}" for m in ("local", "graph")}
    for sub in subs.values():
        ensure_subscription(sub, topic)
    burst = items(1500, seed=5, tag="prism")
    distinct = len({i["id"] for i in burst})
    publish(topic, [message(i) for i in burst])

    local = config(tmp_path, "local", subs["local"], state=True)
    proc = subprocess.Popen([PY, "-m", "pipeline", "stream", str(local)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env())
    wait_for(lambda: articles_in(tmp_path / "local" / "out.db") == distinct, proc, 180, "local mode done")
    code, _, err = stop(proc)
    assert code == 0, err[-2000:]

    graph = config(tmp_path, "graph", subs["graph"], state=False)
    summary = tmp_path / "graph-summary.json"
    proc = subprocess.Popen([PY, "-m", "pipeline", "stream", str(graph), "--summary", str(summary), "--",
                             *prism_args(prism)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env())
    wait_for(lambda: articles_in(tmp_path / "graph" / "out.db") == distinct, proc, 300, "Prism graph articles")
    local_db, graph_db = tmp_path / "local" / "out.db", tmp_path / "graph" / "out.db"
    deadline = time.monotonic() + 60     # the last panes follow the articles
    while rows(graph_db, "counts") != rows(local_db, "counts") and time.monotonic() < deadline:
        time.sleep(0.5)
    code, took, err = stop(proc)
    assert code == 0, err[-3000:]
    assert took < 15, f"SIGTERM took {took:.1f}s on Prism"
    s: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
    assert s["items_read"] == len(burst) and s["articles"] == distinct, s
    assert rows(local_db, "counts")
    assert rows(graph_db, "counts") == rows(local_db, "counts"), story_report(local_db, graph_db)
    assert rows(graph_db, "topics") == rows(local_db, "topics")


def _demo_records(folder: Path) -> dict[str, Any]:
    """The demo run's records, without the run's own clock (fetched, dead-letter `at`)."""
    out: dict[str, Any] = {}
    for name in ("articles", "counts", "topics", "dead_letters"):
        lines = (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        records = []
        for line in lines:
            r = json.loads(line)
            for clock in ("fetched", "at"):
                r.pop(clock, None)
            records.append(json.dumps(r, sort_keys=True, ensure_ascii=False))
        out[name] = sorted(records)
    with sqlite3.connect(folder / "mediamon.db") as conn:
        out["sqlite counts"] = sorted(conn.execute("SELECT * FROM counts"))
    return out


def test_batch_demo_on_prism_gives_the_records_of_the_default_runner(prism: Path, tmp_path: Path) -> None:  # noqa: F811
    results = {}
    for label, beam in (("default", []), ("prism", prism_args(prism))):
        root = tmp_path / label
        (root / "configs").mkdir(parents=True)
        shutil.copy(ROOT / "configs" / "demo.yaml", root / "configs" / "demo.yaml")
        if (ROOT / "configs" / "topics").is_dir():
            shutil.copytree(ROOT / "configs" / "topics", root / "configs" / "topics")
        (root / "demo").symlink_to(ROOT / "demo")
        done = subprocess.run([PY, "-m", "pipeline", "run", str(root / "configs" / "demo.yaml"), "--quiet",
                               "--summary", str(root / "summary.json"), "--", *beam],
                              capture_output=True, text=True, cwd=ROOT, env=env(), timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        results[label] = (_demo_records(root / "out" / "demo"),
                          json.loads((root / "summary.json").read_text(encoding="utf-8")))
    (default, default_summary), (on_prism, prism_summary) = results["default"], results["prism"]
    assert default["articles"] and default["counts"]
    assert on_prism == default
    assert {k: v for k, v in prism_summary.items() if k != "sinks"} == \
           {k: v for k, v in default_summary.items() if k != "sinks"}
