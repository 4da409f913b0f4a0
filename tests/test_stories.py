"""Near-duplicate stories: the similarity logic (ar, en, fr, tr), the matcher, the GroupStories
stage in batch (TestPipeline) and streaming (TestStream), story counts and story records, and
precision / recall on the labelled pair set (tests/data/story_pairs.jsonl)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from benchmarks.story_pairs import load, minhash_decider, score
from transforms.counts import CountPerWindow
from transforms.records import Article, ArticleCoder
from transforms.stories import (
    FEATURE_ROWS,
    GroupStories,
    Remembered,
    Signer,
    StoryMatcher,
    StoryOptions,
    features,
    group_articles,
    numbers_agree,
    similarity,
    strip_outlet,
    title_numbers,
)
from transforms.timeutil import from_epoch

SIGNER = Signer()
DAY = 86400.0


def sim(a: tuple[str, str], b: tuple[str, str]) -> float:
    return similarity(SIGNER.sign(features(*a)), SIGNER.sign(features(*b)))


def same(a: tuple[str, str], b: tuple[str, str], threshold: float = 0.4) -> bool:
    return sim(a, b) >= threshold and numbers_agree(title_numbers(a[0]), title_numbers(b[0]))


# Real headlines and ledes (../shared/corpus/topics-dev), and copies edited as syndication does.
AR = ("الجيش السوري يسترد مطار دير الزور العسكري من قبضة داعش",
      "أعلن الجيش السوري استعادة السيطرة على مطار دير الزور العسكري بعد معارك عنيفة مع تنظيم داعش.")
AR_COPY = ("الجَيش السوري يستردّ مطار دير الزور العسكري من قبضة «داعش» - سكاي نيوز عربية",
           "واعلن الجيش السوري استعادة السيطره على مطار دير الزور العسكري بعد معارك عنيفه مع تنظيم داعش.")
AR_FOLLOW_UP = ("انطلاق الجولة 21 من محادثات مسار أستانا", "انطلقت في أستانا الجولة الحادية والعشرون من المحادثات.")
AR_EARLIER = ("انطلاق الجولة 19 من محادثات مسار أستانا", "انطلقت في أستانا الجولة التاسعة عشرة من المحادثات.")
EN = ("IS pushes back against US-backed forces in Syria's Raqqa",
      "Islamic State militants fought on Friday to repel the advance of U.S.-backed Syrian forces, days after "
      "they inched closer to the heart of the extremist group's de facto capital of Raqqa.")
EN_COPY = ("IS pushes back against US-backed forces in Syria's Raqqa - AP News",
           "The fighting came days after the forces inched closer to the heart of the group's capital.")
EN_OTHER = ("US-backed forces advance in old city of Syria's Raqqa city",
            "U.S.-backed Syrian forces advanced in the old city of Raqqa on Tuesday, a monitoring group said.")
FR = ("Syrie : les FDS soutenues par Washington chassent l'EI d'un de ses fiefs",
      "Les Forces démocratiques syriennes ont chassé le groupe Etat islamique d'un de ses fiefs dans l'est.")
FR_COPY = ("Les FDS soutenues par Washington chassent l'EI d'un de ses fiefs (Syrie) | France 24",
           "Les Forces democratiques syriennes ont chasse le groupe Etat islamique d'un de ses fiefs dans l'est.")
FR_OTHER = ("Syrie : l'offensive du régime sur la Ghouta a tué plus de 1.000 civils (OSDH)",
            "Plus de 1.000 civils ont été tués depuis le début de l'offensive du régime sur la Ghouta.")
TR = ("Koalisyon güçlerinden Deyrizor'a hava saldırısı: 4'ü çocuk 10 sivil öldü",
      "ABD öncülüğündeki koalisyon güçleri Deyrizor'a hava saldırısı düzenledi.")
TR_COPY = ("SON DAKİKA: Koalisyon guclerinden Deyrizor'a hava saldirisi: 4'u cocuk 10 sivil oldu",
           "ABD onculugundeki koalisyon gucleri Deyrizor'a hava saldirisi duzenledi.")
TR_FOLLOW_UP = ("3 terörist etkisiz hale getirildi", "Pençe-Kilit bölgesinde 3 terörist etkisiz hale getirildi.")
TR_OTHER = ("Irak kuzeyinde 6 terörist etkisiz hale getirildi", "Irak'ın kuzeyinde 6 terörist etkisiz hale getirildi.")


@pytest.mark.parametrize("a, b", [(AR, AR_COPY), (EN, EN_COPY), (FR, FR_COPY), (TR, TR_COPY)],
                         ids=["ar", "en", "fr", "tr"])
def test_copies_with_outlet_tags_spelling_and_new_lede_are_one_story(a: Any, b: Any) -> None:
    assert same(a, b), sim(a, b)


@pytest.mark.parametrize("a, b", [(AR_FOLLOW_UP, AR_EARLIER), (EN, EN_OTHER), (FR, FR_OTHER),
                                  (TR_FOLLOW_UP, TR_OTHER)], ids=["ar", "en", "fr", "tr"])
def test_same_place_and_topic_but_another_event_stays_apart(a: Any, b: Any) -> None:
    assert not same(a, b), sim(a, b)


def test_arabic_folding_and_proclitics_do_not_split_a_story() -> None:
    plain = features("قوات سوريا الديمقراطية تدخل مدينة الرقة", "")
    marked = features("وقوات سُوريا الديموقراطية تدخل مدينة بالرقة", "")
    assert len(plain & marked) / len(plain | marked) >= 0.6


def test_outlet_tags_are_stripped_only_when_short() -> None:
    assert strip_outlet("Iran to join BRICS development bank - Al Jazeera") == "Iran to join BRICS development bank"
    assert strip_outlet("Syrie : les FDS chassent l'EI | France 24") == "Syrie : les FDS chassent l'EI"
    assert strip_outlet("Raqqa - a city in ruins") == "Raqqa - a city in ruins"   # too little before the tag


def test_empty_and_one_word_titles_never_merge() -> None:
    assert features("", "") == set()
    assert features("Syria", "A long identical lede about the offensive on Raqqa by the SDF.") == set()
    assert features("Breaking news", "the same text") == set()
    matcher = StoryMatcher()
    ids = [matcher.assign(f"x{i}", 0.0, SIGNER.sign(features("Syria", "same lede here"))) for i in range(3)]
    assert ids == ["x0", "x1", "x2"]
    assert similarity(None, SIGNER.sign(features(*EN))) == 0.0


def article(id_: str, title: str, summary: str = "", at: float = 0.0, language: str = "en",
            source: str = "s") -> Article:
    return Article(id=id_, url=f"https://{source}/{id_}", title=title, summary=summary, source=source,
                   published=from_epoch(1_500_000_000 + at), fetched=from_epoch(1_500_000_000 + at),
                   language=language)


def test_matcher_joins_the_first_seen_story_within_the_horizon_only() -> None:
    arts = [article("b", *EN_COPY, at=3600, source="ap"), article("a", *EN, at=0, source="fox"),
            article("c", *EN, at=5 * DAY, source="late"), article("d", *EN_OTHER, at=60)]
    out = {a.id: (a.story, a.story_size) for a in group_articles(arts, StoryMatcher(horizon=3 * DAY))}
    assert out == {"a": ("a", 2), "b": ("a", 2), "c": ("c", 1), "d": ("d", 1)}


def test_matcher_memory_is_bounded() -> None:
    matcher = StoryMatcher(max_remembered=5)
    for i in range(20):
        matcher.assign(f"id{i}", float(i), SIGNER.sign(features(f"story number {i} about something", "")))
    assert len(matcher.remembered) <= 5
    assert SIGNER.sign(features(*EN)).nbytes == 4 * 128     # a remembered signature: 512 bytes


def test_pair_set_precision_and_recall_per_language() -> None:
    pairs = load()
    assert len(pairs) >= 600
    table = score(pairs, minhash_decider(StoryOptions().threshold))
    assert set(table) == {"ar", "en", "fr", "tr"}
    for lang, row in table.items():
        assert row["precision"] >= 0.95, (lang, row)
        assert row["recall_rewrites"] >= 0.85, (lang, row)
        assert row["hard_negatives_merged"].startswith("0/"), (lang, row)


# ---------------------------------------------------------------- the stage

BATCH = [article("a", *EN, at=0, source="fox"), article("b", *EN_COPY, at=600, source="ap"),
         article("c", *EN_OTHER, at=60, source="star"), article("d", *AR, at=0, language="ar", source="sky"),
         article("e", *AR_COPY, at=60, language="ar", source="jaz"), article("f", "Syria", at=5, source="x"),
         article("g", "Syria", at=6, source="y")]
EXPECTED = [("a", "a", 2), ("b", "a", 2), ("c", "c", 1), ("d", "d", 2), ("e", "d", 2), ("f", "f", 1), ("g", "g", 1)]


def test_group_stories_batch_stage() -> None:
    with TestPipeline() as p:
        grouped = p | beam.Create(BATCH) | GroupStories(StoryOptions())
        out = grouped.articles | beam.Map(lambda a: (a.id, a.story, a.story_size))
        assert_that(out, equal_to(EXPECTED))
        assert_that(grouped[GroupStories.DEAD], equal_to([]), label="NoDeadLetters")


def test_group_stories_dead_letters_an_article_it_cannot_match() -> None:
    bad = BATCH[0].replace(id="bad", published="not a time")
    with TestPipeline() as p:
        grouped = p | beam.Create([*BATCH, bad]) | GroupStories(StoryOptions())
        out = grouped.articles | beam.Map(lambda a: (a.id, a.story, a.story_size))
        assert_that(out, equal_to(EXPECTED))
        dead = grouped[GroupStories.DEAD] | beam.Map(lambda d: (d.stage, d.error.split(":")[0]))
        assert_that(dead, equal_to([("stories", "ValueError")]), label="OneDeadLetter")


def test_story_counts_and_story_records() -> None:
    tagged = [a.replace(topics=("raqqa",), keyword_mentions=(("raqqa", 1),), story=s, story_size=n)
              for a, (_, s, n) in zip(BATCH, EXPECTED)]
    with TestPipeline() as p:
        out = p | beam.Create(tagged) | CountPerWindow(86400, stories=True)
        assert_that(out["topics"] | beam.Map(lambda t: (t.language, t.articles, t.stories)),
                    equal_to([("en", 5, 4), ("ar", 2, 1)]), label="topics")
        assert_that(out["counts"] | beam.Map(lambda c: (c.language, c.articles, c.stories, c.mentions)),
                    equal_to([("en", 5, 4, 5), ("ar", 2, 1, 2)]), label="counts")
        assert_that(out["stories"] | beam.Map(lambda s: (s.story, s.size, s.outlets, s.headline, s.first_seen,
                                                         s.last_seen)),
                    equal_to([("a", 2, ("ap", "fox"), EN[0], from_epoch(1_500_000_000), from_epoch(1_500_000_600)),
                              ("c", 1, ("star",), EN_OTHER[0], from_epoch(1_500_000_060), from_epoch(1_500_000_060)),
                              ("d", 2, ("jaz", "sky"), AR[0], from_epoch(1_500_000_000), from_epoch(1_500_000_060)),
                              ("f", 1, ("x",), "Syria", from_epoch(1_500_000_005), from_epoch(1_500_000_005)),
                              ("g", 1, ("y",), "Syria", from_epoch(1_500_000_006), from_epoch(1_500_000_006))]),
                    label="stories")


def test_article_record_carries_story_and_old_state_still_reads() -> None:
    art = article("a", *EN).replace(story="a", story_size=3)
    assert ArticleCoder().decode(ArticleCoder().encode(art)) == art
    record = art.to_json()
    assert (record["story"], record["story_size"]) == ("a", 3)
    assert article("z", *EN).to_json()["story"] == "z"      # not grouped: its own story
    from transforms.records import article_from_state, article_to_state
    old = article_to_state(article("a", *EN))
    del old["story"], old["story_size"]                       # a store written before stories
    assert article_from_state(old).story == ""


def streaming_pipeline() -> TestPipeline:
    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    return TestPipeline(options=options)


def test_group_stories_streaming_state_and_expiry() -> None:
    t0 = 1_500_000_000
    first = article("a", *EN, at=0, source="fox")
    copy = article("b", *EN_COPY, at=600, source="ap")
    much_later = article("c", *EN, at=4 * DAY, source="late")    # after the horizon: a new story
    arabic = article("d", *AR, at=700, language="ar")
    stream = (TestStream()
              .advance_watermark_to(t0)
              .add_elements([TimestampedValue(first, t0)])
              .add_elements([TimestampedValue(copy, t0 + 600), TimestampedValue(arabic, t0 + 700)])
              .advance_watermark_to(t0 + 4 * DAY - 10)
              .add_elements([TimestampedValue(much_later, t0 + 4 * DAY)])
              .advance_watermark_to(t0 + 10 * DAY)
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = ((p | stream | GroupStories(StoryOptions(horizon=3 * DAY), streaming=True)).articles
               | beam.Map(lambda a: (a.id, a.story, a.story_size)))
        assert_that(out, equal_to([("a", "a", 1), ("b", "a", 2), ("d", "d", 1), ("c", "c", 1)]))


def test_pair_set_provenance_is_recorded() -> None:
    path = Path(__file__).parent / "data" / "story_pairs.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        assert pair["provenance"] and pair["label"] in ("same", "different") and pair["language"]


def test_report_lists_top_stories_and_charts_stories_or_articles(tmp_path: Path) -> None:
    from pipeline.store.outputs import StoredOutputs
    from pipeline.tools.report import write_report
    w = {"window_start": "2017-06-09T00:00:00Z", "window_end": "2017-06-10T00:00:00Z"}
    outputs = StoredOutputs(
        topics=[{**w, "topic": "raqqa", "language": "en", "articles": 7, "stories": 2}],
        stories=[{**w, "story": "a", "headline": "Wire <story> on Raqqa", "url": "https://x.org/a",
                  "outlets": ["ap", "fox", "star"], "languages": ["en"], "size": 5,
                  "first_seen": "2017-06-09T10:00:00Z", "last_seen": "2017-06-09T12:00:00Z"},
                 {**w, "story": "b", "headline": "A story of one", "url": "https://x.org/b", "outlets": ["ap"],
                  "languages": ["en"], "size": 2, "first_seen": "2017-06-09T11:00:00Z",
                  "last_seen": "2017-06-09T11:00:00Z"}])
    page = write_report(outputs, (), tmp_path / "r.html", "t", measure="stories").read_text(encoding="utf-8")
    top = page[page.index('id="stories"'):]
    assert top.index("Wire &lt;story&gt; on Raqqa") < top.index("A story of one")   # most outlets first
    assert '<td class="num">3</td><td class="num">5</td>' in top
    assert "stories per window by language" in page and '"y":[2]' in page.replace(" ", "")
    articles_page = write_report(outputs, (), tmp_path / "a.html", "t").read_text(encoding="utf-8")
    assert '"y":[7]' in articles_page.replace(" ", "")
    with pytest.raises(ValueError):
        write_report(outputs, (), tmp_path / "x.html", "t", measure="words")


def test_streaming_memory_is_capped_per_language() -> None:
    t0 = 1_500_000_000
    first = article("a", *EN, at=0, source="fox")
    other = article("b", *FR, at=10, language="en", source="x")      # a different story, same key
    copy = article("c", *EN_COPY, at=20, source="ap")                  # a's copy, after a was evicted
    stream = (TestStream().advance_watermark_to(t0)
              .add_elements([TimestampedValue(first, t0)])
              .add_elements([TimestampedValue(other, t0 + 10)])
              .add_elements([TimestampedValue(copy, t0 + 20)])
              .advance_watermark_to_infinity())
    with streaming_pipeline() as p:
        out = ((p | stream | GroupStories(StoryOptions(max_remembered=1), streaming=True)).articles
               | beam.Map(lambda a: (a.id, a.story)))
        assert_that(out, equal_to([("a", "a"), ("b", "b"), ("c", "c")]))


def test_a_recurring_headline_template_does_not_make_matching_quadratic() -> None:
    """Thousands of "N killed in X" headlines share LSH buckets but never merge (their numbers
    differ): each bucket keeps only its newest ids, so a query looks at a bounded number of
    candidates, and a true rewrite of the newest one still joins it."""
    matcher = StoryMatcher()
    template = "Shelling kills {n} civilians in eastern Ghouta, monitor says"
    lede = "A war monitor said {n} civilians were killed in shelling on the besieged enclave."
    for i in range(2000):
        n = str(10 + i)
        matcher.assign(f"t{i}", float(i), SIGNER.sign(features(template.format(n=n), lede.format(n=n))), (n,))
    probe = SIGNER.sign(features(template.format(n="2009"), lede.format(n="2009")))
    assert probe is not None
    candidates = matcher.bands.query(matcher.bands.keys(probe))
    assert len(candidates) <= matcher.bands.bands * matcher.bands.keep < 2000
    assert len(matcher.sizes) == 2000                              # none merged: numbers differ
    rewrite = SIGNER.sign(features("Shelling kills 2009 civilians in Eastern Ghouta - monitor",
                                   lede.format(n="2009")))
    assert matcher.assign("copy", 2000.0, rewrite, ("2009",)) == "t1999"


DEV = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "topics-dev" / "labelled.jsonl"


@pytest.mark.parametrize("remember", [FEATURE_ROWS, 40], ids=["default", "rows-reused"])
def test_signatures_equal_a_fresh_datasketch_minhash_per_article(remember: int) -> None:
    """The Signer keeps each feature's permuted row (reusing the oldest rows when full) and
    computes the rest itself; what it returns must be the library's signature, article after
    article (stores written before keep matching): the examples here, and the corpus's real
    headlines and ledes in six languages when it is present."""
    from datasketch import MinHash
    pairs = [(f"{title} {i}", summary) for i, (title, summary) in
             enumerate([EN, EN_COPY, EN_OTHER, AR, AR_COPY, FR, TR, TR_COPY] * 3)]
    if DEV.exists():
        pairs += [(r["title"], r.get("summary", "")) for r in map(json.loads, DEV.read_text("utf-8").splitlines())]
    signer = Signer(remember=remember)
    signed_ = 0
    for title, summary in pairs:
        feats = features(title, summary)
        if not feats:
            assert signer.sign(feats) is None
            continue
        reference = MinHash(num_perm=128, seed=1)
        reference.update_batch([f.encode("utf-8") for f in sorted(feats)])
        assert np.array_equal(signer.sign(feats), np.asarray(reference.hashvalues, dtype=np.uint32)), title
        signed_ += 1
    assert signed_ >= 20 and len(signer._rows) <= max(remember, 1024)
    # a list with a feature twice is the set's signature
    feats = sorted(features(*EN))
    assert np.array_equal(signer.sign(feats + feats[:3]), signer.sign(set(feats)))


def test_a_forgotten_article_stays_forgotten_when_the_rows_grow_and_is_found_once_remembered_again() -> None:
    """The matcher's rows double when full and are compacted at a rebuild: neither brings back
    an article that was forgotten (a rolled-back commit), and remembering it again finds it."""
    matcher = StoryMatcher()
    base = "Floods force families from their homes near the river in {p}"
    places = [f"Town{i:03d}" for i in range(300)]
    signatures = {p: SIGNER.sign(features(base.format(p=p), "")) for p in places}
    matcher.remember(Remembered("first", 0.0, "first", signatures[places[0]].copy()))
    matcher.forget("first")
    for i, place in enumerate(places[1:], start=1):       # 64 rows, then 128, 256, 512
        matcher.remember(Remembered(f"id{i}", float(i), f"id{i}", signatures[place].copy()))
    probe = SIGNER.sign(features(base.format(p=places[0]), ""))
    assert matcher.match(probe, 500.0) != "first"
    matcher.remember(Remembered("first", 0.5, "first", signatures[places[0]].copy()))
    assert matcher.match(probe, 500.0) == "first"          # score 1.0 beats every other town
    for i in range(1, 300):                                 # forget the others: a rebuild compacts
        matcher.forget(f"id{i}")
    assert matcher.match(probe, 500.0) == "first" and list(matcher.remembered) == ["first"]
    assert matcher.match(signatures[places[7]], 500.0) == "first"   # similar enough, the only one left


class _State:
    """A ReadModifyWriteState as Beam hands it to a DoFn, encoded as the runner stores it
    (PickleCoder), so every read is a fresh copy of what the last write committed."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def read(self) -> Any:
        import pickle
        return None if self.data is None else pickle.loads(self.data)

    def write(self, value: Any) -> None:
        import pickle
        self.data = pickle.dumps(value)

    def clear(self) -> None:
        self.data = None


