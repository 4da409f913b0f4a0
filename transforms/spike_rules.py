"""Spike alert rules: config parsing and evaluation over per-topic window counts (no Beam).

Two rules, both evaluated on one topic's article count per window (all languages summed):

- `ratio` (as the Europe Media Monitor does): the window's count against the mean of the
  `previous` N windows. score = count / max(mean, 1 / previous), i.e. an empty history counts
  as if one article had been seen in it, so the score is always finite. Fires when
  count >= min_count and score >= margin.
- `deviation`: the window's count against the mean and standard deviation of the windows in
  the `baseline` period before it. sigma = max(stddev, sqrt(max(mean, 1))): a count series that
  never varied is still given Poisson noise, so one extra article is not a spike.
  score = (count - mean) / sigma. Fires when count >= min_count and score >= k.

Common to both:
- A window missing from a series counts as 0 (windows are fixed-size, aligned, `window_size`
  seconds apart; for sliding windows pass the period). Windows before `origin` (the start of
  the data; by default the topic's first window) are unknown: a window whose history reaches
  back before `origin` raises no alert (too few previous windows).
- Cool-down per (topic, rule): after an alert for the window starting at S, windows starting
  before S + cooldown raise no alert for that topic and rule.
- `Alert.at` is the window's end (the event time at which the alert could first be known), so a
  rerun gives identical records; pass `clock` to stamp wall-clock time instead.

`evaluate` replays a whole series; `evaluate_new` replays it but returns only the alerts of the
new windows (batch runs); `judge_windows` does the same for windows judged again as they fill,
keeping the alerts raised before (the exactly-once stream); `IncrementalEvaluator` does the same one window at a time with plain
data state (streaming, from a stateful DoFn). All three give the same alerts for the same input.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Mapping, NamedTuple, Sequence

from transforms.records import Alert
from transforms.spec import SpecError, SpecErrors
from transforms.timeutil import parse_duration

RULE_TYPES = ("ratio", "deviation")
ALL_TOPICS = "*"


_RULE_KEYS = {
    "ratio": {"name", "topic", "type", "min_count", "cooldown", "previous", "margin"},
    "deviation": {"name", "topic", "type", "min_count", "cooldown", "baseline", "k"},
}
_WEBHOOK_KEYS = {"url", "retries", "timeout", "backoff", "headers"}


@dataclass(frozen=True)
class AlertRule:
    """One validated rule. `topics` is None for every topic."""

    name: str                       # written as Alert.rule; unique among the rules
    type: str                       # "ratio" | "deviation"
    topics: tuple[str, ...] | None = None
    min_count: int = 3
    cooldown: float = 0.0           # seconds
    previous: int = 6               # ratio: number of previous windows
    margin: float = 2.0             # ratio: score threshold (count / previous mean)
    baseline: float = 86400.0       # deviation: seconds of history before the window
    k: float = 3.0                  # deviation: standard deviations above the mean

    def applies_to(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics

    def history_windows(self, window_size: float) -> int:
        """How many previous windows the rule looks at."""
        if self.type == "ratio":
            return self.previous
        return int(self.baseline // window_size)

    def describe(self) -> str:
        scope = "all topics" if self.topics is None else ", ".join(self.topics)
        if self.type == "ratio":
            test = (f"count >= {self.margin:g} x mean of the {self.previous} previous windows")
        else:
            test = f"count >= mean + {self.k:g} sd over the previous {_fmt_duration(self.baseline)}"
        cool = f", cool-down {_fmt_duration(self.cooldown)}" if self.cooldown else ""
        return f"{self.name} ({self.type}; {scope}): {test}, at least {self.min_count} articles{cool}"


@dataclass(frozen=True)
class WebhookSpec:
    """Where alerts are POSTed as JSON, and how hard to try."""

    url: str
    retries: int = 3                # extra attempts after the first
    timeout: float = 10.0           # seconds, per attempt
    backoff: float = 1.0            # seconds before the first retry, doubled each time
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AlertsSpec:
    rules: tuple[AlertRule, ...] = ()
    webhook: WebhookSpec | None = None


class WindowCount(NamedTuple):
    """One topic's count in one window, with the ids of the articles behind it."""

    window_start: str
    window_end: str
    n_articles: int
    article_ids: tuple[str, ...] = ()


# --------------------------------------------------------------------------- parsing


def parse_alerts(raw: Any, topic_ids: Collection[str], window_size: float | None = None
                 ) -> tuple[AlertRule, ...]:
    """The rules of the `alerts:` config section; SpecErrors with paths relative to it."""
    return parse_alerts_section(raw, topic_ids, window_size).rules


