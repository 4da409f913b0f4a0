"""The exactly-once stream's export step (pipeline/io/stream_outputs.py), without Pub/Sub or Beam.

`python -m benchmarks.stream_outputs_bench [N]`: ten micro-batches of N articles (default 1,000;
one 1 h window per batch, two topics) are committed to a StreamStore, then exported; the export
is timed with counts/topics/articles sinks only ("plain"), and with alert rules, a stories
SQLite sink and a stories JSONL sink, the alert rules judging at every export (the worst case:
the job judges at most every 2 s). Prints the median and max export time per micro-batch, and the
commit time (the micro-batch path, for scale).
"""
from __future__ import annotations

import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.graph.stages import story_options
from pipeline.io.export import Exporter
from pipeline.io.stream_outputs import StreamOutputs
from pipeline.store.streamstate import StreamStore
from transforms.records import Article
from transforms.timeutil import from_epoch

CONFIG = """name: bench
sources: {{pubsub: {{subscription: projects/mediamon-test/subscriptions/items}}}}
state: {{path: state.db}}
topics: [{{id: raqqa, name: Raqqa, query: Raqqa}}, {{id: vote, name: Vote, query: vote}}]
windows: {{size: 1h, allowed_lateness: 30d, early: 10s}}
{alerts}
sinks:
  - {{type: sqlite, path: out.db, what: counts}}
  - {{type: sqlite, path: out.db, what: topics}}
  - {{type: sqlite, path: out.db, what: articles}}
{sinks}
"""
WITH_OUTPUTS = dict(
    alerts="alerts: {rules: [{name: r, type: ratio, previous: 6, margin: 2, min_count: 5}, "
           "{name: d, type: deviation, baseline: 1d, k: 3}]}",
    sinks="  - {type: sqlite, path: out.db, what: alerts}\n  - {type: sqlite, path: out.db, what: stories}\n"
          "  - {type: jsonl, path: stories.jsonl, what: stories}")
T0 = 1_800_000_000.0 // 3600 * 3600
BATCHES = 10


def run(label: str, n: int, alerts: str, sinks: str) -> None:
    rng = random.Random(1)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(5000)]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.yaml").write_text(CONFIG.format(alerts=alerts, sinks=sinks), encoding="utf-8")
        config = load_config(Path(tmp) / "c.yaml")
        assert config.state.path is not None
        store = StreamStore(config.state.path, config.windows.size, config.windows.period)
        exporter = Exporter(config.sinks)
        ticks = itertools.count(0, 100)          # 100 s between exports: the rules judge every time
        outputs = StreamOutputs(config, store, exporter, monotonic=lambda: float(next(ticks)))
        exports: list[float] = []
        commits: list[float] = []
        k = 0
        try:
            for b in range(BATCHES):
                batch = []
                for _ in range(n):
                    k += 1
                    published = from_epoch(T0 + k * 3600.0 / n)
                    topic = "raqqa" if k % 3 else "vote"
                    batch.append(Article(id=f"a{k}", url="", title=f"{topic} {' '.join(rng.sample(words, 6))} {k}",
                                         summary="", source=f"s{k % 9}", published=published, fetched=published,
                                         language="en", topics=(topic,)))
                t0 = time.perf_counter()
                store.commit_batch(f"b{b}", len(batch), batch, [], stories=story_options(config))
                t1 = time.perf_counter()
                outputs.export()
                commits.append(t1 - t0)
                exports.append(time.perf_counter() - t1)
        finally:
            exporter.close()
            store.close()
    print(f"{label}: export per {n:,}-article micro-batch median {statistics.median(exports):.3f}s, "
          f"max {max(exports):.3f}s (commit median {statistics.median(commits):.3f}s)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    run("plain", n, "", "")
    run("stories+alerts", n, **WITH_OUTPUTS)


if __name__ == "__main__":
    main()
