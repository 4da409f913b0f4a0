"""Streaming spike alerts: TestStream drives windows closing one by one."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.trigger import AfterCount, AfterProcessingTime, AfterWatermark
from apache_beam.transforms.window import TimestampedValue

from transforms.spikes import StreamSpikes
from transforms.spike_rules import parse_alerts
from transforms.records import Article
from transforms.timeutil import from_epoch

HOUR = 3600


def article(n: int, hour: int) -> Article:
    published = from_epoch(hour * HOUR + 60 + n)
    return Article(id=f"a{n}", url="", title="t", summary="", source="s", published=published,
                   fetched=published, topics=("raqqa",))


def test_a_step_alerts_once_when_its_window_closes_and_cooldown_holds() -> None:
    rules = parse_alerts({"rules": [{"type": "ratio", "previous": 3, "margin": 2, "min_count": 3,
                                     "cooldown": "2h"}]}, ["raqqa"])
    per_hour = [1, 1, 1, 5, 6, 1]   # a step at hour 3; hour 4 is inside the cool-down
    stream = TestStream()
    n = 0
    for hour, count in enumerate(per_hour):
        batch = []
        for _ in range(count):
            n += 1
            a = article(n, hour)
            batch.append(TimestampedValue(a, hour * HOUR + 60 + n))
        stream = stream.add_elements(batch).advance_watermark_to((hour + 1) * HOUR + 1)
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    trigger = AfterWatermark(early=AfterProcessingTime(10), late=AfterCount(1))
    with TestPipeline(options=options) as p:
        alerts = (p | stream
                  | StreamSpikes(rules, size=HOUR, period=None, allowed_lateness=0, trigger=trigger)
                  | beam.Map(lambda a: (a.topic, a.window_start, a.count, a.baseline, len(a.articles))))
        assert_that(alerts, equal_to([("raqqa", from_epoch(3 * HOUR), 5, 1.0, 5)]))


def test_stream_graph_wires_alert_sinks_and_webhook(tmp_path: Path) -> None:

    from pipeline.config import load_config
    from pipeline.jobs.stream import build
    cfg = Path(tmp_path) / "s.yaml"
    cfg.write_text("""
sources: {pubsub: {subscription: projects/mediamon-test/subscriptions/items}}
topics: [{id: raqqa, query: Raqqa}]
alerts:
  rules: [{type: ratio}]
  webhook: {url: "http://127.0.0.1:9/hook"}
sinks:
  - {type: sqlite, path: out.db, what: alerts}
  - {type: jsonl, path: dead.jsonl, what: dead_letters}
""", encoding="utf-8")
    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=options)
    build(p, load_config(cfg))
    labels = [t.full_label for t in p.transforms_stack[0].parts]
    assert "StreamSpikes" in labels and any(label.startswith("AlertSink0") for label in labels)
    assert "Webhook" in labels and "WithWebhookFailures" in labels
