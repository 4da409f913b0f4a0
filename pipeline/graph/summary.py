"""The run summary (what every run and stream prints) and Beam metrics read back into it."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.runner import PipelineResult

from pipeline.config import Config
from transforms.records import Article

log = logging.getLogger(__name__)


@dataclass
class Summary:
    items_read: int = 0
    articles: int = 0
    stories: int = 0              # distinct stories among the articles (near-duplicates grouped)
    duplicates: int = 0
    dead_letters: int = 0
    late: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    sinks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    feeds: dict[str, int] = field(default_factory=dict)
    # every dead letter by the stage that made it: read, fetch, parse, language, topics, counts,
    # webhook. Those of counts and webhook are not items (the article or alert exists), so the
    # sum may exceed `dead_letters`, which balances items_read.
    dead_letters_by_stage: dict[str, int] = field(default_factory=dict)

    def count_articles(self, articles: Iterable[Article]) -> None:
        """Per-language and per-topic totals from the articles themselves (not from metrics)."""
        for article in articles:
            self.by_language[article.language] = self.by_language.get(article.language, 0) + 1
            for topic in article.topics:
                self.by_topic[topic] = self.by_topic.get(topic, 0) + 1

    def balanced(self) -> bool:
        return self.items_read == self.articles + self.duplicates + self.dead_letters + self.late

    def to_json(self) -> dict[str, Any]:
        return {"items_read": self.items_read, "articles": self.articles, "stories": self.stories,
                "duplicates": self.duplicates,
                "dead_letters": self.dead_letters, "late": self.late,
                "by_language": dict(sorted(self.by_language.items())),
                "by_topic": dict(sorted(self.by_topic.items())),
                "dead_letters_by_stage": dict(sorted(self.dead_letters_by_stage.items())),
                "sinks": self.sinks}

    def text(self, name: str) -> str:
        langs = ", ".join(f"{k} {v}" for k, v in sorted(self.by_language.items(), key=lambda kv: -kv[1])) or "-"
        topics = ", ".join(f"{k} {v}" for k, v in sorted(self.by_topic.items(), key=lambda kv: -kv[1])) or "-"
        lines = [f"mediamon {name}: {self.items_read} items read in {self.seconds:.1f}s",
                 f"  articles      {self.articles}",
                 f"  stories       {self.stories}",
                 f"  duplicates    {self.duplicates}",
                 f"  dead letters  {self.dead_letters}" + (
                     " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letters_by_stage.items()))
                     + ")" if self.dead_letters_by_stage else ""),
                 f"  late          {self.late}",
                 f"  by language   {langs}",
                 f"  by topic      {topics}"]
        if self.feeds:
            lines.append("  feeds         " + ", ".join(f"{k} {v}" for k, v in sorted(self.feeds.items())))
        for sink, path in self.sinks.items():
            lines.append(f"  wrote {sink} -> {path}")
        if not self.balanced():
            lines.append("  WARNING: items_read != articles + duplicates + dead_letters + late")
        return "\n".join(lines)


def metric_counters(result: PipelineResult) -> dict[str, int]:
    """Every Beam counter as `namespace/name` -> value (committed where the runner has it)."""
    out: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        key = f"{counter.key.metric.namespace}/{counter.key.metric.name}"
        out[key] = out.get(key, 0) + int(value or 0)
    return out


def read_metrics(result: PipelineResult, summary: Summary) -> None:
    for key, value in metric_counters(result).items():
        ns, name = key.split("/", 1)
        if ns == "mediamon" and name in ("items_read", "articles", "stories", "duplicates", "dead_letters", "late"):
            setattr(summary, name, getattr(summary, name) + value)
        elif ns == "by_language":
            summary.by_language[name] = summary.by_language.get(name, 0) + value
        elif ns == "dead_letters_by_stage":
            summary.dead_letters_by_stage[name] = summary.dead_letters_by_stage.get(name, 0) + value
        elif ns == "by_topic":
            summary.by_topic[name] = summary.by_topic.get(name, 0) + value


def sink_paths(config: Config) -> dict[str, str]:
    return {s.name: str(s.path) if s.path else str(s.topic) for s in config.sinks}


def write_summary(summary: Summary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
