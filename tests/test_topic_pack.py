"""The shipped topic pack configs/topics/syria-2017.yaml, and the topics test runner."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.tools.topictest import read_labelled, run_topic_tests, score_labelled
from transforms.topic_matcher import Tagger
from transforms.topic_matcher import Tagger
from transforms.topic_rules import ExamplesSpec, Example, KeywordSpec, TopicSpec, VariantSpec, \
    parse_keywords, parse_topics, parse_variants

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "configs" / "topics" / "syria-2017.yaml"
SEED = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "seed" / \
    "zamanalwsl-raqqa-2017.txt"


def load_pack() -> tuple[tuple[TopicSpec, ...], tuple[KeywordSpec, ...], tuple[VariantSpec, ...]]:
    raw = yaml.safe_load(PACK.read_text(encoding="utf-8"))
    assert set(raw) == {"name", "topics", "keywords", "variants"}
    variants = parse_variants(raw["variants"])
    return parse_topics(raw["topics"], variants), parse_keywords(raw["keywords"]), variants


def test_pack_covers_the_wars_main_stories_with_examples() -> None:
    topics, _, _ = load_pack()
    ids = {t.id for t in topics}
    assert {"raqqa-offensive", "deir-ez-zor", "civilian-displacement", "coalition-airstrikes",
            "foreign-fighters"} <= ids
    for topic in topics:
        assert topic.examples.match and topic.examples.no_match, topic.id


def test_pack_examples_all_pass() -> None:
    text, ok = run_topic_tests(*load_pack())
    assert ok, text
    assert "0 failed" in text


def test_pack_tags_seed_article() -> None:
    if not SEED.exists():
        pytest.skip(f"corpus absent: {SEED}")
    topics, keywords, variants = load_pack()
    result = Tagger(topics, keywords, variants).tag("", SEED.read_text(encoding="utf-8"))
    assert "raqqa-offensive" in result.topics
    assert dict(result.keyword_mentions)["raqqa"] == 9
    assert dict(result.keyword_mentions)["sdf"] >= 1      # written الديموقراطية: a variant


def failing_topic() -> TopicSpec:
    return TopicSpec("raqqa", "Raqqa", "الرقة", examples=ExamplesSpec(
        match=(Example(summary="معارك الرقة"), Example(summary="Raqqa")),
        no_match=(Example(summary="ورقة"), Example(summary="وبالرقة"))))


def test_failing_examples_are_listed_and_fail() -> None:
    text, ok = run_topic_tests([failing_topic()])
    assert not ok
    assert "should match, did not: \"Raqqa\"" in text
    assert "should not match, did: \"وبالرقة\" (matched الرقة -> وبالرقة)" in text
    row = next(line for line in text.splitlines() if line.startswith("raqqa "))
    assert row.split() == ["raqqa", "4", "1", "1", "1", "0.50", "0.50"]


def test_labelled_file(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in [
        {"text": "معارك الرقة", "topics": ["raqqa"]},
        {"title": "Raqqa", "summary": "", "topics": ["raqqa"]},
        {"text": "ورقة", "topics": []},
    ]) + "\n", encoding="utf-8")
    topics = [failing_topic()]
    score = score_labelled(Tagger(topics), topics, read_labelled(labelled, ["raqqa"]))
    assert (score.topics["raqqa"]["tp"], score.topics["raqqa"]["fp"], score.topics["raqqa"]["fn"]) == (1, 0, 1)
    assert score.topics["raqqa"]["precision"] == 1.0 and score.topics["raqqa"]["recall"] == 0.5
    assert [(e["kind"], e["where"]) for e in score.errors] == [("miss", f"{labelled}:2")]


def test_labelled_file_errors(tmp_path: Path) -> None:
    labelled = tmp_path / "bad.jsonl"
    labelled.write_text('{"text": "ok", "topics": []}\n{"text": "x", "topics": ["nope"]}\n',
                        encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:2: unknown topic id"):
        read_labelled(labelled, ["raqqa"])
    labelled.write_text('{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1: no labels"):
        read_labelled(labelled, ["raqqa"])


def test_topics_without_examples_pass_and_say_so() -> None:
    text, ok = run_topic_tests([TopicSpec("t", "T", "x")])
    assert ok
    assert "no examples" in text