def parse_alerts_section(raw: Any, topic_ids: Collection[str], window_size: float | None = None
                         ) -> AlertsSpec:
    """The whole `alerts:` section (rules and webhook). With `window_size` (seconds between
    window starts) a deviation baseline shorter than two windows is also an error."""
    if raw is None:
        return AlertsSpec()
    errors: list[SpecError] = []
    if not isinstance(raw, Mapping):
        raise SpecErrors([SpecError("", "expected a mapping with `rules` (and optionally `webhook`)")])
    for key in sorted(set(raw) - {"rules", "webhook"}, key=str):
        errors.append(SpecError(str(key), "unknown key (expected rules, webhook)"))
    rules: list[AlertRule] = []
    raw_rules = raw.get("rules")
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, list):
        errors.append(SpecError("rules", "expected a list of rules"))
        raw_rules = []
    for i, item in enumerate(raw_rules):
        rule = _parse_rule(item, f"rules[{i}]", topic_ids, window_size, errors)
        if rule is not None:
            rules.append(rule)
    seen: set[str] = set()
    for i, item in enumerate(raw_rules):    # over the raw items, so the index is the YAML one
        if not isinstance(item, Mapping):
            continue
        name = item.get("name", item.get("type"))
        if isinstance(name, str) and name.strip() in seen:
            errors.append(SpecError(f"rules[{i}].name",
                                    f"rule name {name.strip()!r} is used twice; give each rule a "
                                    "distinct `name` (it is written as the alert's `rule`)"))
        if isinstance(name, str):
            seen.add(name.strip())
    webhook = None
    if raw.get("webhook") is not None:
        webhook = _parse_webhook(raw["webhook"], "webhook", errors)
    if errors:
        raise SpecErrors(errors)
    return AlertsSpec(rules=tuple(rules), webhook=webhook)


def _parse_rule(item: Any, path: str, topic_ids: Collection[str], window_size: float | None,
                errors: list[SpecError]) -> AlertRule | None:
    if not isinstance(item, Mapping):
        errors.append(SpecError(path, "expected a mapping with at least `type`"))
        return None
    kind = item.get("type")
    if kind not in RULE_TYPES:
        errors.append(SpecError(f"{path}.type", f"expected one of {', '.join(RULE_TYPES)}, got {kind!r}"))
        return None
    before = len(errors)
    for key in sorted(set(item) - _RULE_KEYS[kind], key=str):
        errors.append(SpecError(f"{path}.{key}",
                                f"unknown key for a {kind} rule (expected "
                                f"{', '.join(sorted(_RULE_KEYS[kind]))})"))
    defaults = AlertRule(name=kind, type=kind)
    name = item.get("name", kind)
    if not isinstance(name, str) or not name.strip():
        errors.append(SpecError(f"{path}.name", f"expected a non-empty string, got {name!r}"))
    topics = _parse_topics(item.get("topic", ALL_TOPICS), f"{path}.topic", topic_ids, errors)
    min_count = _number(item, "min_count", path, defaults.min_count, errors, integer=True, minimum=1)
    cooldown = _duration(item, "cooldown", path, defaults.cooldown, errors, positive=False)
    previous, margin, baseline, k = defaults.previous, defaults.margin, defaults.baseline, defaults.k
    if kind == "ratio":
        previous = int(_number(item, "previous", path, defaults.previous, errors, integer=True, minimum=1))
        margin = _number(item, "margin", path, defaults.margin, errors, minimum=0, exclusive=True)
    else:
        baseline = _duration(item, "baseline", path, defaults.baseline, errors, positive=True)
        k = _number(item, "k", path, defaults.k, errors, minimum=0, exclusive=True)
        if window_size and baseline // window_size < 2 and "baseline" not in {
                e.path.rsplit(".", 1)[-1] for e in errors[before:]}:
            errors.append(SpecError(f"{path}.baseline",
                                    f"must cover at least two windows ({_fmt_duration(2 * window_size)})"))
    if len(errors) > before:
        return None
    return AlertRule(name=str(name).strip(), type=kind, topics=topics, min_count=int(min_count),
                     cooldown=cooldown, previous=int(previous), margin=float(margin),
                     baseline=baseline, k=float(k))