class _Timer:
    def __init__(self) -> None:
        self.at: float | None = None

    def set(self, at: Any) -> None:
        self.at = float(at)


T0 = 1_500_000_000      # `article`'s epoch


def _stream_fn(options: StoryOptions) -> Any:
    from transforms.stories import _StreamingStoriesFn
    fn = _StreamingStoriesFn(options)
    fn.setup()
    return fn


def _corpus_articles() -> list[Article]:
    """Real headlines and ledes (the corpus when present, else the examples here), two copies
    of some, an hour apart each, in one language key: a stream in published order."""
    pairs = [EN, EN_COPY, EN_OTHER, FR, FR_COPY, FR_OTHER, TR, TR_COPY, TR_FOLLOW_UP, TR_OTHER,
             AR, AR_COPY, AR_FOLLOW_UP, AR_EARLIER]
    if DEV.exists():
        pairs += [(r["title"], r.get("summary", "")) for r in map(json.loads, DEV.read_text("utf-8").splitlines())]
    out = []
    for i, (title, summary) in enumerate(pairs + pairs[::7]):
        out.append(article(f"id{i:04d}", title, summary, at=i * 60.0, language="en", source=f"s{i % 5}"))
    return out


def test_streaming_stage_assigns_the_batch_stories_to_articles_in_order_and_after_a_foreign_write() -> None:
    """Fed in published order, the streaming stage names the stories the batch stage names;
    two workers taking turns on the same state (each state write is one the other did not
    make) rebuild their matchers and still agree, and a redelivered article keeps its story."""
    articles = _corpus_articles()
    batch = {a.id: (a.story, a.story_size) for a in group_articles(articles, StoryOptions().matcher())}
    assert len({s for s, _ in batch.values()}) < len(articles)        # some stories merge

    def stories(outs: dict[str, tuple[str, int]]) -> dict[str, str]:
        return {ident: story for ident, (story, _) in outs.items()}

    def final_sizes(outs: dict[str, tuple[str, int]]) -> dict[str, int]:
        return {story: size for story, size in outs.values()}   # in order: a story's last size

    one, state, timer = _stream_fn(StoryOptions()), _State(), _Timer()
    alone: dict[str, tuple[str, int]] = {}
    for a in articles:
        for out in one.process(("en", a), memory=state, expiry=timer):
            alone[out.id] = (out.story, out.story_size)
    assert stories(alone) == stories(batch) and final_sizes(alone) == final_sizes(batch)
    assert one.rebuilds == 1                     # built once, then kept with the state's token

    workers, state = [_stream_fn(StoryOptions()), _stream_fn(StoryOptions())], _State()
    taking_turns: dict[str, tuple[str, int]] = {}
    for i, a in enumerate(articles):
        for out in workers[(i // 3) % 2].process(("en", a), memory=state, expiry=timer):
            taking_turns[out.id] = (out.story, out.story_size)
    assert taking_turns == alone
    assert min(w.rebuilds for w in workers) > 10
    again = list(workers[0].process(("en", articles[1]), memory=state, expiry=timer))
    known = batch[articles[1].id][0]
    assert [(o.story, o.story_size) for o in again] == [(known, final_sizes(batch)[known])]
    assert len(state.read()) == len(articles) - sum(1 for a in articles if features(a.title, a.summary) == set())


def test_streaming_stage_cap_and_expiry_forget_the_oldest_in_state_and_in_the_kept_matcher() -> None:
    """At `max_remembered` the oldest published article is forgotten (articles arrive out of
    order), and the expiry timer forgets what is past the horizon: a copy of a forgotten
    article starts its own story, in the state and in the matcher the worker kept."""
    fn, state, timer = _stream_fn(StoryOptions(max_remembered=3, horizon=DAY)), _State(), _Timer()

    def story(ident: str, text: tuple[str, str], at: float) -> str:
        out = list(fn.process(("en", article(ident, *text, at=at, language="en")), memory=state, expiry=timer))
        return str(out[0].story)
    assert story("en", EN, 100.0) == "en"
    assert story("fr", FR, 50.0) == "fr"          # older, arrives later
    assert story("tr", TR, 300.0) == "tr"
    assert story("ar", AR, 200.0) == "ar"          # 4 remembered: the oldest published (fr) goes
    assert sorted(state.read().ids) == ["ar", "en", "tr"] and "fr" not in state.read().sizes
    assert story("fr2", FR_COPY, 400.0) == "fr2"    # fr was forgotten; now en (100) goes
    assert story("en2", EN_COPY, 500.0) == "en2"    # and ar (200)
    assert sorted(state.read().ids) == ["en2", "fr2", "tr"]
    assert timer.at == T0 + 300.0 + DAY              # the oldest left (tr) + horizon
    from apache_beam.utils.timestamp import Timestamp
    before = state.data
    fn.expire(key="en", memory=state, expiry=timer, now=Timestamp(T0 + 250.0 + DAY))    # early: nothing old
    assert state.data == before and timer.at == T0 + 300.0 + DAY
    fn.expire(key="en", memory=state, expiry=timer, now=Timestamp(T0 + 400.0 + DAY))
    assert state.read().ids == ["en2"] and timer.at == T0 + 500.0 + DAY
    assert story("tr2", TR_COPY, 450.0 + DAY) == "tr2"
    assert story("en3", EN, 460.0 + DAY) == "en2"
    assert fn.rebuilds == 1
    fn.expire(key="en", memory=state, expiry=timer, now=Timestamp(T0 + 10 * DAY))
    assert state.read() is None


def test_streaming_stage_reads_the_columns_state_an_earlier_version_wrote() -> None:
    """A Dataflow job updated in place keeps its state: the columns dict the stage kept before
    is read as remembered articles, and a copy of one of them joins its story."""
    first, other = article("a", *EN, at=0), article("b", *FR, at=10)
    signed_ = [SIGNER.sign(features(a.title, a.summary)) for a in (first, other)]
    state, timer = _State(), _Timer()
    state.write({"ids": ["a", "b"], "published": np.array([T0 + 0.0, T0 + 10.0]), "stories": ["a", "b"],
                 "numbers": [(), ()], "signatures": np.vstack(signed_), "sizes": {"a": 1, "b": 1, "gone": 4}})
    fn = _stream_fn(StoryOptions())
    out = list(fn.process(("en", article("c", *EN_COPY, at=20)), memory=state, expiry=timer))
    assert [(o.story, o.story_size) for o in out] == [("a", 2)]
    assert sorted(state.read().ids) == ["a", "b", "c"] and state.read().sizes == {"a": 2, "b": 1}
