"""The validated config: frozen dataclasses, one per section, and the errors loading raises.

`pipeline/config/loader.py` builds a `Config` from YAML; everything downstream takes these types.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transforms.spike_rules import AlertRule, WebhookSpec
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec

SINK_TYPES = ("jsonl", "csv", "sqlite", "pubsub")
SINK_WHATS = ("articles", "counts", "topics", "alerts", "dead_letters", "stories")
class UsageError(Exception):
    """The config is valid but cannot be used this way (e.g. `run` on a Pub/Sub-only config)."""


class ConfigError(Exception):
    """All the problems found in one config file."""

    def __init__(self, path: Path, problems: list[tuple[str, int | None, str]]) -> None:
        self.file = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        out = []
        for key, line, message in self.problems:
            where = f"{self.file}:{line}" if line else str(self.file)
            out.append(f"{where}: {key or '<top>'}: {message}" if key else f"{where}: {message}")
        return out


@dataclass(frozen=True)
class FeedSource:
    url: str                      # http(s) URL or absolute local path
    name: str
    language: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class PubSubSource:
    subscription: str | None = None
    topic: str | None = None


@dataclass(frozen=True)
class Sources:
    feeds: tuple[FeedSource, ...] = ()
    opml: tuple[Path, ...] = ()
    jsonl: tuple[Path, ...] = ()
    pubsub: PubSubSource | None = None


@dataclass(frozen=True)
class LanguageConfig:
    allowed: tuple[str, ...] | None = None
    aliases: tuple[tuple[str, str], ...] = ()
    second_opinion: bool = True   # py3langid for weak answers: +1.5 points on headlines


@dataclass(frozen=True)
class WindowConfig:
    size: float = 3600.0
    period: float | None = None
    allowed_lateness: float = 86400.0
    early: float = 10.0           # streaming: early results every N s of processing time


@dataclass(frozen=True)
class StateConfig:
    path: Path | None = None
    on_overlap: str = "wait"      # wait | exit: what a run does when another holds the store
    wait_timeout: float = 600.0
    retention: float | None = None  # prune stored articles older than this (counts unchanged)


@dataclass(frozen=True)
class SinkConfig:
    name: str
    type: str
    what: str
    path: Path | None = None
    topic: str | None = None


USER_AGENT = ("mediamon/0.1 (media-monitoring feed reader; "
              "+https://github.com/mediamon/mediamon)")


@dataclass(frozen=True)
class FetchSettings:
    """How feeds are fetched (config section `fetch`; also what pipeline/feeds/fetch.py takes)."""
    timeout: float = 20.0               # connect and read timeout per request, seconds
    max_bytes: int = 15 * 2**20         # body cap, after decompression
    concurrency: int = 8                # worker threads
    per_host_delay: float = 1.0         # seconds between two requests to one host
    user_agent: str = USER_AGENT
    respect_schedule: bool = True       # skip feeds whose next due time is in the future
    deadline: float = 60.0              # whole fetch of one feed (headers + body)
    interval: float = 0.0               # a feed fetched successfully is due again this much later
    backoff_base: float = 300.0         # first delay after a failure, doubled per failure
    backoff_cap: float = 86400.0        # longest delay after failures
    max_redirects: int = 5


@dataclass(frozen=True)
class DedupConfig:
    ttl: float = 7 * 86400.0      # streaming: how long an id is remembered


@dataclass(frozen=True)
class StoriesConfig:
    horizon: float = 3 * 86400.0  # near-duplicates join a story within this much published time
    threshold: float = 0.4        # estimated Jaccard of folded title + lede tokens (transforms/stories.py)


@dataclass(frozen=True)
class PollConfig:
    topic: str | None = None      # Pub/Sub topic the poller publishes to
    interval: float = 900.0
    archive: Path | None = None   # append-only JSONL of everything published


@dataclass(frozen=True)
class Config:
    name: str
    file: Path
    sources: Sources
    language: LanguageConfig
    topics: tuple[TopicSpec, ...]
    keywords: tuple[KeywordSpec, ...]
    variants: tuple[VariantSpec, ...] | None
    windows: WindowConfig
    state: StateConfig
    sinks: tuple[SinkConfig, ...]
    fetch: FetchSettings
    dedup: DedupConfig
    poll: PollConfig
    alerts: tuple[AlertRule, ...]   # () when absent
    webhook: WebhookSpec | None = None
    beam_options: tuple[tuple[str, Any], ...] = ()
    stories: StoriesConfig = StoriesConfig()