def _parse_topics(value: Any, path: str, topic_ids: Collection[str], errors: list[SpecError]
                  ) -> tuple[str, ...] | None:
    if value == ALL_TOPICS:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        errors.append(SpecError(path, f"expected a topic id, a list of topic ids, or \"*\", got {value!r}"))
        return None
    for v in values:
        if v not in topic_ids:
            known = ", ".join(sorted(topic_ids)) or "none configured"
            errors.append(SpecError(path, f"unknown topic {v!r} (topics: {known})"))
    return tuple(values)


def _number(item: Mapping[str, Any], key: str, path: str, default: float, errors: list[SpecError],
            integer: bool = False, minimum: float | None = None, exclusive: bool = False) -> float:
    value = item.get(key, default)
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        errors.append(SpecError(f"{path}.{key}", f"expected {'an integer' if integer else 'a number'}, got {value!r}"))
        return default
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        errors.append(SpecError(f"{path}.{key}", f"must be {'>' if exclusive else '>='} {minimum:g}, got {value!r}"))
        return default
    return value


def _duration(item: Mapping[str, Any], key: str, path: str, default: float, errors: list[SpecError],
              positive: bool) -> float:
    if key not in item:
        return default
    try:
        seconds = parse_duration(item[key])
    except ValueError as exc:
        errors.append(SpecError(f"{path}.{key}", str(exc)))
        return default
    if seconds < 0 or positive and seconds == 0:
        errors.append(SpecError(f"{path}.{key}", f"must be {'positive' if positive else '>= 0'}"))
        return default
    return seconds


def _parse_webhook(raw: Any, path: str, errors: list[SpecError]) -> WebhookSpec | None:
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping):
        errors.append(SpecError(path, "expected a mapping with `url` (or a URL string)"))
        return None
    before = len(errors)
    for key in sorted(set(raw) - _WEBHOOK_KEYS, key=str):
        errors.append(SpecError(f"{path}.{key}", f"unknown key (expected {', '.join(sorted(_WEBHOOK_KEYS))})"))
    url = raw.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        errors.append(SpecError(f"{path}.url", f"expected an http(s) URL, got {url!r}"))
    defaults = WebhookSpec(url="")
    retries = _number(raw, "retries", path, defaults.retries, errors, integer=True, minimum=0)
    timeout = _duration(raw, "timeout", path, defaults.timeout, errors, positive=True)
    backoff = _duration(raw, "backoff", path, defaults.backoff, errors, positive=False)
    headers = raw.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        errors.append(SpecError(f"{path}.headers", "expected a mapping of header names to strings"))
        headers = {}
    if len(errors) > before:
        return None
    return WebhookSpec(url=str(url), retries=int(retries), timeout=timeout, backoff=backoff,
                       headers=tuple(sorted(headers.items())))


def _fmt_duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------- evaluation


def _key(iso: str) -> int:
    """Epoch seconds of an ISO-8601 time (naive means UTC): how windows are keyed here."""
    moment = datetime.fromisoformat(iso.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp()))


def check_window(rule: AlertRule, topic: str, window: WindowCount, history: Callable[[int], int | None],
                 window_size: float, clock: Callable[[], str] | None = None) -> Alert | None:
    """The alert `rule` raises for `window`, or None (cool-down is the caller's business).

    `history(i)` is the count of the i-th window before this one (1 = the one just before),
    0 when that window had no articles, None when it lies before the data began.
    """
    if window.n_articles < rule.min_count:
        return None
    n = rule.history_windows(window_size)
    if n < 1:
        return None
    counts: list[int] = []
    for i in range(1, n + 1):
        c = history(i)
        if c is None:
            return None                  # too few previous windows
        counts.append(c)
    mean = sum(counts) / n
    if rule.type == "ratio":
        score = window.n_articles / max(mean, 1.0 / n)
        fires = score >= rule.margin
    else:
        if n < 2:
            return None
        stddev = math.sqrt(sum((c - mean) ** 2 for c in counts) / n)
        sigma = max(stddev, math.sqrt(max(mean, 1.0)))
        score = (window.n_articles - mean) / sigma
        fires = score >= rule.k
    if not fires:
        return None
    return Alert(topic=topic, window_start=window.window_start, window_end=window.window_end,
                 count=window.n_articles, baseline=round(mean, 4), score=round(score, 4), rule=rule.name,
                 articles=tuple(sorted(set(window.article_ids))),
                 at=clock() if clock is not None else window.window_end)


def _in_cooldown(rule: AlertRule, last_alert_start: int | None, start: int) -> bool:
    if last_alert_start is None:
        return False
    return start == last_alert_start or start < last_alert_start + rule.cooldown


