"""`mediamon topics test`: run the analysts' rule tests and report precision/recall.

Either each topic's own `examples:` (texts that must match, texts that must not), or a
labelled JSONL file, one object a line: `{"text": ...}` or `{"title": ..., "summary": ...}`
with `"topics": [ids that should be tagged]`. For the file, every configured topic is scored
on every line (a line without a topic is a negative for it).

The result is a printable table (examples, TP, FP, FN, precision, recall per topic) followed by
every failing example, and ok=False when any example fails.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from transforms.topic_matcher import Tagger, TagResult
from transforms.topic_rules import Example, KeywordSpec, TopicSpec, VariantSpec

MAX_FAILURES_SHOWN = 50   # per topic; the rest are counted


@dataclass
class _Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def add(self, expected: bool, got: bool, describe: str) -> None:
        if expected and got:
            self.tp += 1
        elif expected:
            self.fn += 1
            self.failures.append(f"should match, did not: {describe}")
        elif got:
            self.fp += 1
            self.failures.append(f"should not match, did: {describe}")
        else:
            self.tn += 1


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f}" if den else "-"


def _show(example: Example, limit: int = 100) -> str:
    text = " | ".join(p for p in (example.title, example.summary) if p)
    text = " ".join(text.split())
    return json.dumps(text[:limit] + ("…" if len(text) > limit else ""), ensure_ascii=False)


def _why(result: TagResult, topic_id: str) -> str:
    for tid, terms in result.evidence:
        if tid == topic_id:
            return " (matched " + ", ".join(f"{term} -> {'/'.join(forms)}"
                                            for term, forms in terms) + ")"
    return ""


def _read_labelled(path: pathlib.Path) -> list[tuple[Example, frozenset[str], str]]:
    rows: list[tuple[Example, frozenset[str], str]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                item: Any = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not JSON: {err}") from err
            if not isinstance(item, dict):
                raise ValueError(f"{where}: expected a JSON object")
            topics = item.get("topics")
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise ValueError(f"{where}: \"topics\" must be a list of topic ids")
            if "text" in item:
                example = Example(summary=str(item["text"]))
            elif "title" in item or "summary" in item:
                example = Example(str(item.get("title", "")), str(item.get("summary", "")))
            else:
                raise ValueError(f"{where}: expected \"text\", or \"title\"/\"summary\"")
            rows.append((example, frozenset(topics), where))
    return rows


def _table(topics: Sequence[TopicSpec], scores: dict[str, _Score]) -> list[str]:
    width = max([len("topic")] + [len(t.id) for t in topics])
    lines = [f"{'topic':<{width}}  examples   TP   FP   FN  precision  recall"]
    for topic in topics:
        s = scores[topic.id]
        if not s.examples:
            lines.append(f"{topic.id:<{width}}  {'no examples':>8}")
            continue
        lines.append(f"{topic.id:<{width}}  {s.examples:>8} {s.tp:>4} {s.fp:>4} {s.fn:>4}  "
                     f"{_ratio(s.tp, s.tp + s.fp):>9}  {_ratio(s.tp, s.tp + s.fn):>6}")
    return lines


def run_topic_tests(topics: Sequence[TopicSpec], keywords: Sequence[KeywordSpec] = (),
                    variants: Sequence[VariantSpec] | None = (),
                    labelled: pathlib.Path | None = None) -> tuple[str, bool]:
    """Run the examples (or the labelled file); return (printable report, all passed)."""
    tagger = Tagger(topics, keywords, variants)
    scores = {t.id: _Score() for t in topics}
    problems: list[str] = []
    if labelled is None:
        for topic in topics:
            for expected, examples in ((True, topic.examples.match),
                                       (False, topic.examples.no_match)):
                for example in examples:
                    result = tagger.tag(example.title, example.summary)
                    got = topic.id in result.topics
                    scores[topic.id].add(expected, got, _show(example) + _why(result, topic.id))
    else:
        known = set(scores)
        for example, wanted, where in _read_labelled(labelled):
            unknown = sorted(wanted - known)
            if unknown:
                problems.append(f"{where}: unknown topic id(s) {', '.join(unknown)}")
            result = tagger.tag(example.title, example.summary)
            for topic in topics:
                scores[topic.id].add(topic.id in wanted, topic.id in result.topics,
                                     f"{where} {_show(example)}{_why(result, topic.id)}")
    lines = _table(topics, scores)
    failed = sum(len(s.failures) for s in scores.values())
    for topic in topics:
        failures = scores[topic.id].failures
        for failure in failures[:MAX_FAILURES_SHOWN]:
            lines.append(f"FAIL {topic.id}: {failure}")
        if len(failures) > MAX_FAILURES_SHOWN:
            lines.append(f"FAIL {topic.id}: ... and {len(failures) - MAX_FAILURES_SHOWN} more")
    lines.extend(f"ERROR {p}" for p in problems)
    total = sum(s.examples for s in scores.values())
    lines.append(f"{total} checks, {failed} failed" + (f", {len(problems)} errors" if problems else ""))
    return "\n".join(lines), failed == 0 and not problems
