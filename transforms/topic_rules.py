"""Topic, keyword and variant specs: frozen, picklable, parsed from YAML-loaded data.

YAML forms (each list sits under its own top-level config key):

    variants:                         # spelling variants, one term everywhere
      - [Raqqa, Raqqah, Rakka, Raqa, الرقة]
      - [الديمقراطية, الديموقراطية]
    topics:
      - id: raqqa-offensive           # letters, digits, '-', '_', '.'
        name: Raqqa offensive         # optional, defaults to the id
        query: '(الرقة OR Raqqa) AND (هجوم OR offensive)'     # Boolean query
      - id: air-strikes
        weights:                      # weighted rules (Europe Media Monitor style)
          - {term: 'غارة OR غارات OR airstrike*', weight: 3}
          - {term: '"coalition" NEAR/3 "strike*"', weight: 2}
          - {term: 'football', weight: -5}
        threshold: 4                  # tagged when the sum of the weights of the rules that
                                      #   match reaches the threshold (each rule counts once)
        query: 'Syria OR سوريا'       # optional with weights: then it must match too
        examples:                     # rule tests, run by `mediamon topics test`
          match: ['Coalition airstrikes hit Raqqa', {title: 'Raids', summary: '...'}]
          no_match: ['Football match in Raqqa']
    keywords:
      - {id: raqqa, forms: [الرقة, Raqqa, Rakka, Raqa]}

A `term` of a weighted rule is any query of the language (term, phrase, sub-query). A string
example is a summary with an empty title; a mapping gives `title` and/or `summary`.

Bad input raises `transforms.spec.SpecErrors` listing every problem, each with a path relative
to the list handed in (`[2].query`, `[0].weights[1].term`, `[1][0]`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from transforms.query import QuerySyntaxError, VariantTable, compile_words, parse_query, \
    morphology_warnings, \
    variant_table
from transforms.spec import SpecError, SpecErrors

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TOPIC_KEYS = ("id", "name", "query", "weights", "threshold", "morphology", "examples")


@dataclass(frozen=True)
class VariantSpec:
    """Spellings that count as one term in every query and keyword."""

    forms: tuple[str, ...]


@dataclass(frozen=True)
class WeightSpec:
    term: str            # any query of the language
    weight: float


@dataclass(frozen=True)
class Example:
    title: str = ""
    summary: str = ""


@dataclass(frozen=True)
class ExamplesSpec:
    match: tuple[Example, ...] = ()
    no_match: tuple[Example, ...] = ()


@dataclass(frozen=True)
class TopicSpec:
    id: str
    name: str
    query: str | None = None
    weights: tuple[WeightSpec, ...] = ()
    threshold: float | None = None
    examples: ExamplesSpec = field(default_factory=ExamplesSpec)
    morphology: bool = True       # False: every term matches its exact (folded) forms only


@dataclass(frozen=True)
class KeywordSpec:
    id: str
    forms: tuple[str, ...]


def variants_table(variants: Sequence[VariantSpec] | None) -> VariantTable:
    """The lookup the query compiler uses (variants are already validated; None = none)."""
    return variant_table(v.forms for v in variants or ())


# --- parsing ------------------------------------------------------------------------------

class _Errors:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(SpecError(path, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpecErrors(self.errors)


def _list(raw: Any, what: str, errors: _Errors) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors.add("", f"expected a list of {what}, found {type(raw).__name__}")
        return []
    return raw


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _check_id(value: Any, path: str, what: str, seen: dict[str, str], errors: _Errors) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        errors.add(path, f"{what} id must be a string of letters, digits, '-', '_' or '.', "
                         f"found {value!r}")
        return str(value)
    if value in seen:
        errors.add(path, f"duplicate {what} id {value!r} (first at {seen[value]})")
    else:
        seen[value] = path
    return value


def _query_error(topic: str, what: str, text: str, err: QuerySyntaxError) -> str:
    marker = " " * err.position + "^"
    return f"topic {topic!r}: {what} {err}\n    {text}\n    {marker}"


def parse_variants(raw: Any) -> tuple[VariantSpec, ...]:
    """`variants:` as a list of lists of spellings (words or phrases, no wildcards)."""
    errors = _Errors()
    out: list[VariantSpec] = []
    seen: dict[tuple[str, ...], str] = {}
    for i, members in enumerate(_list(raw, "variant sets (lists of spellings)", errors)):
        if not isinstance(members, list) or len(members) < 2:
            errors.add(f"[{i}]", f"a variant set is a list of at least two spellings, "
                                 f"found {members!r}")
            continue
        ok = True
        for j, member in enumerate(members):
            path = f"[{i}][{j}]"
            if not isinstance(member, str):
                errors.add(path, f"a spelling must be a string, found {member!r}")
                ok = False
                continue
            try:
                key = tuple(a.key for a in compile_words(member, wildcards=False))
            except QuerySyntaxError as err:
                errors.add(path, f"variant {member!r}: {err}")
                ok = False
                continue
            if key in seen and not seen[key].startswith(f"[{i}]"):
                errors.add(path, f"{member!r} is already in the variant set at {seen[key]}; "
                                 f"merge the two sets")
                ok = False
            seen.setdefault(key, path)
        if ok:
            out.append(VariantSpec(tuple(members)))
    errors.raise_if_any()
    return tuple(out)


def _parse_example(raw: Any, path: str, errors: _Errors) -> Example | None:
    if isinstance(raw, str):
        return Example(summary=raw)
    if isinstance(raw, dict):
        unknown = set(raw) - {"title", "summary"}
        if unknown:
            errors.add(path, f"unknown example key(s) {sorted(map(str, unknown))}; "
                             f"an example has title and/or summary")
            return None
        title, summary = raw.get("title", ""), raw.get("summary", "")
        if not isinstance(title, str) or not isinstance(summary, str) or not (title or summary):
            errors.add(path, "an example needs a text title and/or summary")
            return None
        return Example(title, summary)
    errors.add(path, f"an example is a text or a mapping with title/summary, found {raw!r}")
    return None


def _parse_examples(raw: Any, path: str, errors: _Errors) -> ExamplesSpec:
    if not isinstance(raw, dict):
        errors.add(path, "examples must be a mapping with match and/or no_match lists")
        return ExamplesSpec()
    unknown = set(raw) - {"match", "no_match"}
    if unknown:
        errors.add(path, f"unknown key(s) {sorted(map(str, unknown))}; "
                         f"expected match and/or no_match")
    lists: dict[str, tuple[Example, ...]] = {}
    for key in ("match", "no_match"):
        items = raw.get(key) or []
        if not isinstance(items, list):
            errors.add(f"{path}.{key}", "expected a list of examples")
            items = []
        parsed = (_parse_example(item, f"{path}.{key}[{k}]", errors)
                  for k, item in enumerate(items))
        lists[key] = tuple(e for e in parsed if e is not None)
    return ExamplesSpec(lists["match"], lists["no_match"])


def _parse_topic(i: int, raw: Any, table: VariantTable, seen: dict[str, str],
                 errors: _Errors) -> TopicSpec | None:
    at = f"[{i}]"
    if not isinstance(raw, dict):
        errors.add(at, f"a topic is a mapping with id, name and query, found {raw!r}")
        return None
    before = len(errors.errors)
    for key in raw:
        if key not in TOPIC_KEYS:
            errors.add(f"{at}.{key}", f"unknown topic key {key!r}; expected one of "
                                      f"{', '.join(TOPIC_KEYS)}")
    topic_id = _check_id(raw.get("id"), f"{at}.id", "topic", seen, errors)
    name = raw.get("name", topic_id)
    if not isinstance(name, str) or not name.strip():
        errors.add(f"{at}.name", f"topic {topic_id!r}: name must be a non-empty string")
    morphology = raw.get("morphology", True)
    if not isinstance(morphology, bool):
        errors.add(f"{at}.morphology", f"topic {topic_id!r}: morphology must be true or false, "
                                       f"found {morphology!r}")
        morphology = True

    def check(text: str, path: str, what: str) -> bool:
        try:
            compiled = parse_query(text, table, morphology)
        except QuerySyntaxError as err:
            errors.add(path, _query_error(topic_id, what, text, err))
            return False
        for warning in morphology_warnings(compiled):
            errors.add(path, f"topic {topic_id!r}: {what} {warning}")
        return True

    query = raw.get("query")
    if query is not None:
        if not isinstance(query, str):
            errors.add(f"{at}.query", f"topic {topic_id!r}: query must be a string")
        else:
            check(query, f"{at}.query", "query")
    weights: list[WeightSpec] = []
    raw_weights = raw.get("weights")
    if raw_weights is not None and (not isinstance(raw_weights, list) or not raw_weights):
        errors.add(f"{at}.weights", f"topic {topic_id!r}: weights must be a non-empty list of "
                                    f"{{term, weight}}")
        raw_weights = []
    for k, rule in enumerate(raw_weights or []):
        path = f"{at}.weights[{k}]"
        if not isinstance(rule, dict) or set(rule) != {"term", "weight"}:
            errors.add(path, f"topic {topic_id!r}: a weighted rule is {{term: QUERY, "
                             f"weight: NUMBER}}, found {rule!r}")
            continue
        weight = _number(rule["weight"])
        if weight is None or weight == 0:
            errors.add(f"{path}.weight", f"topic {topic_id!r}: weight must be a non-zero "
                                         f"number, found {rule['weight']!r}")
        term = rule["term"]
        if not isinstance(term, str):
            errors.add(f"{path}.term", f"topic {topic_id!r}: term must be a string")
            continue
        if not check(term, f"{path}.term", f"weights[{k}].term"):
            continue
        weights.append(WeightSpec(term, weight or 0.0))
    threshold = None
    if "threshold" in raw:
        threshold = _number(raw["threshold"])
        if threshold is None or threshold <= 0:
            errors.add(f"{at}.threshold", f"topic {topic_id!r}: threshold must be a positive "
                                          f"number, found {raw['threshold']!r}")
        elif raw_weights is None:
            errors.add(f"{at}.threshold", f"topic {topic_id!r}: threshold needs weights")
        elif threshold > sum(w.weight for w in weights if w.weight > 0):
            errors.add(f"{at}.threshold", f"topic {topic_id!r}: threshold {threshold:g} is more "
                                          f"than all positive weights together; it can never "
                                          f"be reached")
    elif raw_weights is not None:
        errors.add(at, f"topic {topic_id!r}: weights need a threshold")
    if query is None and raw_weights is None:
        errors.add(at, f"topic {topic_id!r}: needs a query or weights with a threshold")
    examples = _parse_examples(raw["examples"], f"{at}.examples", errors) \
        if "examples" in raw else ExamplesSpec()
    if len(errors.errors) > before:
        return None
    return TopicSpec(topic_id, name, query, tuple(weights), threshold, examples, morphology)


def parse_topics(raw: Any, variants: Sequence[VariantSpec] | None = ()) -> tuple[TopicSpec, ...]:
    """`topics:` into TopicSpecs; every query is compiled once here to report its errors."""
    errors = _Errors()
    table = variants_table(variants)
    seen: dict[str, str] = {}
    out = [_parse_topic(i, item, table, seen, errors)
           for i, item in enumerate(_list(raw, "topics", errors))]
    errors.raise_if_any()
    return tuple(t for t in out if t is not None)


def parse_keywords(raw: Any) -> tuple[KeywordSpec, ...]:
    """`keywords:` into KeywordSpecs; a form is a word or phrase, `*` allowed at a word end."""
    errors = _Errors()
    seen: dict[str, str] = {}
    out: list[KeywordSpec] = []
    for i, item in enumerate(_list(raw, "keywords", errors)):
        at = f"[{i}]"
        if not isinstance(item, dict):
            errors.add(at, f"a keyword is a mapping with id and forms, found {item!r}")
            continue
        before = len(errors.errors)
        for key in item:
            if key not in ("id", "forms"):
                errors.add(f"{at}.{key}", f"unknown keyword key {key!r}; expected id, forms")
        keyword_id = _check_id(item.get("id"), f"{at}.id", "keyword", seen, errors)
        forms = item.get("forms")
        if not isinstance(forms, list) or not forms:
            errors.add(f"{at}.forms", f"keyword {keyword_id!r}: forms must be a non-empty list")
            continue
        for k, form in enumerate(forms):
            if not isinstance(form, str):
                errors.add(f"{at}.forms[{k}]", f"keyword {keyword_id!r}: a form is a string")
                continue
            try:
                compile_words(form)
            except QuerySyntaxError as err:
                errors.add(f"{at}.forms[{k}]", f"keyword {keyword_id!r}: form {form!r} {err}")
        if len(errors.errors) == before:
            out.append(KeywordSpec(keyword_id, tuple(forms)))
    errors.raise_if_any()
    return tuple(out)