def evaluate(rules: Sequence[AlertRule], topic: str, series: Iterable[WindowCount | tuple[str, str, int, Iterable[str]]],
             window_size: float, *, origin: str | None = None, clock: Callable[[], str] | None = None
             ) -> list[Alert]:
    """Every alert the rules raise over one topic's series (any order; missing windows are 0;
    entries for the same window, e.g. one per language, are summed)."""
    return evaluate_new(rules, topic, series, None, window_size, origin=origin, clock=clock)


def _merge_series(series: Iterable[WindowCount | tuple[str, str, int, Iterable[str]]]) -> dict[int, WindowCount]:
    """Window start -> its count: entries of one window (e.g. one per language) are summed."""
    merged: dict[int, WindowCount] = {}
    for w in series:
        start = _key(w[0])
        ids = tuple(w[3]) if len(w) > 3 else ()
        if start in merged:
            m = merged[start]
            merged[start] = m._replace(n_articles=m.n_articles + int(w[2]), article_ids=m.article_ids + ids)
        else:
            merged[start] = WindowCount(w[0], w[1], int(w[2]), ids)
    return merged


def _prepare(series: Iterable[WindowCount | tuple[str, str, int, Iterable[str]]], topic: str,
             origin: str | None, alerts: Iterable[Alert | Mapping[str, Any]],
             ) -> tuple[list[WindowCount], dict[int, int], int, dict[str, list[int]]] | None:
    """A topic's series in window order, its counts by window start, the first window, and the
    window starts of its alerts by rule; None for an empty series."""
    merged = _merge_series(series)
    if not merged:
        return None
    counts = {s: w.n_articles for s, w in merged.items()}
    by_rule: dict[str, list[int]] = {}
    for a in alerts:
        rec = a.to_json() if isinstance(a, Alert) else a
        if rec["topic"] == topic:
            by_rule.setdefault(str(rec["rule"]), []).append(_key(str(rec["window_start"])))
    return ([merged[s] for s in sorted(merged)], counts,
            _key(origin) if origin is not None else min(counts), by_rule)


def evaluate_new(rules: Sequence[AlertRule], topic: str,
                 series: Iterable[WindowCount | tuple[str, str, int, Iterable[str]]],
                 new_windows: Collection[str] | None, window_size: float, *,
                 origin: str | None = None, earlier_alerts: Iterable[Alert | Mapping[str, Any]] = (),
                 clock: Callable[[], str] | None = None) -> list[Alert]:
    """The alerts of the windows whose `window_start` is in `new_windows` (None: all windows).

    The whole series is replayed so the cool-down also holds against alerts the rules raised in
    earlier windows; `earlier_alerts` (e.g. read back from the alerts sink) count as well.
    """
    prepared = _prepare(series, topic, origin, earlier_alerts)
    if prepared is None:
        return []
    windows, counts, first, earlier = prepared
    new_keys = None if new_windows is None else {_key(s) for s in new_windows}
    out: list[Alert] = []
    for rule in rules:
        if not rule.applies_to(topic):
            continue
        last: int | None = None
        stored = sorted(earlier.get(rule.name, []))
        for w in windows:
            start = _key(w.window_start)
            prior = [s for s in stored if s <= start]
            if prior and (last is None or prior[-1] > last):
                last = prior[-1]
            if _in_cooldown(rule, last, start):
                continue

            def history(i: int, start: int = start) -> int | None:
                s = int(round(start - i * window_size))
                return None if s < first else counts.get(s, 0)

            alert = check_window(rule, topic, w, history, window_size, clock)
            if alert is None:
                continue
            last = start
            if new_keys is None or start in new_keys:
                out.append(alert)
    out.sort(key=lambda a: (_key(a.window_start), a.rule))
    return out


