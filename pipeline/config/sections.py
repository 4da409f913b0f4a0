"""One function per top-level config section: raw YAML mapping -> the section's frozen dataclass.

Each takes the `Checker` (which collects problems with their dotted paths) and returns a usable
value even when it found problems, so one load reports every mistake at once.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.config.checks import (
    Checker,
    default_feed_name,
    is_url,
    pubsub_name,
    resolve_path,
)
from pipeline.config.model import (
    SINK_TYPES,
    SINK_WHATS,
    DedupConfig,
    StoriesConfig,
    FeedSource,
    FetchSettings,
    LanguageConfig,
    PollConfig,
    PubSubSource,
    SinkConfig,
    Sources,
    StateConfig,
    WindowConfig,
)
from transforms import spike_rules, topic_rules
from transforms.langid import SUPPORTED_LANGUAGES
from transforms.spike_rules import AlertRule, WebhookSpec
from transforms.topic_rules import KeywordSpec, TopicSpec, VariantSpec


def sources(chk: Checker, raw: Any, base: Path) -> Sources:
    src = chk.mapping(raw, "sources", {"feeds", "opml", "jsonl", "pubsub"})
    feeds: list[FeedSource] = []
    raw_feeds = src.get("feeds") or []
    for i, f in enumerate(raw_feeds if isinstance(raw_feeds, list) else []):
        fpath = f"sources.feeds[{i}]"
        if isinstance(f, str):
            f = {"url": f}
        f = chk.mapping(f, fpath, {"url", "name", "language", "category"}, {"url"})
        url = f.get("url")
        if not isinstance(url, str) or not url:
            continue
        if not is_url(url):
            if "://" in url:
                chk.err(f"{fpath}.url", f"unsupported URL scheme in {url!r} (use http, https or a local path)")
                continue
            url = str(resolve_path(base, url))
        lang = f.get("language")
        if lang is not None and not (isinstance(lang, str) and re.fullmatch(r"[a-z]{2,3}", lang)):
            chk.err(f"{fpath}.language", f"expected an ISO 639 code like 'ar', got {lang!r}")
            lang = None
        feeds.append(FeedSource(url=url, name=str(f.get("name") or default_feed_name(url)),
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
        return tuple(resolve_path(base, v) for v in items)

    pubsub = None
    if "pubsub" in src:
        ps = chk.mapping(src.get("pubsub"), "sources.pubsub", {"subscription", "topic"})
        if bool(ps.get("subscription")) == bool(ps.get("topic")):
            chk.err("sources.pubsub", "give exactly one of 'subscription' or 'topic'")
        for key in ("subscription", "topic"):
            v = ps.get(key)
            kind = "subscriptions" if key == "subscription" else "topics"
            if v is not None and not pubsub_name(str(v), kind):
                chk.err(f"sources.pubsub.{key}", f"expected projects/PROJECT/{kind}/NAME with a Google Cloud "
                        f"project id (6-30 lower-case letters, digits, hyphens), got {v!r}")
        pubsub = PubSubSource(subscription=ps.get("subscription"), topic=ps.get("topic"))
    return Sources(feeds=tuple(feeds), opml=paths("opml"), jsonl=paths("jsonl"), pubsub=pubsub)


def language(chk: Checker, raw: Any) -> LanguageConfig:
    lang = chk.mapping(raw, "language", {"allowed", "aliases", "second_opinion"})
    allowed = chk.str_list(lang.get("allowed"), "language.allowed")
    aliases_raw = lang.get("aliases") or {}
    if not isinstance(aliases_raw, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in aliases_raw.items()):
        chk.err("language.aliases", "expected a mapping of language code to language code, e.g. {ckb: ku}")
        aliases_raw = {}
    if allowed:
        for i, code in enumerate(allowed):
            if code not in SUPPORTED_LANGUAGES and code != "ku":
                chk.err(f"language.allowed[{i}]", f"unsupported language code {code!r} "
                        f"(supported: {', '.join(sorted(SUPPORTED_LANGUAGES | {'ku'}))})")
    second = lang.get("second_opinion", LanguageConfig.second_opinion)
    if not isinstance(second, bool):
        chk.err("language.second_opinion", "expected true or false")
        second = LanguageConfig.second_opinion
    return LanguageConfig(allowed=allowed, aliases=tuple(sorted(aliases_raw.items())), second_opinion=second)


def topic_pack(chk: Checker, top: dict[str, Any]
               ) -> tuple[tuple[TopicSpec, ...], tuple[KeywordSpec, ...], tuple[VariantSpec, ...] | None]:
    """topics, keywords, variants (one pack: topics see the variant table)."""
    variants = chk.specs("variants", lambda: topic_rules.parse_variants(top.get("variants") or []), None)
    topics = chk.specs("topics", lambda: topic_rules.parse_topics(top.get("topics") or [], variants), ())
    keywords = chk.specs("keywords", lambda: topic_rules.parse_keywords(top.get("keywords") or []), ())
    return tuple(topics), tuple(keywords), variants


def windows(chk: Checker, raw: Any) -> WindowConfig:
    d = WindowConfig()
    win = chk.mapping(raw, "windows", {"size", "period", "allowed_lateness", "early"})
    size = chk.duration(win.get("size"), "windows.size", d.size, positive=True) or d.size
    period = chk.duration(win.get("period"), "windows.period", None, positive=True)
    lateness = chk.duration(win.get("allowed_lateness"), "windows.allowed_lateness", d.allowed_lateness)
    early = chk.duration(win.get("early"), "windows.early", d.early, positive=True)
    if period is not None and period > size:
        chk.err("windows.period", "must be at most windows.size")
        period = None
    return WindowConfig(size=size, period=period, allowed_lateness=lateness or 0.0, early=early or d.early)


def state(chk: Checker, raw: Any, base: Path) -> StateConfig:
    d = StateConfig()
    st = chk.mapping(raw, "state", {"path", "on_overlap", "wait_timeout", "retention"})
    on_overlap = st.get("on_overlap", d.on_overlap)
    if on_overlap not in ("wait", "exit"):
        chk.err("state.on_overlap", f"expected 'wait' or 'exit', got {on_overlap!r}")
        on_overlap = d.on_overlap
    spath = st.get("path")
    if spath is not None and not (isinstance(spath, str) and spath):
        chk.err("state.path", "expected a file path")
    return StateConfig(
        path=chk.file_path(base, spath, "state.path"),
        on_overlap=on_overlap,
        wait_timeout=chk.duration(st.get("wait_timeout"), "state.wait_timeout", d.wait_timeout) or 0.0,
        retention=chk.duration(st.get("retention"), "state.retention", None, positive=True),
    )


def sinks(chk: Checker, raw: Any, base: Path) -> tuple[SinkConfig, ...]:
    out: list[SinkConfig] = []
    explicit: dict[str, str] = {}       # a name the user gave -> the sink that has it
    named: list[bool] = []
    raw_sinks = raw or []
    if not isinstance(raw_sinks, list):
        chk.err("sinks", "expected a list of sinks")
        raw_sinks = []
    for i, s in enumerate(raw_sinks):
        spath = f"sinks[{i}]"
        s = chk.mapping(s, spath, {"type", "path", "what", "topic", "name"}, {"type", "what"})
        stype, what = s.get("type"), s.get("what")
        if stype is not None and stype not in SINK_TYPES:
            chk.err(f"{spath}.type", f"unknown sink type {stype!r} (one of {', '.join(SINK_TYPES)})")
        if what is not None and what not in SINK_WHATS:
            chk.err(f"{spath}.what", f"unknown record kind {what!r} (one of {', '.join(SINK_WHATS)})")
        if stype == "pubsub":
            topic = s.get("topic")
            if not (isinstance(topic, str) and pubsub_name(topic, "topics")):
                chk.err(f"{spath}.topic", "a pubsub sink needs topic: projects/PROJECT/topics/NAME")
            if "path" in s:
                chk.err(f"{spath}.path", "a pubsub sink takes 'topic', not 'path'")
        elif stype in SINK_TYPES:
            if not isinstance(s.get("path"), str):
                chk.err(f"{spath}.path", f"a {stype} sink needs a file path")
            elif "://" in s["path"]:
                chk.err(f"{spath}.path", f"{stype} sinks write local files; {s['path']!r} is a URL "
                        "(on a distributed runner use a pubsub sink, or a path on a shared file system)")
            if "topic" in s:
                chk.err(f"{spath}.topic", f"a {stype} sink takes 'path', not 'topic'")
        if stype in SINK_TYPES and what in SINK_WHATS:
            p = s.get("path")
            given = s.get("name")
            if given is not None and not (isinstance(given, str) and given.strip()):
                chk.err(f"{spath}.name", "expected a non-empty string")
                given = None
            name = str(given) if given else f"{what}-{stype}"
            if given and name in explicit:
                chk.err(f"{spath}.name", f"same name as {explicit[name]} ({name!r}): each sink needs "
                        "its own name (the summary lists sinks by name)")
            elif given:
                explicit[name] = spath
            out.append(SinkConfig(
                name=name, type=stype, what=what,
                path=chk.file_path(base, p, f"{spath}.path") if stype != "pubsub" else None,
                topic=s.get("topic")))
            named.append(given is not None)
    # default names (`articles-jsonl`) that collide get -2, -3...: two sinks, two summary lines
    taken = {sink.name for sink, given in zip(out, named) if given}
    for i, (sink, given) in enumerate(zip(out, named)):
        if not given:
            name, n = sink.name, 2
            while name in taken:
                name, n = f"{sink.name}-{n}", n + 1
            taken.add(name)
            out[i] = replace(sink, name=name)
    seen_paths: dict[Path, str] = {}
    for i, sink in enumerate(out):
        if sink.path is not None and sink.type != "sqlite":
            if sink.path in seen_paths:
                chk.err(f"sinks[{i}].path", f"same file as sink {seen_paths[sink.path]!r}")
            seen_paths[sink.path] = sink.name
    return tuple(out)


def _whole(chk: Checker, fe: dict[str, Any], key: str, default: int, lo: int, hi: int | None, what: str) -> int:
    value = fe.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        chk.err(f"fetch.{key}", what)
        return default
    return value


def fetch(chk: Checker, raw: Any) -> FetchSettings:
    d = FetchSettings()
    fe = chk.mapping(raw, "fetch", {"timeout", "max_bytes", "concurrency", "per_host_delay", "deadline",
                                    "interval", "backoff_base", "backoff_cap", "max_redirects", "user_agent"})
    agent = fe.get("user_agent")
    if agent is not None and not (isinstance(agent, str) and agent.strip()):
        chk.err("fetch.user_agent", "expected a non-empty string")
        agent = None
    return FetchSettings(
        timeout=chk.duration(fe.get("timeout"), "fetch.timeout", d.timeout, positive=True) or d.timeout,
        max_bytes=_whole(chk, fe, "max_bytes", d.max_bytes, 1, None, "expected a positive number of bytes"),
        concurrency=_whole(chk, fe, "concurrency", d.concurrency, 1, 256, "expected a whole number from 1 to 256"),
        per_host_delay=chk.duration(fe.get("per_host_delay"), "fetch.per_host_delay", d.per_host_delay) or 0.0,
        user_agent=agent or d.user_agent,
        deadline=chk.duration(fe.get("deadline"), "fetch.deadline", d.deadline, positive=True) or d.deadline,
        interval=chk.duration(fe.get("interval"), "fetch.interval", d.interval) or 0.0,
        backoff_base=chk.duration(fe.get("backoff_base"), "fetch.backoff_base", d.backoff_base,
                                  positive=True) or d.backoff_base,
        backoff_cap=chk.duration(fe.get("backoff_cap"), "fetch.backoff_cap", d.backoff_cap,
                                 positive=True) or d.backoff_cap,
        max_redirects=_whole(chk, fe, "max_redirects", d.max_redirects, 0, 30, "expected a whole number from 0 to 30"))


def dedup(chk: Checker, raw: Any) -> DedupConfig:
    d = DedupConfig()
    dd = chk.mapping(raw, "dedup", {"ttl"})
    return DedupConfig(ttl=chk.duration(dd.get("ttl"), "dedup.ttl", d.ttl, positive=True) or d.ttl)


def stories(chk: Checker, raw: Any) -> StoriesConfig:
    d = StoriesConfig()
    st = chk.mapping(raw, "stories", {"horizon", "threshold"})
    threshold = st.get("threshold", d.threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        chk.err("stories.threshold", f"expected a number in (0, 1], got {threshold!r}")
        threshold = d.threshold
    return StoriesConfig(horizon=chk.duration(st.get("horizon"), "stories.horizon", d.horizon, positive=True) or d.horizon,
                         threshold=float(threshold))


def poll(chk: Checker, raw: Any, base: Path) -> PollConfig:
    d = PollConfig()
    po = chk.mapping(raw, "poll", {"topic", "interval", "archive"})
    ptopic = po.get("topic")
    if ptopic is not None and not (isinstance(ptopic, str) and pubsub_name(ptopic, "topics")):
        chk.err("poll.topic", f"expected projects/PROJECT/topics/NAME, got {ptopic!r}")
    parch = po.get("archive")
    return PollConfig(topic=ptopic, interval=chk.duration(po.get("interval"), "poll.interval", d.interval,
                                                          positive=True) or d.interval,
                      archive=resolve_path(base, parch) if isinstance(parch, str) else None)


def alerts(chk: Checker, raw: Any, topics: tuple[TopicSpec, ...], windows: WindowConfig
           ) -> tuple[tuple[AlertRule, ...], WebhookSpec | None]:
    if raw is None:
        return (), None
    step = windows.period or windows.size
    section = chk.specs("alerts", lambda: spike_rules.parse_alerts_section(raw, [t.id for t in topics], step), None)
    if section is None:
        return (), None
    return tuple(section.rules), section.webhook


# Beam 2.77's runner names (apache_beam.runners.runner._RUNNER_MAP; a test keeps them equal),
# here so that `validate` need not import Beam. Beam also takes a name without "Runner" and the
# dotted path of a PipelineRunner class.
KNOWN_RUNNERS = frozenset({
    "dataflowrunner", "bundlebaseddirectrunner", "directrunner", "switchingdirectrunner",
    "interactiverunner", "flinkrunner", "fnapirunner", "kafkastreamsrunner", "portablerunner",
    "prismrunner", "sparkrunner", "testdirectrunner", "testdataflowrunner", "pythonrpcdirectrunner",
})
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def beam_options(chk: Checker, raw: Any) -> tuple[tuple[str, Any], ...]:
    bo = raw or {}
    if not isinstance(bo, dict):
        chk.err("beam_options", "expected a mapping of Beam option name to value")
        bo = {}
    runner = bo.get("runner")
    if runner is not None:
        name = str(runner).lower() if isinstance(runner, str) else ""
        if not (name in KNOWN_RUNNERS or name + "runner" in KNOWN_RUNNERS
                or (isinstance(runner, str) and _DOTTED.fullmatch(runner))):
            chk.err("beam_options.runner", f"unknown Beam runner {runner!r} (e.g. DirectRunner, "
                    "FnApiRunner, PrismRunner, PortableRunner, DataflowRunner, FlinkRunner, "
                    "SparkRunner, or the dotted path of a PipelineRunner class)")
    return tuple(sorted(bo.items()))
