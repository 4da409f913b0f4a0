"""Replay stored topic counts through alert rules (`mediamon alerts backtest`).

Per topic, the stored topic counts (one row per window and language) are summed per window;
the articles behind each window are the stored articles tagged with the topic whose
`published` time falls in it. Each rule is replayed on its own from the earliest stored window
(the start of the data), so windows before `since` serve as history; the alerts printed are
those of windows starting in [since, until). Load the outputs without a period so that history
is there: `backtest(load_outputs(config.sinks), rules, since, until, window_size)`.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Sequence

from pipeline.store.outputs import StoredOutputs, parse_iso
from transforms.records import Alert
from transforms.spike_rules import AlertRule, WindowCount, evaluate

MAX_IDS_SHOWN = 5


def topic_series(outputs: StoredOutputs) -> dict[str, list[WindowCount]]:
    """Each topic's windows (languages summed) with the ids of the stored articles behind them."""
    totals: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for row in outputs.topics:
        totals[str(row["topic"])][(str(row["window_start"]), str(row["window_end"]))] += int(row["articles"] or 0)
    tagged: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for article in outputs.articles:
        published = article.get("published")
        if not isinstance(published, str):
            continue
        moment = parse_iso(published).timestamp()
        for topic in article.get("topics") or []:
            tagged[str(topic)].append((moment, str(article["id"])))
    series: dict[str, list[WindowCount]] = {}
    for topic, windows in totals.items():
        articles = sorted(tagged.get(topic, []))
        times = [t for t, _ in articles]
        rows = []
        for (start, end), count in sorted(windows.items()):
            lo = bisect_left(times, parse_iso(start).timestamp())
            hi = bisect_left(times, parse_iso(end).timestamp())
            rows.append(WindowCount(start, end, count, tuple(i for _, i in articles[lo:hi])))
        series[topic] = rows
    return series


def run_backtest(outputs: StoredOutputs, rules: Sequence[AlertRule], since: str | None, until: str | None,
                 window_size: float) -> dict[str, list[Alert]]:
    """Rule name -> the alerts it would have raised in windows starting in [since, until)."""
    series = topic_series(outputs)
    starts = [w.window_start for rows in series.values() for w in rows]
    origin = min(starts, key=lambda s: parse_iso(s)) if starts else None
    lo = parse_iso(since).timestamp() if since else float("-inf")
    hi = parse_iso(until).timestamp() if until else float("inf")
    results: dict[str, list[Alert]] = {}
    for rule in rules:
        alerts: list[Alert] = []
        for topic in sorted(series):
            alerts += [a for a in evaluate([rule], topic, series[topic], window_size, origin=origin)
                       if lo <= parse_iso(a.window_start).timestamp() < hi]
        alerts.sort(key=lambda a: (parse_iso(a.window_start), a.topic))
        results[rule.name] = alerts
    return results


def backtest(outputs: StoredOutputs, rules: Sequence[AlertRule], since: str | None, until: str | None,
             window_size: float) -> str:
    """A plain-text account, per rule, of the alerts it would have raised and why."""
    series = topic_series(outputs)
    starts = sorted((w.window_start for rows in series.values() for w in rows), key=parse_iso)
    lines = [f"Backtest of {len(rules)} rule{'s' if len(rules) != 1 else ''} over stored topic counts: "
             f"{len(series)} topic{'s' if len(series) != 1 else ''}, "
             f"data {starts[0] if starts else '-'} to {starts[-1] if starts else '-'}, "
             f"window step {_seconds(window_size)}, period {since or 'start'} to {until or 'end'}"]
    if not rules:
        lines.append("No alert rules are configured (alerts.rules).")
        return "\n".join(lines)
    if not series:
        lines.append("No stored topic counts to replay (configure a sink with what: topics).")
    results = run_backtest(outputs, rules, since, until, window_size)
    for rule in rules:
        alerts = results[rule.name]
        lines.append("")
        lines.append(f"Rule {rule.describe()}")
        lines.append(f"  {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
                     + (" would have been raised:" if alerts else ""))
        for alert in alerts:
            lines.append("  " + _alert_line(alert))
    return "\n".join(lines)


def _alert_line(alert: Alert) -> str:
    ids = ", ".join(alert.articles[:MAX_IDS_SHOWN])
    more = f", +{len(alert.articles) - MAX_IDS_SHOWN} more" if len(alert.articles) > MAX_IDS_SHOWN else ""
    return (f"{alert.window_start}  {alert.topic}  count {alert.count}  baseline {alert.baseline:g}  "
            f"score {alert.score:g}  articles [{ids}{more}]")


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"

