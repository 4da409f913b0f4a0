"""Every operator of the topic query language, with negatives (transforms/query.py)."""
from __future__ import annotations

import pickle

import pytest

from transforms.query import Document, QuerySyntaxError, matches, parse_query, variant_table

SEED_QUERY = ("(الرقة OR Raqqa OR Rakka) AND "
              "(هجوم OR معارك OR معركة OR offensive OR battle OR assault)")


def test_single_term_is_case_and_diacritic_insensitive() -> None:
    assert matches("raqqa", "RAQQA under siege")
    assert matches("Élysée", "Paris: l'elysee said")
    assert matches("élysée", "ELYSÉE")


def test_term_does_not_match_inside_a_longer_word() -> None:
    assert not matches("raqqa", "Raqqawi fighters")
    assert not matches("war", "Warsaw talks")
    assert not matches("الرقة", "الرقتين")


def test_arabic_term_with_article_and_proclitics() -> None:
    for text in ["الرقة", "بالرقة", "والرقة", "وبالرقة", "للرقة", "الرَّقَّة", "الـرقـة"]:
        assert matches("الرقة", text), text
    assert not matches("الرقة", "ورقة بيضاء")       # و + رقة, no article
    assert not matches("الرقة", "رقة")


def test_arabic_hamza_and_ta_marbuta_folds_apply_to_query_too() -> None:
    assert matches("إدلب", "ادلب")
    assert matches("ادلب", "وبإدلب")
    assert matches("معركه", "المعركة")


def test_and_or_and_juxtaposition() -> None:
    assert matches("raqqa AND battle", "battle for Raqqa")
    assert not matches("raqqa AND battle", "Raqqa market")
    assert matches("raqqa battle", "battle for Raqqa")
    assert not matches("raqqa battle", "battle for Mosul")
    assert matches("raqqa OR mosul", "Mosul")
    assert not matches("raqqa OR mosul", "Aleppo")


def test_precedence_and_parentheses() -> None:
    # AND binds tighter than OR
    assert matches("a1 OR b1 AND c1", "a1")
    assert not matches("(a1 OR b1) AND c1", "a1")
    assert matches("(a1 OR b1) AND c1", "b1 c1")


def test_not_and_and_not() -> None:
    assert matches("raqqa AND NOT football", "Raqqa battle")
    assert not matches("raqqa AND NOT football", "Raqqa football club")
    assert not matches("raqqa NOT football", "Raqqa football club")
    assert matches("NOT football", "Raqqa")


def test_not_applies_across_title_and_summary() -> None:
    query = parse_query("raqqa AND NOT football")
    assert not query.matches(Document("Raqqa news", "the football season"))
    assert not query.matches(Document("Football in Raqqa", ""))
    assert query.matches(Document("Raqqa news", "the battle goes on"))


def test_phrase_needs_consecutive_tokens() -> None:
    assert matches('"air strike"', "a coalition air strike hit")
    assert matches('"air strike"', "Air-strike")          # punctuation between is no gap
    assert not matches('"air strike"', "strike from the air")
    assert not matches('"air strike"', "air and strike")


def test_phrase_does_not_cross_title_summary_boundary() -> None:
    query = parse_query('"air strike"')
    assert not query.matches(Document("Raids from the air", "strike on Raqqa"))
    assert query.matches(Document("", "an air strike"))


def test_wildcard_prefix() -> None:
    assert matches("offens*", "the offensive began")
    assert matches("offens*", "OFFENSIVES")
    assert not matches("offens*", "an offence")
    assert matches("هجوم*", "هجومها الأخير")
    assert matches("الحسك*", "وبالحسكة")
    assert matches('"air strike*"', "air strikes")


def test_wildcard_needs_three_letters() -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query("raqqa OR of*")
    assert err.value.position == 9
    assert "3 letters" in err.value.expected
    with pytest.raises(QuerySyntaxError):
        parse_query("الر*")          # the article does not count
    with pytest.raises(QuerySyntaxError):
        parse_query("of*fensive")
    with pytest.raises(QuerySyntaxError):
        parse_query("*ffensive")


def test_near_either_order_and_distance() -> None:
    assert matches("raqqa NEAR/2 battle", "battle for Raqqa")
    assert matches("raqqa NEAR/2 battle", "Raqqa battle")
    assert matches("raqqa NEAR/1 battle", "Raqqa battle")
    assert not matches("raqqa NEAR/1 battle", "battle for Raqqa")
    assert not matches("raqqa NEAR/2 battle", "battle for the city of Raqqa")


