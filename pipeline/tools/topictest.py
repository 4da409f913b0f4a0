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


@dataclass(frozen=True)
class LabelledItem:
    example: Example
    topics: frozenset[str]
    language: str
    where: str                  # path:line


def read_labelled(path: pathlib.Path, known: Sequence[str] | None = None) -> list[LabelledItem]:
    """The labelled JSONL file; ValueError naming the line for a bad line, a topic id not in
    `known`, a line without labels, or a file without any item."""
    rows: list[LabelledItem] = []
    known_ids = set(known) if known is not None else None
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
            if "topics" not in item:
                raise ValueError(f"{where}: no labels: \"topics\" (a list of topic ids, [] for "
                                 f"none) is missing")
            topics = item["topics"]
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise ValueError(f"{where}: \"topics\" must be a list of topic ids")
            if known_ids is not None:
                unknown = sorted(set(topics) - known_ids)
                if unknown:
                    raise ValueError(f"{where}: unknown topic id(s) {', '.join(unknown)}; the "
                                     f"config has {', '.join(sorted(known_ids))}")
            if "text" in item:
                example = Example(summary=str(item["text"]))
            elif "title" in item or "summary" in item:
                example = Example(str(item.get("title") or ""), str(item.get("summary") or ""))
            else:
                raise ValueError(f"{where}: expected \"text\", or \"title\"/\"summary\"")
            language = item.get("language", "")
            rows.append(LabelledItem(example, frozenset(topics),
                                     language if isinstance(language, str) else "", where))
    if not rows:
        raise ValueError(f"{path}: no labelled items")
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
                    variants: Sequence[VariantSpec] | None = ()) -> tuple[str, bool]:
    """Run every topic's own examples; return (printable report, all passed). A labelled file
    is scored by `score_labelled` instead."""
    tagger = Tagger(topics, keywords, variants)
    scores = {t.id: _Score() for t in topics}
    for topic in topics:
        for expected, examples in ((True, topic.examples.match), (False, topic.examples.no_match)):
            for example in examples:
                result = tagger.tag(example.title, example.summary)
                got = topic.id in result.topics
                scores[topic.id].add(expected, got, _show(example) + _why(result, topic.id))
    lines = _table(topics, scores)
    failed = sum(len(s.failures) for s in scores.values())
    for topic in topics:
        failures = scores[topic.id].failures
        for failure in failures[:MAX_FAILURES_SHOWN]:
            lines.append(f"FAIL {topic.id}: {failure}")
        if len(failures) > MAX_FAILURES_SHOWN:
            lines.append(f"FAIL {topic.id}: ... and {len(failures) - MAX_FAILURES_SHOWN} more")
    total = sum(s.examples for s in scores.values())
    lines.append(f"{total} checks, {failed} failed")
    return "\n".join(lines), failed == 0


# --- scoring against a labelled file ------------------------------------------------------

def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int | None]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


@dataclass
class LabelledScore:
    """Per topic, per language and overall (micro) P/R/F1, and every miss and false hit."""

    items: int
    overall: dict[str, Any]
    topics: dict[str, dict[str, Any]]
    languages: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]         # {kind: miss|false_hit, topic, where, language, ...}

    def lowest_f1(self) -> float:
        """The lowest of micro, per-topic and per-language F1 (None counted as 1.0)."""
        values = [self.overall["f1"]] + [s["f1"] for s in self.topics.values()] \
            + [s["f1"] for s in self.languages.values()]
        return min((v for v in values if v is not None), default=1.0)

    def record(self) -> dict[str, Any]:
        return {"items": self.items, "overall": self.overall, "topics": self.topics,
                "languages": self.languages, "errors": self.errors}


def score_labelled(tagger: Tagger, topics: Sequence[TopicSpec],
                   items: Sequence[LabelledItem]) -> LabelledScore:
    """Tag every item and score each topic (a line without a topic is a negative for it)."""
    counts: dict[str, list[int]] = {t.id: [0, 0, 0] for t in topics}
    by_lang: dict[str, list[int]] = {}
    errors: list[dict[str, Any]] = []
    for item in items:
        result = tagger.tag(item.example.title, item.example.summary)
        got = set(result.topics)
        evidence = {tid: [[term, list(forms)] for term, forms in terms]
                    for tid, terms in result.evidence}
        lang = by_lang.setdefault(item.language or "?", [0, 0, 0])
        for topic in topics:
            want, has = topic.id in item.topics, topic.id in got
            slot = 0 if want and has else 1 if has else 2 if want else -1
            if slot < 0:
                continue
            counts[topic.id][slot] += 1
            lang[slot] += 1
            if slot:
                errors.append({
                    "kind": "false_hit" if slot == 1 else "miss", "topic": topic.id,
                    "where": item.where, "language": item.language,
                    "title": item.example.title, "summary": item.example.summary,
                    "labels": sorted(item.topics), "tagged": sorted(got),
                    "evidence": evidence.get(topic.id, []),
                    "other_evidence": {t: e for t, e in evidence.items() if t != topic.id}})
    total = [sum(c[k] for c in counts.values()) for k in range(3)]
    return LabelledScore(len(items), _prf(*total),
                         {t: _prf(*c) for t, c in counts.items()},
                         {lang: _prf(*c) for lang, c in sorted(by_lang.items())}, errors)


def _fmt(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_score(score: LabelledScore, show_errors: bool = True) -> str:
    """The printable report: tables by topic and by language, then each miss and false hit."""
    width = max([len("language"), *(len(t) for t in score.topics)])
    head = f"{'':<{width}}    TP    FP    FN  precision  recall    F1"

    def row(name: str, s: dict[str, Any]) -> str:
        return (f"{name:<{width}}  {s['tp']:>4}  {s['fp']:>4}  {s['fn']:>4}  "
                f"{_fmt(s['precision']):>9}  {_fmt(s['recall']):>6}  {_fmt(s['f1']):>4}")

    lines = [f"{score.items} labelled items", "", "by topic", head]
    lines += [row(t, s) for t, s in score.topics.items()]
    lines += ["", "by language", head]
    lines += [row(lang, s) for lang, s in score.languages.items()]
    lines += ["", row("all (micro)", score.overall)]
    if show_errors:
        for error in score.errors:
            kind = "MISS" if error["kind"] == "miss" else "FALSE HIT"
            text = " | ".join(p for p in (error["title"], error["summary"]) if p)
            ev = "; ".join(f"{term} -> {'/'.join(forms)}" for term, forms in error["evidence"])
            lines.append(f"{kind} {error['topic']} {error['where']} [{error['language']}] "
                         f"labels={','.join(error['labels']) or '-'}"
                         + (f" matched: {ev}" if ev else "") + "\n    " + " ".join(text.split()))
    return "\n".join(lines)