def judge_windows(rules: Sequence[AlertRule], topic: str,
                  series: Iterable[WindowCount | tuple[str, str, int, Iterable[str]]],
                  judged: Collection[str], window_size: float, *, origin: str | None = None,
                  stored_alerts: Iterable[Alert | Mapping[str, Any]] = ()) -> list[Alert]:
    """The alerts of the `judged` windows (their `window_start`) given the alerts already raised
    (`stored_alerts`), for a job that judges a window more than once while it fills (the
    exactly-once stream). As `evaluate_new`, except that an alert already raised for a judged
    window stands (it keeps the cool-down of the windows after it) and is returned again with
    the current numbers when its rule still fires there; the caller tells a new alert (no stored
    one with its key) from an update. A window judged on its final count gives what
    `evaluate_new` gives for the whole series at once."""
    prepared = _prepare(series, topic, origin, stored_alerts)
    if prepared is None:
        return []
    windows, counts, first, raised = prepared
    judged_keys = {_key(s) for s in judged}
    out: list[Alert] = []
    for rule in rules:
        if not rule.applies_to(topic):
            continue
        stored = sorted(raised.get(rule.name, []))
        stored_set = set(stored)
        last: int | None = None
        for w in windows:
            start = _key(w.window_start)
            prior = [s for s in stored if s <= start]
            if prior and (last is None or prior[-1] > last):
                last = prior[-1]

            def history(i: int, start: int = start) -> int | None:
                s = int(round(start - i * window_size))
                return None if s < first else counts.get(s, 0)

            if start in stored_set:     # raised before: it stands; refreshed if it still fires
                if start in judged_keys:
                    alert = check_window(rule, topic, w, history, window_size)
                    if alert is not None:
                        out.append(alert)
                continue
            if _in_cooldown(rule, last, start):
                continue
            alert = check_window(rule, topic, w, history, window_size)
            if alert is None:
                continue
            last = start
            if start in judged_keys:
                out.append(alert)
    out.sort(key=lambda a: (_key(a.window_start), a.rule))
    return out


@dataclass
class IncrementalEvaluator:
    """One topic's rules, one window at a time, for a stateful streaming DoFn keyed by topic.

    Windows should arrive in order. A window older than the newest one seen is recorded (its
    count is used as history) but raises no alert; a window seen again (a later pane) replaces
    its count and is evaluated again, but never raises a second alert for the same rule.
    State (`to_state`/`from_state`) is plain JSON-able data: recent counts and last alerts.
    """

    topic: str
    rules: tuple[AlertRule, ...]
    window_size: float
    origin: int | None = None
    counts: dict[int, int] = field(default_factory=dict)
    last_alert: dict[str, int] = field(default_factory=dict)
    newest: int | None = None
    clock: Callable[[], str] | None = None

    def __post_init__(self) -> None:
        self.rules = tuple(r for r in self.rules if r.applies_to(self.topic))

    @classmethod
    def create(cls, topic: str, rules: Sequence[AlertRule], window_size: float,
               origin: str | None = None, clock: Callable[[], str] | None = None) -> "IncrementalEvaluator":
        return cls(topic=topic, rules=tuple(rules), window_size=window_size,
                   origin=_key(origin) if origin is not None else None, clock=clock)

    def observe(self, window_start: str, window_end: str, count: int,
                article_ids: Iterable[str] = ()) -> list[Alert]:
        start = _key(window_start)
        if self.origin is None:
            self.origin = start
        self.counts[start] = int(count)
        alerts: list[Alert] = []
        if self.newest is not None and start < self.newest or start < self.origin:
            self._prune()
            return alerts
        self.newest = start
        window = WindowCount(window_start, window_end, int(count), tuple(article_ids))
        origin = self.origin

        def history(i: int) -> int | None:
            s = int(round(start - i * self.window_size))
            return None if s < origin else self.counts.get(s, 0)

        for rule in self.rules:
            if _in_cooldown(rule, self.last_alert.get(rule.name), start):
                continue
            alert = check_window(rule, self.topic, window, history, self.window_size, self.clock)
            if alert is not None:
                self.last_alert[rule.name] = start
                alerts.append(alert)
        self._prune()
        return alerts

    def _prune(self) -> None:
        if self.newest is None:
            return
        keep = max((r.history_windows(self.window_size) for r in self.rules), default=0)
        oldest = self.newest - keep * self.window_size
        self.counts = {s: c for s, c in self.counts.items() if s >= oldest}

    def to_state(self) -> dict[str, Any]:
        return {"origin": self.origin, "newest": self.newest,
                "counts": [[s, c] for s, c in sorted(self.counts.items())],
                "last_alert": dict(sorted(self.last_alert.items()))}

    @classmethod
    def from_state(cls, topic: str, rules: Sequence[AlertRule], window_size: float,
                   state: Mapping[str, Any] | None, clock: Callable[[], str] | None = None
                   ) -> "IncrementalEvaluator":
        ev = cls(topic=topic, rules=tuple(rules), window_size=window_size, clock=clock)
        if state:
            ev.origin = state.get("origin")
            ev.newest = state.get("newest")
            ev.counts = {int(s): int(c) for s, c in state.get("counts", [])}
            ev.last_alert = {str(k): int(v) for k, v in state.get("last_alert", {}).items()}
        return ev

