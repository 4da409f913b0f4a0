"""The Syria pack's Kurdish coverage: the spellings and endings the rules rely on (Kurmanji in
Latin script, Sorani in Arabic script in both the ە and the older ه typing), what must not
match, and that unrelated 2026 news in ../shared/corpus/feeds gets no topic at all."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.loader import load_config
from transforms.feeds import FeedError, parse_feed
from transforms.records import FeedDocument
from transforms.topic_matcher import Tagger
from transforms.topic_rules import TopicSpec

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "configs" / "topics" / "syria-2017.yaml"
FEEDS = ROOT.parent / "shared" / "corpus" / "feeds"


@pytest.fixture(scope="module")
def variants():  # type: ignore[no-untyped-def]
    return load_config(PACK).variants


def _matches(variants, term: str, text: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(Tagger([TopicSpec("t", "T", term)], (), variants).tag(text, "").topics)


# (term as the pack writes it, texts it must match, texts it must not match)
SPELLINGS = [
    # Kurmanji: oblique -ê/-yê, ezafe -a, attached -da, and the variant spellings
    ("الرقة", ["Reqqayê", "bajarê Reqqa", "Rakkayê"], ["Reqem", "ورقة"]),
    ("=Reqa OR =Reqayê", ["li Reqayê", "Reqa"], ["(sub req)", "reqayed"]),
    ('"Deir ez-Zor"', ["Dêrazorê", "Dêrezorê", "Dêra Zorê", "Dêrzorê", "Deyr ez-Zorê"],
     ["Zorê", "Dêra"]),
    ("Afrin", ["Efrînê", "Efrîna", "Efrînêda", "Afrînê"], ["Efes", "Efendî"]),
    ("Manbij", ["Minbicê", "Menbicê", "Münbiç'te"], ["Minber"]),
    ("Kobani", ["Kobaniyê", "Kobanî", "Kobanê"], ["Kobra"]),
    ("Idlib", ["Îdlibê", "Îdlîbê", "Edlibê"], ["Idil"]),
    ("Syria", ["Sûriyeyê", "Sûrîyayê", "Sûrî"], ["sure", "Sûrsor"]),
    ("Tabqa", ["Tebqayê", "Tebqa"], ["Tebax"]),
    ("Mayadin", ["Meyadînê", "Mayadînê"], ["meydan"]),
    ("Albukamal", ["Bûkemalê", "Albûkemal", "Ebû Kemalê"], ["Kemal"]),
    ('"Khan Shaykhun"', ["Xan Şêxûnê", "Xan Şeyxûn"], ["Xan"]),
    ("Ghouta", ["Xûteya Rojhilat", "Xûta"], ["Xûtbe"]),
    ("ISIS", ["DAIŞê", "DAİŞ", "Dewleta Îslamî"], ["Dewlet"]),
    ("Erdogan", ["Erdoganê", "Erdoğan'ın"], ["Erdem"]),
    ("Astana", ["Astanayê", "Astanê"], ["Astronot"]),
    # Sorani, ە typing: definite, plural, ezafe, postposition and clitic endings
    ("الرقة", ["ڕەققەدا", "ڕەققەکەدا", "ڕەققەش", "لە ڕەققەوە", "ڕقەی سووریا"], ["ڕەق", "ڕەقەمی"]),
    ('"Deir ez-Zor"', ["دێرەزوور", "دێرەزوورەوە", "دێرەزۆر", "دەیرەزوور"], ["دێرین"]),
    ("Afrin", ["عەفرینی", "لە ئەفرینەوە", "عەفرینیش", "عفرین"], ["ئەفسەر"]),
    ("Kobani", ["کۆبانی", "کۆبانێ", "کۆبانێدا"], ["کۆبوونەوە"]),
    ("Idlib", ["ئیدلب", "ئیدلیب", "ئەدلب"], ["ئیدارە"]),
    ("Syria", ["سووریا", "سووریای", "سوریادا"], ["سوور"]),           # not سوور, red
    ("ISIS", ["داعش", "داعشەوە", "داعێش", "دەوڵەتی ئیسلامی"], ["داهات"]),
    ("Ghouta", ["غوتە", "غوتەی ڕۆژهەڵات"], ["غەم"]),
    ("Mayadin", ["مەیادین"], ["میدیا"]),
    # Sorani, older ه typing (ه for ە)
    ("Afrin", ["عهفرین", "ئهفرین"], ["عهرهب"]),
    ("Idlib", ["ئهدلب"], ["ئهدهب"]),
    ("الرقة", ["ڕهققه"], ["ڕهق"]),
]


@pytest.mark.parametrize("term,hits,misses", SPELLINGS, ids=[f"{t}-{h[0]}" for t, h, _ in SPELLINGS])
def test_pack_variants_cover_kurdish_spellings(variants, term: str, hits: list[str],  # type: ignore[no-untyped-def]
                                               misses: list[str]) -> None:
    for text in hits:
        assert _matches(variants, term, text), f"{term} should match {text}"
    for text in misses:
        assert not _matches(variants, term, text), f"{term} should not match {text}"


@pytest.fixture(scope="module")
def pack_tagger() -> Tagger:
    config = load_config(PACK)
    return Tagger(config.topics, config.keywords, config.variants)


# Real headlines are in the dev set; these are single sentences testing one rule each: a word
# that looks like a rule's term but is not it.
LOOKALIKES = [
    # roja is "day", not the Roj camp; direvîne is "kidnaps", not direvin "they flee"
    ("Roja Duşemê rojnamevanên Fransî li ser DAIŞê axivîn", "foreign-fighters"),
    ("Artêşa Tirkiyê li Efrînê 5 welatî direvîne", "civilian-displacement"),
    # Halabja anniversaries are not Syria's chemical war; with Syria named, they are
    ("Di salvegera Helebçeyê de bîranîna qurbaniyên çekên kîmyewî", "chemical-weapons"),
    ("ئهو گازه كیمیاوییهی له ههڵهبجه بهكارهات", "chemical-weapons"),
    # Iraqi Kurdistan, Turkish coffee: not Turkish operations in Syria
    ("قاوەی تورکی لە سلێمانی: داگیرکەری تورکیا لە ڕۆژئاوا", "turkish-operations"),
    ("Artêşa Tirkiyê li Metîna û Zapê operasyon kir", "turkish-operations"),
    # ISIS cells after the front are not the Raqqa offensive
    ("HSD li Reqayê operasyonek kir: şaneyeke DAIŞê hat girtin", "raqqa-offensive"),
]


@pytest.mark.parametrize("text,topic", LOOKALIKES, ids=[t for _, t in LOOKALIKES])
def test_kurdish_lookalikes_stay_out(pack_tagger: Tagger, text: str, topic: str) -> None:
    assert topic not in pack_tagger.tag(text, "").topics, text


def test_halabja_does_not_hide_a_syrian_chemical_attack(pack_tagger: Tagger) -> None:
    text = "Gaza ku li Xan Şêxûnê hat bikaranîn, wek ya Helebçeyê ye: êrîşa kîmyewî li Sûriyê"
    assert "chemical-weapons" in pack_tagger.tag(text, "").topics


def test_unrelated_2026_feed_items_get_no_topic(pack_tagger: Tagger) -> None:
    """Over-tagging guard: the real 2026 feeds in ../shared/corpus/feeds are about other news."""
    if not FEEDS.exists():
        pytest.skip(f"corpus absent: {FEEDS}")
    items, tagged = 0, []
    for path in sorted(FEEDS.glob("*/*")):
        if path.suffix in (".md", ".tsv") or not path.is_file():
            continue
        try:
            feed = parse_feed(FeedDocument(path.name, str(path), path.read_bytes(), ""))
        except FeedError:
            continue
        for entry in feed.entries:
            items += 1
            topics = pack_tagger.tag(entry.title, entry.summary).topics
            if topics:
                tagged.append((path.name, entry.title, topics))
    assert items >= 400, items
    assert tagged == [], tagged