def test_near_alone_is_near_4() -> None:
    assert matches("raqqa NEAR battle", "battle w1 w2 w3 raqqa")
    assert not matches("raqqa NEAR battle", "battle w1 w2 w3 w4 raqqa")


def test_near_needs_two_distinct_tokens_and_one_field() -> None:
    assert not matches("offensive NEAR offens*", "the offensive")
    assert matches("offensive NEAR offens*", "offensive and offensives")
    assert not parse_query("raqqa NEAR battle").matches(Document("Raqqa", "battle"))


def test_near_with_phrases_and_or_groups() -> None:
    assert matches('"air strike" NEAR/4 raqqa', "Raqqa hit by an air strike")
    assert not matches('"air strike" NEAR/3 raqqa', "Raqqa hit by an air strike")
    assert matches("(raqqa OR الرقة) NEAR/2 (battle OR معركة)", "معركة الرقة")
    with pytest.raises(QuerySyntaxError):
        parse_query("(raqqa AND mosul) NEAR battle")
    with pytest.raises(QuerySyntaxError):
        parse_query("raqqa NEAR battle NEAR city")


def test_title_restriction() -> None:
    query = parse_query('title:raqqa AND title:"air strike"')
    assert query.matches(Document("Air strike on Raqqa", ""))
    assert not query.matches(Document("Air strike", "on Raqqa"))
    assert parse_query("title:raqqa OR battle").matches(Document("", "battle"))


def test_variants_expand_terms_and_phrases() -> None:
    table = variant_table([["Raqqa", "Raqqah", "الرقة"], ["Deir ez-Zor", "Dayr al-Zawr"]])
    assert parse_query("raqqa", table).matches(Document("", "وبالرقة"))
    assert parse_query("Raqqah", table).matches(Document("", "raqqa"))
    assert parse_query('"deir ez zor"', table).matches(Document("", "Dayr al-Zawr"))
    assert not parse_query("raqq*", table).matches(Document("", "الرقة"))


def test_one_word_variants_expand_inside_phrases() -> None:
    table = variant_table([["الديمقراطية", "الديموقراطية"], ["Raqqa", "Ar-Raqqah"]])
    query = parse_query('"قوات سوريا الديمقراطية" OR "battle of Raqqa"', table)
    assert query.matches(Document("", "قوات سوريا الديموقراطية"))
    assert query.matches(Document("", "the battle of Ar-Raqqah"))
    assert not query.matches(Document("", "قوات سوريا"))


def test_evidence_names_term_and_surface_forms() -> None:
    query = parse_query("الرقة AND (battle OR معركة) AND NOT football")
    doc = Document("Battle", "وبالرقة والرقة battle")
    assert query.evidence(doc) == (("الرقة", ("وبالرقة", "والرقة")),
                                   ("battle", ("Battle", "battle")))


def test_seed_query_matches_contract_example() -> None:
    assert matches(SEED_QUERY, "", "معارك في مدينة الرقة")
    assert not matches(SEED_QUERY, "", "ورقة عن معارك")


@pytest.mark.parametrize("query, position, expected", [
    ("raqqa AND", 9, "a term"),
    ("raqqa OR (battle", 16, "a closing )"),
    ('"air strike', 0, 'a closing "'),
    ("raqqa)", 5, "AND, OR, NOT or the end"),
    ("raqqa and battle", 6, "upper-case operator"),
    ("raqqa or battle", 6, "upper-case operator"),
    ("raqqa NEAR/0 battle", 6, "NEAR/n with n from 1"),
    ("body:raqqa", 0, "title:"),
    ("title: raqqa", 6, "right after title:"),
    ("raqqa OR ---", 9, "letters or digits"),
    ("", 0, "a query"),
    ("()", 1, "a term"),
])
def test_syntax_errors_carry_position_and_expectation(query: str, position: int,
                                                      expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query(query)
    assert err.value.position == position
    assert expected in err.value.expected


def test_quoted_operator_words_are_terms() -> None:
    assert matches('"or" AND prix', "le prix de l'or")


def test_compiled_query_pickles() -> None:
    query = parse_query(SEED_QUERY)
    again = pickle.loads(pickle.dumps(query))
    assert again.matches(Document("", "معركة الرقة"))
