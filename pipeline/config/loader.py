"""Load a mediamon YAML config into frozen dataclasses, strictly.

Every problem is reported at once, each with its dotted key path and YAML line:
unknown keys, wrong types, bad durations, malformed topic queries, cross-field rules.
`${VAR}` is expanded in string values; relative paths resolve against the config's folder;
`include: [file, ...]` merges topic packs (topics, keywords, variants) from other files.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

from transforms import spike_rules as alerts_mod
from transforms import topic_rules as topicspec
from transforms.langid import SUPPORTED_LANGUAGES
from transforms.spec import SpecError, SpecErrors
from transforms.timeutil import parse_duration

SINK_TYPES = ("jsonl", "csv", "sqlite", "pubsub")
SINK_WHATS = ("articles", "counts", "topics", "alerts", "dead_letters")
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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


@dataclass(frozen=True)
class FetchConfig:
    timeout: float = 20.0         # connect and read timeout per request
    max_bytes: int = 15 * 2**20   # body cap, after decompression
    concurrency: int = 8
    per_host_delay: float = 1.0   # seconds between two requests to one host
    deadline: float = 60.0        # whole fetch of one feed (headers + body)
    interval: float = 0.0         # a feed fetched successfully is due again this much later
    backoff_base: float = 300.0   # first delay after a failure, doubled per failure
    backoff_cap: float = 86400.0
    max_redirects: int = 5
    user_agent: str | None = None


@dataclass(frozen=True)
class DedupConfig:
    ttl: float = 7 * 86400.0      # streaming: how long an id is remembered


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
    topics: tuple[Any, ...]       # transforms.topicspec.TopicSpec
    keywords: tuple[Any, ...]     # transforms.topicspec.KeywordSpec
    variants: Any
    windows: WindowConfig
    state: StateConfig
    sinks: tuple[SinkConfig, ...]
    fetch: FetchConfig
    dedup: DedupConfig
    poll: PollConfig
    alerts: Any                   # tuple of transforms.alerts.AlertRule, () when absent
    webhook: Any = None           # transforms.alerts.WebhookSpec or None
    beam_options: tuple[tuple[str, Any], ...] = ()


# ---------------------------------------------------------------- YAML with line numbers

class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _compose(text: str, file: Path) -> tuple[Any, dict[str, int]]:
    lines: dict[str, int] = {}
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is None:
        return None, lines

    def build(n: yaml.Node, path: str) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                key = _Loader.construct_scalar(loader, k) if isinstance(k, yaml.ScalarNode) else str(k)
                sub = f"{path}.{key}" if path else str(key)
                lines[sub] = k.start_mark.line + 1
                if key in out:
                    raise ConfigError(file, [(sub, k.start_mark.line + 1, "duplicate key")])
                out[key] = build(v, sub)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, f"{path}[{i}]") for i, v in enumerate(n.value)]
        return loader.construct_object(n, deep=True)

    return build(node, ""), lines


def _expand_env(value: Any, problems: list[tuple[str, str]], path: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                problems.append((path, f"environment variable ${{{name}}} is not set"))
                return ""
            return os.environ[name]
        return ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, problems, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, problems, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------- validation helpers

class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def err(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def mapping(self, value: Any, path: str, allowed: set[str], required: set[str] = set()) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.err(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.err(f"{path}.{key}" if path else str(key), f"unknown key (allowed here: {hint})")
        for key in sorted(required - set(value)):
            self.err(path, f"missing required key '{key}'")
        return value

    def duration(self, value: Any, path: str, default: float | None) -> float | None:
        if value is None:
            return default
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.err(path, str(exc))
            return default

    def str_list(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.err(path, "expected a list of non-empty strings")
            return None
        return tuple(value)

    def specs(self, path: str, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except SpecErrors as exc:
            for e in exc.errors:
                self.err(_join(path, e.path), e.message)
        except SpecError as e:
            self.err(_join(path, e.path), e.message)
        return default


def _join(base: str, rel: str) -> str:
    if not rel:
        return base
    return f"{base}{rel}" if rel.startswith("[") else f"{base}.{rel}"


def _resolve(base: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


# Google Cloud project ids: 6-30 lower-case letters, digits, hyphens (Beam rejects others at run time)
_PROJECT = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"


def _pubsub_name(value: str, kind: str) -> bool:
    """projects/PROJECT/topics/NAME or projects/PROJECT/subscriptions/NAME, with a real project id."""
    return re.fullmatch(rf"projects/{_PROJECT}/{kind}/[A-Za-z][\w.~+%-]{{2,254}}", value) is not None


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _default_feed_name(url: str) -> str:
    if _is_url(url):
        return urlsplit(url).hostname or url
    return Path(url).name


TOP_KEYS = {"name", "sources", "language", "topics", "keywords", "variants", "windows", "state",
            "sinks", "fetch", "dedup", "poll", "alerts", "beam_options", "include"}
PACK_KEYS = ("topics", "keywords", "variants")


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load and validate; raise ConfigError listing every problem with its line."""
    file = Path(path).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, [("", None, f"cannot read config: {exc.strerror or exc}")]) from None
    try:
        raw, lines = _compose(text, file)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(file, [("", mark.line + 1 if mark else None, f"invalid YAML: {exc}")]) from None
    if raw is None:
        raw = {}
    chk = _Checker()
    if not isinstance(raw, dict):
        raise ConfigError(file, [("", 1, "a config must be a YAML mapping")])
    for item in overrides or []:
        _apply_override(raw, item, chk)
    raw = _expand_env(raw, chk.problems, "")
    base = file.parent
    top = chk.mapping(raw, "", TOP_KEYS)

    # include: topic packs
    for i, inc in enumerate(top.get("include") or []):
        ipath = f"include[{i}]"
        if not isinstance(inc, str):
            chk.err(ipath, "expected a file path")
            continue
        target = _resolve(base, inc)
        try:
            sub = load_config(target)
        except ConfigError as exc:
            chk.err(ipath, "included file is invalid:\n  " + "\n  ".join(exc.lines()))
            continue
        sub_raw, _ = _compose(target.read_text(encoding="utf-8"), target)
        for key in PACK_KEYS:
            extra = (sub_raw or {}).get(key) or []
            if extra:
                top[key] = list(extra) + list(top.get(key) or []) if key != "variants" or isinstance(extra, list) else extra
        del sub

    name = top.get("name") or file.stem
    if not isinstance(name, str):
        chk.err("name", "expected a string")
        name = file.stem

    # sources
    src = chk.mapping(top.get("sources"), "sources", {"feeds", "opml", "jsonl", "pubsub"})
    feeds: list[FeedSource] = []
    for i, f in enumerate(src.get("feeds") or []):
        fpath = f"sources.feeds[{i}]"
        if isinstance(f, str):
            f = {"url": f}
        f = chk.mapping(f, fpath, {"url", "name", "language", "category"}, {"url"})
        url = f.get("url")
        if not isinstance(url, str) or not url:
            continue
        if not _is_url(url):
            if "://" in url:
                chk.err(f"{fpath}.url", f"unsupported URL scheme in {url!r} (use http, https or a local path)")
                continue
            url = str(_resolve(base, url))
        lang = f.get("language")
        if lang is not None and not (isinstance(lang, str) and re.fullmatch(r"[a-z]{2,3}", lang)):
            chk.err(f"{fpath}.language", f"expected an ISO 639 code like 'ar', got {lang!r}")
            lang = None
        feeds.append(FeedSource(url=url, name=str(f.get("name") or _default_feed_name(url)),
                                language=lang, category=f.get("category")))
    if src.get("feeds") is not None and not isinstance(src.get("feeds"), list):
        chk.err("sources.feeds", "expected a list of feeds")

    def paths(key: str) -> tuple[Path, ...]:
        value = src.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            chk.err(f"sources.{key}", "expected a path or a list of paths")
            return ()
        return tuple(_resolve(base, v) for v in items)

    opml = paths("opml")
    jsonl = paths("jsonl")
    pubsub = None
    if "pubsub" in src:
        ps = chk.mapping(src.get("pubsub"), "sources.pubsub", {"subscription", "topic"})
        if bool(ps.get("subscription")) == bool(ps.get("topic")):
            chk.err("sources.pubsub", "give exactly one of 'subscription' or 'topic'")
        for key in ("subscription", "topic"):
            v = ps.get(key)
            kind = "subscriptions" if key == "subscription" else "topics"
            if v is not None and not _pubsub_name(str(v), kind):
                chk.err(f"sources.pubsub.{key}", f"expected projects/PROJECT/{kind}/NAME with a Google Cloud "
                        f"project id (6-30 lower-case letters, digits, hyphens), got {v!r}")
        pubsub = PubSubSource(subscription=ps.get("subscription"), topic=ps.get("topic"))
    sources = Sources(feeds=tuple(feeds), opml=opml, jsonl=jsonl, pubsub=pubsub)

    # language
    lang = chk.mapping(top.get("language"), "language", {"allowed", "aliases", "second_opinion"})
    allowed = chk.str_list(lang.get("allowed"), "language.allowed")
    aliases_raw = lang.get("aliases") or {}
    if not isinstance(aliases_raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases_raw.items()):
        chk.err("language.aliases", "expected a mapping of language code to language code, e.g. {ckb: ku}")
        aliases_raw = {}
    if allowed:
        for i, code in enumerate(allowed):
            if code not in SUPPORTED_LANGUAGES and code != "ku":
                chk.err(f"language.allowed[{i}]", f"unsupported language code {code!r} "
                        f"(supported: {', '.join(sorted(SUPPORTED_LANGUAGES | {'ku'}))})")
    second = lang.get("second_opinion", True)
    if not isinstance(second, bool):
        chk.err("language.second_opinion", "expected true or false")
        second = True
    language = LanguageConfig(allowed=allowed, aliases=tuple(sorted(aliases_raw.items())), second_opinion=second)

    # topics, keywords, variants
    variants = chk.specs("variants", lambda: topicspec.parse_variants(top.get("variants") or []), None)
    topics = chk.specs("topics", lambda: topicspec.parse_topics(top.get("topics") or [], variants), ())
    keywords = chk.specs("keywords", lambda: topicspec.parse_keywords(top.get("keywords") or []), ())

    # windows
    win = chk.mapping(top.get("windows"), "windows", {"size", "period", "allowed_lateness", "early"})
    size = chk.duration(win.get("size"), "windows.size", 3600.0) or 3600.0
    period = chk.duration(win.get("period"), "windows.period", None)
    lateness = chk.duration(win.get("allowed_lateness"), "windows.allowed_lateness", 86400.0)
    early = chk.duration(win.get("early"), "windows.early", 10.0)
    if size <= 0:
        chk.err("windows.size", "must be positive")
        size = 3600.0
    if period is not None and (period <= 0 or period > size):
        chk.err("windows.period", "must be positive and at most windows.size")
        period = None
    windows = WindowConfig(size=size, period=period, allowed_lateness=lateness or 0.0, early=early or 10.0)

    # state
    st = chk.mapping(top.get("state"), "state", {"path", "on_overlap", "wait_timeout", "retention"})
    on_overlap = st.get("on_overlap", "wait")
    if on_overlap not in ("wait", "exit"):
        chk.err("state.on_overlap", f"expected 'wait' or 'exit', got {on_overlap!r}")
        on_overlap = "wait"
    spath = st.get("path")
    state = StateConfig(
        path=_resolve(base, spath) if isinstance(spath, str) else None,
        on_overlap=on_overlap,
        wait_timeout=chk.duration(st.get("wait_timeout"), "state.wait_timeout", 600.0) or 0.0,
        retention=chk.duration(st.get("retention"), "state.retention", None),
    )
    if spath is not None and not isinstance(spath, str):
        chk.err("state.path", "expected a file path")

    # sinks
    sinks: list[SinkConfig] = []
    raw_sinks = top.get("sinks") or []
    if not isinstance(raw_sinks, list):
        chk.err("sinks", "expected a list of sinks")
        raw_sinks = []
    for i, s in enumerate(raw_sinks):
        spath_ = f"sinks[{i}]"
        s = chk.mapping(s, spath_, {"type", "path", "what", "topic", "name"}, {"type", "what"})
        stype, what = s.get("type"), s.get("what")
        if stype is not None and stype not in SINK_TYPES:
            chk.err(f"{spath_}.type", f"unknown sink type {stype!r} (one of {', '.join(SINK_TYPES)})")
        if what is not None and what not in SINK_WHATS:
            chk.err(f"{spath_}.what", f"unknown record kind {what!r} (one of {', '.join(SINK_WHATS)})")
        if stype == "pubsub":
            topic = s.get("topic")
            if not (isinstance(topic, str) and _pubsub_name(topic, "topics")):
                chk.err(f"{spath_}.topic", "a pubsub sink needs topic: projects/PROJECT/topics/NAME")
            if "path" in s:
                chk.err(f"{spath_}.path", "a pubsub sink takes 'topic', not 'path'")
        elif stype in SINK_TYPES:
            if not isinstance(s.get("path"), str):
                chk.err(f"{spath_}.path", f"a {stype} sink needs a file path")
            elif "://" in s["path"]:
                chk.err(f"{spath_}.path", f"{stype} sinks write local files; {s['path']!r} is a URL "
                        "(on a distributed runner use a pubsub sink, or a path on a shared file system)")
            if "topic" in s:
                chk.err(f"{spath_}.topic", f"a {stype} sink takes 'path', not 'topic'")
        if stype in SINK_TYPES and what in SINK_WHATS:
            p = s.get("path")
            sinks.append(SinkConfig(
                name=str(s.get("name") or f"{what}-{stype}"), type=stype, what=what,
                path=_resolve(base, p) if isinstance(p, str) else None, topic=s.get("topic")))
    seen_paths: dict[Path, str] = {}
    for i, s in enumerate(sinks):
        if s.path is not None and s.type != "sqlite":
            if s.path in seen_paths:
                chk.err(f"sinks[{i}].path", f"same file as sink {seen_paths[s.path]!r}")
            seen_paths[s.path] = s.name

    # fetch, dedup, poll
    fe = chk.mapping(top.get("fetch"), "fetch", {"timeout", "max_bytes", "concurrency", "per_host_delay",
                                                 "deadline", "interval", "backoff_base", "backoff_cap",
                                                 "max_redirects", "user_agent"})
    max_bytes = fe.get("max_bytes", 15 * 2**20)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
        chk.err("fetch.max_bytes", "expected a positive number of bytes")
        max_bytes = 15 * 2**20
    conc = fe.get("concurrency", 8)
    if not isinstance(conc, int) or isinstance(conc, bool) or not 1 <= conc <= 256:
        chk.err("fetch.concurrency", "expected a whole number from 1 to 256")
        conc = 8
    redirects = fe.get("max_redirects", 5)
    if not isinstance(redirects, int) or isinstance(redirects, bool) or not 0 <= redirects <= 30:
        chk.err("fetch.max_redirects", "expected a whole number from 0 to 30")
        redirects = 5
    agent = fe.get("user_agent")
    if agent is not None and not (isinstance(agent, str) and agent.strip()):
        chk.err("fetch.user_agent", "expected a non-empty string")
        agent = None
    fetch = FetchConfig(timeout=chk.duration(fe.get("timeout"), "fetch.timeout", 20.0) or 20.0,
                        max_bytes=max_bytes, concurrency=conc,
                        per_host_delay=chk.duration(fe.get("per_host_delay"), "fetch.per_host_delay", 1.0) or 0.0,
                        deadline=chk.duration(fe.get("deadline"), "fetch.deadline", 60.0) or 60.0,
                        interval=chk.duration(fe.get("interval"), "fetch.interval", 0.0) or 0.0,
                        backoff_base=chk.duration(fe.get("backoff_base"), "fetch.backoff_base", 300.0) or 300.0,
                        backoff_cap=chk.duration(fe.get("backoff_cap"), "fetch.backoff_cap", 86400.0) or 86400.0,
                        max_redirects=redirects, user_agent=agent)
    dd = chk.mapping(top.get("dedup"), "dedup", {"ttl"})
    dedup = DedupConfig(ttl=chk.duration(dd.get("ttl"), "dedup.ttl", 7 * 86400.0) or 7 * 86400.0)
    po = chk.mapping(top.get("poll"), "poll", {"topic", "interval", "archive"})
    ptopic = po.get("topic")
    if ptopic is not None and not (isinstance(ptopic, str) and _pubsub_name(ptopic, "topics")):
        chk.err("poll.topic", f"expected projects/PROJECT/topics/NAME, got {ptopic!r}")
    parch = po.get("archive")
    poll = PollConfig(topic=ptopic, interval=chk.duration(po.get("interval"), "poll.interval", 900.0) or 900.0,
                      archive=_resolve(base, parch) if isinstance(parch, str) else None)

    # alerts
    alerts: Any = ()
    webhook: Any = None
    if top.get("alerts") is not None:
        topic_ids = [t.id for t in topics]
        step = period or size
        section = chk.specs("alerts", lambda: alerts_mod.parse_alerts_section(top.get("alerts"), topic_ids, step),
                            None)
        if section is not None:
            alerts, webhook = section.rules, section.webhook

    bo = top.get("beam_options") or {}
    if not isinstance(bo, dict):
        chk.err("beam_options", "expected a mapping of Beam option name to value")
        bo = {}

    if chk.problems:
        raise ConfigError(file, [(p, _line_for(lines, p), m) for p, m in chk.problems])
    return Config(name=name, file=file, sources=sources, language=language, topics=tuple(topics),
                  keywords=tuple(keywords), variants=variants, windows=windows, state=state,
                  sinks=tuple(sinks), fetch=fetch, dedup=dedup, poll=poll, alerts=alerts,
                  webhook=webhook, beam_options=tuple(sorted(bo.items())))


def _line_for(lines: dict[str, int], path: str) -> int | None:
    """The line of the key, or of its nearest enclosing key that exists."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            path = ""
        else:
            path = path[:cut]
    return lines.get("")


def _apply_override(raw: dict[str, Any], item: str, chk: _Checker) -> None:
    """`--set a.b.c=value`: value parsed as YAML (so numbers and lists work)."""
    if "=" not in item:
        chk.err(item, "--set expects key.path=value")
        return
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node: Any = raw
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            chk.err(key, f"--set cannot descend into {part!r}")
            return
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        chk.err(key, f"--set cannot set {last!r} here")
