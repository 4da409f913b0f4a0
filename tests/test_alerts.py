"""Spike alert rules on hand-made hourly count series, config parsing, incremental == batch."""
from __future__ import annotations

import json
import random

import pytest

from transforms.spike_rules import (AlertRule, IncrementalEvaluator, WindowCount, evaluate, evaluate_new,
                               parse_alerts, parse_alerts_section, parse_duration)
from transforms.records import Alert
from transforms.spec import SpecErrors
from datetime import datetime, timezone

HOUR = 3600.0
T0 = 1_508_054_400  # 2017-10-15T08:00:00Z

RATIO = AlertRule(name="ratio", type="ratio", previous=6, margin=2.0, min_count=3)
DEVIATION = AlertRule(name="deviation", type="deviation", baseline=86400.0, k=3.0, min_count=3)


def series(counts: dict[int, int], topic: str = "t") -> list[WindowCount]:
    """Window index -> count; windows not in the dict are left out of the series (missing)."""
    return [WindowCount(from_epoch(T0 + i * HOUR), from_epoch(T0 + (i + 1) * HOUR), c,
                        tuple(f"{topic}-{i}-{j}" for j in range(c)))
            for i, c in counts.items()]


def starts(alerts: list[Alert]) -> list[int]:
    return [int((_epoch(a.window_start) - T0) // HOUR) for a in alerts]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def from_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("rule", [RATIO, DEVIATION])
def test_flat_series_raises_nothing(rule: AlertRule) -> None:
    assert evaluate([rule], "t", series({i: 5 for i in range(60)}), HOUR) == []


def test_step_raises_one_alert_with_evidence() -> None:
    rule = AlertRule(name="ratio", type="ratio", previous=6, margin=2.0, min_count=3, cooldown=86400.0)
    counts = {i: 2 for i in range(10)} | {i: 20 for i in range(10, 30)}
    alerts = evaluate([rule], "t", series(counts), HOUR)
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.topic, a.rule, a.count, a.baseline, a.score) == ("t", "ratio", 20, 2.0, 10.0)
    assert a.window_start == "2017-10-15T18:00:00Z" and a.window_end == "2017-10-15T19:00:00Z"
    assert a.at == a.window_end
    assert a.articles == tuple(sorted(f"t-10-{j}" for j in range(20)))


def test_step_without_cooldown_alerts_until_the_mean_catches_up() -> None:
    counts = {i: 2 for i in range(10)} | {i: 20 for i in range(10, 30)}
    # scores: 20/2 = 10, 20/5 = 4, 20/8 = 2.5, 20/11 < 2
    assert starts(evaluate([RATIO], "t", series(counts), HOUR)) == [10, 11, 12]


def test_cooldown_holds() -> None:
    counts = {i: 2 for i in range(20)} | {10: 20, 12: 20}
    short = AlertRule(name="r", type="ratio", previous=6, margin=2.0, min_count=3, cooldown=HOUR)
    long = AlertRule(name="r", type="ratio", previous=6, margin=2.0, min_count=3, cooldown=3 * HOUR)
    assert starts(evaluate([short], "t", series(counts), HOUR)) == [10, 12]
    assert starts(evaluate([long], "t", series(counts), HOUR)) == [10]


def test_too_few_previous_windows_gives_no_alert() -> None:
    counts = {0: 1, 1: 1, 2: 1, 3: 30}
    assert evaluate([RATIO], "t", series(counts), HOUR) == []
    assert evaluate([DEVIATION], "t", series({i: 1 for i in range(10)} | {10: 40}), HOUR) == []
    # With the data known to start six hours earlier, the same window alerts.
    origin = from_epoch(T0 - 6 * HOUR)
    assert starts(evaluate([RATIO], "t", series(counts), HOUR, origin=origin)) == [3]


def test_missing_windows_count_as_zero() -> None:
    # Eight windows of 1, six empty (missing) windows, then 4.
    counts = {i: 1 for i in range(8)} | {14: 4}
    strict = AlertRule(name="r", type="ratio", previous=6, margin=5.0, min_count=3)
    alerts = evaluate([strict], "t", series(counts), HOUR)
    # Zero-filled history: mean 0, score 4 / (1/6) = 24. Had the gap been skipped, the mean of
    # the last six observed windows would be 1 and the score 4 < 5.
    assert starts(alerts) == [14]
    assert alerts[0].baseline == 0.0 and alerts[0].score == 24.0


def test_min_count_blocks_tiny_spikes() -> None:
    counts = {i: 0 for i in range(10)} | {10: 2}
    assert evaluate([RATIO, DEVIATION], "t", series(counts), HOUR) == []


def test_deviation_rule() -> None:
    base = {i: (4 if i % 2 else 6) for i in range(24)}   # mean 5, sd 1, sigma = sqrt(5)
    assert evaluate([DEVIATION], "t", series(base | {24: 11}), HOUR) == []   # z = 2.68
    alerts = evaluate([DEVIATION], "t", series(base | {24: 13}), HOUR)       # z = 3.58
    assert starts(alerts) == [24]
    assert alerts[0].baseline == 5.0 and alerts[0].score == pytest.approx(8 / 5 ** 0.5, abs=1e-4)


def test_both_rules_and_topic_scope() -> None:
    only_a = AlertRule(name="a-only", type="ratio", topics=("a",), previous=6, margin=2.0, min_count=3)
    counts = {i: 2 for i in range(24)} | {24: 30}
    rules = [RATIO, DEVIATION, only_a]
    assert sorted(a.rule for a in evaluate(rules, "a", series(counts, "a"), HOUR)) == \
        ["a-only", "deviation", "ratio"]
    assert sorted(a.rule for a in evaluate(rules, "b", series(counts, "b"), HOUR)) == ["deviation", "ratio"]


def test_rows_of_one_window_are_summed() -> None:
    rows = series({i: 1 for i in range(10)}) + series({10: 2}, "en") + series({10: 3}, "ar")
    alerts = evaluate([RATIO], "t", rows, HOUR)
    assert [(a.count, len(a.articles)) for a in alerts] == [(5, 5)]


def test_evaluate_new_returns_new_windows_and_honours_cooldown() -> None:
    rule = AlertRule(name="r", type="ratio", previous=6, margin=2.0, min_count=3, cooldown=3 * HOUR)
    counts = {i: 2 for i in range(20)} | {10: 20, 12: 20, 16: 20}
    rows = series(counts)
    new = [w.window_start for w in rows if _epoch(w.window_start) >= T0 + 11 * HOUR]
    # 10 alerted in an earlier run (replayed), so 12 is cooled down; 16 is new.
    assert starts(evaluate_new([rule], "t", rows, new, HOUR)) == [16]
    # A stored earlier alert cools down too, even one the current rules would not raise.
    stored = [{"topic": "t", "rule": "r", "window_start": from_epoch(T0 + 15 * HOUR)}]
    assert evaluate_new([rule], "t", rows, new, HOUR, earlier_alerts=stored) == []
    # Rerun over the same windows: the stored alert of that window is not raised again.
    again = evaluate_new([rule], "t", rows, new, HOUR)
    assert evaluate_new([rule], "t", rows, new, HOUR, earlier_alerts=again) == []


def test_incremental_evaluator_equals_batch() -> None:
    rng = random.Random(9)
    counts: dict[int, int] = {}
    for i in range(300):
        if rng.random() < 0.15:
            continue                                   # missing window
        counts[i] = rng.choice([0, 1, 2, 3, 25]) if rng.random() < 0.1 else rng.randint(1, 4)
    rules = [AlertRule(name="ratio", type="ratio", previous=6, margin=2.0, min_count=3, cooldown=3 * HOUR),
             AlertRule(name="dev", type="deviation", baseline=12 * HOUR, k=2.5, min_count=3, cooldown=HOUR),
             AlertRule(name="other", type="ratio", topics=("other",))]
    rows = series(counts)
    batch = evaluate(rules, "t", rows, HOUR)
    assert len(batch) >= 3

    state = None
    streamed: list[Alert] = []
    for w in rows:
        ev = IncrementalEvaluator.from_state("t", rules, HOUR, state)
        streamed.extend(ev.observe(w.window_start, w.window_end, w.n_articles, w.article_ids))
        state = json.loads(json.dumps(ev.to_state()))  # state is plain data
        assert len(state["counts"]) <= 13              # only recent windows are kept
    assert sorted(streamed, key=lambda a: (a.window_start, a.rule)) == batch


def test_incremental_evaluator_late_and_repeated_windows() -> None:
    ev = IncrementalEvaluator.create("t", [RATIO], HOUR)
    rows = series({i: 2 for i in range(8)} | {8: 20})
    out: list[Alert] = []
    for w in rows:
        out += ev.observe(*w)
    assert starts(out) == [8]
    assert ev.observe(*rows[-1]) == []                 # a later pane of the same window
    assert ev.observe(*rows[2]) == []                  # a late window: history only


def test_parse_alerts_full_form() -> None:
    spec = parse_alerts_section({
        "rules": [
            {"topic": "raqqa-offensive", "type": "ratio", "previous": 6, "margin": 2.0,
             "min_count": 3, "cooldown": "3h"},
            {"name": "dev", "type": "deviation", "baseline": "1d", "k": 3, "min_count": 3},
        ],
        "webhook": {"url": "https://hooks.example.org/x", "retries": 3, "timeout": "10s"},
    }, ["raqqa-offensive"], window_size=HOUR)
    ratio, dev = spec.rules
    assert ratio == AlertRule(name="ratio", type="ratio", topics=("raqqa-offensive",), previous=6,
                              margin=2.0, min_count=3, cooldown=10800.0)
    assert dev.topics is None and dev.baseline == 86400.0 and dev.k == 3.0
    assert spec.webhook is not None and spec.webhook.timeout == 10.0 and spec.webhook.retries == 3
    assert parse_alerts(None, []) == ()
    assert parse_alerts({"rules": [{"type": "ratio"}]}, []) == (AlertRule(name="ratio", type="ratio"),)


def test_parse_alerts_reports_every_error_with_its_path() -> None:
    with pytest.raises(SpecErrors) as info:
        parse_alerts_section({
            "rules": [
                {"type": "ratio", "topic": "nope", "margin": 0, "cooldown": "soon"},
                {"type": "deviation", "k": "three", "previous": 3, "baseline": "1h"},
                {"type": "spike"},
                {"type": "ratio"},
            ],
            "webhook": {"url": "ftp://x", "retries": -1},
            "extra": 1,
        }, ["raqqa-offensive"], window_size=HOUR)
    paths = {e.path: e.message for e in info.value.errors}
    assert set(paths) == {"extra", "rules[0].topic", "rules[0].margin", "rules[0].cooldown",
                          "rules[1].k", "rules[1].previous", "rules[1].baseline", "rules[2].type",
                          "rules[3].name", "webhook.url", "webhook.retries"}
    assert "raqqa-offensive" in paths["rules[0].topic"]
    assert "two windows" in paths["rules[1].baseline"]


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), (30, 30)])
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        parse_duration("an hour")
