"""Parsing topics, keywords and variants from YAML-loaded data, and the errors it reports."""
from __future__ import annotations

import pickle

import pytest
import yaml

from transforms.spec import SpecErrors
from transforms.topic_rules import Example, ExamplesSpec, KeywordSpec, TopicSpec, VariantSpec, \
    WeightSpec, parse_keywords, parse_topics, parse_variants


def errors_of(call: object, *args: object) -> dict[str, str]:
    with pytest.raises(SpecErrors) as err:
        call(*args)  # type: ignore[operator]
    return {e.path: e.message for e in err.value.errors}


def test_contract_topic_and_keyword_forms() -> None:
    raw = yaml.safe_load("""
topics:
  - id: raqqa-offensive
    name: Raqqa offensive
    query: '(الرقة OR Raqqa OR Rakka) AND (هجوم OR معارك OR معركة OR offensive OR battle OR assault)'
keywords:
  - id: raqqa
    forms: [الرقة, Raqqa, Rakka, Raqa]
""")
    (topic,) = parse_topics(raw["topics"])
    assert topic.id == "raqqa-offensive" and topic.name == "Raqqa offensive"
    assert topic.weights == () and topic.threshold is None
    assert parse_keywords(raw["keywords"]) == (
        KeywordSpec("raqqa", ("الرقة", "Raqqa", "Rakka", "Raqa")),)


def test_weights_threshold_examples_and_variants() -> None:
    raw = yaml.safe_load("""
variants:
  - [Raqqa, Raqqah, Rakka]
  - [الديمقراطية, الديموقراطية]
topics:
  - id: strikes
    query: Syria
    weights:
      - {term: 'airstrike* OR غارة', weight: 3}
      - {term: football, weight: -2.5}
    threshold: 3
    examples:
      match: ['Syria: coalition airstrikes', {title: Raids, summary: 'Syria airstrike'}]
      no_match: [Syria football]
""")
    variants = parse_variants(raw["variants"])
    assert variants == (VariantSpec(("Raqqa", "Raqqah", "Rakka")),
                        VariantSpec(("الديمقراطية", "الديموقراطية")))
    (topic,) = parse_topics(raw["topics"], variants)
    assert topic == TopicSpec(
        "strikes", "strikes", "Syria",
        (WeightSpec("airstrike* OR غارة", 3.0), WeightSpec("football", -2.5)), 3.0,
        ExamplesSpec((Example("", "Syria: coalition airstrikes"), Example("Raids", "Syria airstrike")),
                     (Example("", "Syria football"),)))
    assert pickle.loads(pickle.dumps(topic)) == topic


def test_malformed_query_names_topic_position_and_expectation() -> None:
    raw = [{"id": "ok", "query": "a"}, {"id": "x", "query": "a"},
           {"id": "broken", "query": "(Raqqa OR Rakka AND battle"}]
    errors = errors_of(parse_topics, raw)
    assert list(errors) == ["[2].query"]
    message = errors["[2].query"]
    assert "topic 'broken'" in message
    assert "position 26" in message
    assert "expected a closing )" in message


def test_weight_term_errors_have_their_own_path() -> None:
    raw = [{"id": "t", "weights": [{"term": "raqqa", "weight": 1},
                                    {"term": "ab*", "weight": 2}], "threshold": 1}]
    errors = errors_of(parse_topics, raw)
    assert list(errors) == ["[0].weights[1].term"]
    assert "topic 't'" in errors["[0].weights[1].term"]
    assert "3 letters" in errors["[0].weights[1].term"]


def test_term_that_can_never_match_is_reported() -> None:
    errors = errors_of(parse_topics, [{"id": "t", "query": "raqqa OR ـــ"}])
    assert "can never match" in errors["[0].query"]
    errors = errors_of(parse_keywords, [{"id": "k", "forms": ["Raqqa", "«»"]}])
    assert "can never match" in errors["[0].forms[1]"]


@pytest.mark.parametrize("raw, path, words", [
    ([{"id": "t"}], "[0]", "needs a query"),
    ([{"id": "t", "query": "a", "colour": "red"}], "[0].colour", "unknown topic key"),
    ([{"id": "t t", "query": "a"}], "[0].id", "letters, digits"),
    ([{"id": "t", "query": "a"}, {"id": "t", "query": "b"}], "[1].id", "duplicate"),
    ([{"id": "t", "query": 3}], "[0].query", "must be a string"),
    ([{"id": "t", "weights": [{"term": "a", "weight": 1}]}], "[0]", "need a threshold"),
    ([{"id": "t", "query": "a", "threshold": 2}], "[0].threshold", "needs weights"),
    ([{"id": "t", "weights": [{"term": "a", "weight": 1}], "threshold": 5}],
     "[0].threshold", "never be reached"),
    ([{"id": "t", "weights": [{"term": "a", "weight": "heavy"}], "threshold": 1}],
     "[0].weights[0].weight", "non-zero number"),
    ([{"id": "t", "weights": [{"term": "a"}], "threshold": 1}], "[0].weights[0]", "weighted rule"),
    ([{"id": "t", "query": "a", "examples": {"match": "text"}}], "[0].examples.match",
     "list of examples"),
    ([{"id": "t", "query": "a", "examples": {"match": [{"body": "x"}]}}],
     "[0].examples.match[0]", "title and/or summary"),
    ([{"id": "t", "query": "a", "examples": {"maybe": []}}], "[0].examples", "unknown key"),
    ({"id": "t"}, "", "expected a list"),
])
def test_topic_errors(raw: object, path: str, words: str) -> None:
    errors = errors_of(parse_topics, raw)
    assert path in errors, errors
    assert words in errors[path]


def test_all_errors_reported_at_once() -> None:
    errors = errors_of(parse_topics, [{"id": "a", "query": "x AND"}, {"id": "b", "query": "y OR"}])
    assert set(errors) == {"[0].query", "[1].query"}


@pytest.mark.parametrize("raw, path, words", [
    ([{"id": "k"}], "[0].forms", "non-empty list"),
    ([{"id": "k", "forms": []}], "[0].forms", "non-empty list"),
    ([{"id": "k", "forms": [1]}], "[0].forms[0]", "a form is a string"),
    ([{"id": "k", "forms": ["a"], "x": 1}], "[0].x", "unknown keyword key"),
    ([{"id": "k", "forms": ["a"]}, {"id": "k", "forms": ["b"]}], "[1].id", "duplicate"),
])
def test_keyword_errors(raw: object, path: str, words: str) -> None:
    errors = errors_of(parse_keywords, raw)
    assert words in errors[path]


@pytest.mark.parametrize("raw, path, words", [
    ([["Raqqa"]], "[0]", "at least two"),
    (["Raqqa"], "[0]", "at least two"),
    ([["Raqqa", 3]], "[0][1]", "must be a string"),
    ([["Raqqa", "Raq*"]], "[0][1]", "without a wildcard"),
    ([["Raqqa", "Rakka"], ["RAKKA", "Raqa"]], "[1][0]", "already in the variant set at [0][1]"),
])
def test_variant_errors(raw: object, path: str, words: str) -> None:
    errors = errors_of(parse_variants, raw)
    assert words in errors[path]


def test_empty_sections() -> None:
    assert parse_topics([]) == () and parse_keywords(None) == () and parse_variants([]) == ()
