"""parse_feed and html_to_text: encodings, hostile XML, item-level problems, non-feeds."""
from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from transforms.feeds import FeedEntry, FeedError, ParsedFeed, html_to_text, parse_feed
from transforms.records import FeedDocument

ARABIC = "الرقة: معارك عنيفة في المدينة مع تقدم القوات نحو وسط الرقة"
RUSSIAN = "Оренбургские новости: в городе открыли новый парк и школу"
FRENCH = "Le président a annoncé une réforme très contestée à l'Assemblée"


def doc(body: bytes, url: str = "https://example.org/news/feed.xml",
        content_type: str = "") -> FeedDocument:
    return FeedDocument(source="test", url=url, body=body, fetched="2024-01-01T00:00:00Z",
                        content_type=content_type)


def rss(items: str, decl: str | None = "utf-8", extra: str = "") -> str:
    head = f'<?xml version="1.0" encoding="{decl}"?>\n' if decl else ""
    return (f'{head}<rss version="2.0"><channel><title>Feed</title>{extra}'
            f"<link>https://example.org/</link>{items}</channel></rss>")


def item(title: str = "A title", link: str = "https://example.org/a", summary: str = "",
         date: str = "Sun, 15 Oct 2017 09:30:00 +0300", guid: str = "") -> str:
    parts = [f"<title>{title}</title>" if title else "", f"<link>{link}</link>" if link else "",
             f"<description>{summary}</description>" if summary else "",
             f"<pubDate>{date}</pubDate>" if date else "", f"<guid>{guid}</guid>" if guid else ""]
    return "<item>" + "".join(parts) + "</item>"


def test_plain_rss_entry_fields() -> None:
    body = rss(item(summary="&lt;p&gt;Body &lt;b&gt;text&lt;/b&gt;&lt;/p&gt;", guid="g-1"),
               extra="<language>en-GB</language>").encode()
    parsed = parse_feed(doc(body))
    assert parsed == ParsedFeed(entries=(FeedEntry(
        guid="g-1", link="https://example.org/a", title="A title", summary="Body text",
        published="2017-10-15T06:30:00Z", language="en"),), rejected=())


@pytest.mark.parametrize("text, encoding", [(ARABIC, "windows-1256"), (RUSSIAN, "windows-1251"),
                                            (FRENCH, "iso-8859-1")])
def test_declared_legacy_encoding(text: str, encoding: str) -> None:
    body = rss(item(title=text, summary=text), decl=encoding).encode(encoding)
    entry = parse_feed(doc(body)).entries[0]
    assert (entry.title, entry.summary) == (text, text)


@pytest.mark.parametrize("text, encoding", [(ARABIC, "windows-1256"), (RUSSIAN, "windows-1251")])
@pytest.mark.parametrize("decl, content_type", [
    ("iso-8859-1", ""), (None, ""), ("utf-8", ""), (None, "application/rss+xml; charset=iso-8859-1"),
    ("windows-1252", "text/xml"),
])
def test_misdeclared_legacy_encoding_is_redetected(text: str, encoding: str, decl: str | None,
                                                   content_type: str) -> None:
    body = rss(item(title=text, summary=f"{text} {text}"), decl=decl).encode(encoding)
    entry = parse_feed(doc(body, content_type=content_type)).entries[0]
    assert entry.title == text


def test_latin1_french_is_not_redetected() -> None:
    body = rss(item(title=FRENCH, summary=FRENCH), decl="iso-8859-1").encode("iso-8859-1")
    assert parse_feed(doc(body)).entries[0].title == FRENCH


def test_utf8_bom_and_utf16() -> None:
    for body in (codecs.BOM_UTF8 + rss(item(title=ARABIC)).encode(),
                 rss(item(title=ARABIC), decl="utf-16").encode("utf-16")):
        assert parse_feed(doc(body)).entries[0].title == ARABIC


def test_http_charset_wins_over_declaration() -> None:
    body = rss(item(title=RUSSIAN), decl="iso-8859-1").encode("windows-1251")
    entry = parse_feed(doc(body, content_type="application/xml; charset=windows-1251")).entries[0]
    assert entry.title == RUSSIAN


def test_relative_links_resolve_against_feed_url_and_xml_base() -> None:
    body = rss(item(link="/story/1") + item(title="b", link="2")).encode()
    links = [e.link for e in parse_feed(doc(body)).entries]
    assert links == ["https://example.org/story/1", "https://example.org/news/2"]
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://base.example/x/">'
            b'<title>t</title><entry><title>a</title><id>urn:1</id>'
            b'<link href="item/7"/></entry></feed>')
    assert parse_feed(doc(atom)).entries[0].link == "https://base.example/x/item/7"


def test_relative_link_in_local_file_uses_channel_link() -> None:
    body = rss(item(link="/story/1")).encode()
    assert parse_feed(doc(body, url="/data/feed.xml")).entries[0].link == \
        "https://example.org/story/1"


def test_missing_title_falls_back_to_summary_head_then_link() -> None:
    long = "word " * 60
    body = rss(item(title="", summary=long) + item(title="", link="https://e.org/x")).encode()
    first, second = parse_feed(doc(body)).entries
    assert first.title.endswith("…") and len(first.title) <= 121 and first.title.startswith("word")
    assert second.title == "https://e.org/x"


def test_entry_with_nothing_is_rejected_not_lost() -> None:
    body = rss(item() + "<item><pubDate>Sun, 15 Oct 2017 09:30:00 GMT</pubDate></item>").encode()
    parsed = parse_feed(doc(body))
    assert len(parsed.entries) == 1
    assert len(parsed.rejected) == 1
    raw, reason = parsed.rejected[0]
    assert "no title" in reason and "2017" in raw


@pytest.mark.parametrize("date", ["not a date", "Sun, 45 Foo 2017 99:99:99", ""])
def test_bad_or_missing_date_is_none(date: str) -> None:
    assert parse_feed(doc(rss(item(date=date)).encode())).entries[0].published is None


def test_atom_updated_used_when_no_published() -> None:
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><title>a</title>'
            b'<id>urn:1</id><updated>2017-10-15T09:30:00+02:00</updated>'
            b'<link href="https://e.org/a"/><content type="html">&lt;p&gt;x&lt;/p&gt;</content>'
            b'</entry></feed>')
    entry = parse_feed(doc(atom)).entries[0]
    assert (entry.published, entry.summary, entry.guid) == ("2017-10-15T07:30:00Z", "x", "urn:1")


BILLION_LAUGHS = b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol "lol">\n' + b"".join(
    b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
    for i in range(1, 10)) + b']>\n' + rss(item(title="&lol9;"), decl=None).encode()
QUADRATIC = (b'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "' + b"A" * 100_000 + b'">\n]>\n'
             + rss(item(title="&a;" * 20_000), decl=None).encode())


@pytest.mark.parametrize("body", [BILLION_LAUGHS, QUADRATIC,
                                  QUADRATIC.replace(b"\n<!ENTITY", b"<!ENTITY"),
                                  QUADRATIC.decode().encode("utf-16")],
                         ids=["billion-laughs", "quadratic", "quadratic-one-line", "utf16"])
def test_entity_bombs_are_refused(body: bytes) -> None:
    with pytest.raises(FeedError, match="entities"):
        parse_feed(doc(body))


def test_external_entities_never_read_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    uri = secret.as_uri()
    attacks = [
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY x SYSTEM "{uri}">\n]>\n'
        + rss(item(title="a&x;b"), decl=None),
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [<!ENTITY % p SYSTEM "{uri}"> %p;]>'
        + rss(item(), decl=None),
        f'<?xml version="1.0"?>\n<!DOCTYPE rss SYSTEM "{uri}">' + rss(item(), decl=None),
    ]
    for body in attacks:
        try:
            parsed = parse_feed(doc(body.encode()))
        except FeedError:
            continue
        assert "TOP-SECRET" not in repr(parsed)


def test_truncated_feed_keeps_entries_that_parsed() -> None:
    body = rss(item(title="first") + item(title="second")).encode()
    cut = body[: body.index(b"second") + 3]
    parsed = parse_feed(doc(cut))
    assert [e.title for e in parsed.entries][:1] == ["first"]


@pytest.mark.parametrize("body, reason", [
    (b"<!DOCTYPE html><html><head><title>Home</title></head><body>hi</body></html>", "HTML"),
    (b"<html><body><a href='/rss'>feeds</a></body></html>", "HTML"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "not a feed"),
    (b"", "empty"),
    (b'{"items": []}', "not a feed"),
])
def test_non_feeds_raise_feed_error(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse_feed(doc(body))


def test_valid_feed_without_items_is_empty_not_error() -> None:
    assert parse_feed(doc(rss("").encode())) == ParsedFeed(entries=(), rejected=())


def test_entry_language_from_xml_lang_overrides_feed() -> None:
    atom = ('<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-US"><title>t</title>'
            '<entry xml:lang="AR"><title>' + ARABIC + '</title><id>1</id>'
            '<link href="https://e.org/1"/></entry>'
            '<entry><title>x</title><id>2</id><link href="https://e.org/2"/></entry></feed>')
    assert [e.language for e in parse_feed(doc(atom.encode())).entries] == ["ar", "en"]


@pytest.mark.parametrize("fragment, text", [
    ("<p>Hello&nbsp;<b>world</b></p>", "Hello world"),
    ("&amp;#8220;quoted&amp;#8221;", "\u201cquoted\u201d"),
    ("&lt;p&gt;escaped &lt;i&gt;html&lt;/i&gt;&lt;/p&gt;", "escaped html"),
    ("line<br/>break<p>para</p>", "line break para"),
    ("<script>alert(1)</script><style>p{}</style>kept", "kept"),
    ("  a \n\t  b  ", "a b"),
    ("AT&amp;T &lt; 5", "AT&T < 5"),
    ("a < b", "a < b"),
    ("", ""),
])
def test_html_to_text(fragment: str, text: str) -> None:
    assert html_to_text(fragment) == text


def test_text_without_tags_or_entities_skips_the_parser_with_the_same_result() -> None:
    """The shortcut for fragments with no `<` and no `&` gives what the parser gives."""
    import random
    from transforms import feeds
    rng = random.Random(15)
    alphabet = list("ab Z09.,;:!?'\"/\\()-_\t\n\r\x0b\x0c\x1c\x85\xa0") + ["é", "ر", "ş", "\u2009", "\u3000", "\ufeff", "\x00"]
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    corpus = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "langid"
    if corpus.is_dir():
        samples += [line for f in sorted(corpus.rglob("*.txt"))[:6] for line in f.read_text(encoding="utf-8").splitlines()]
    plain = [t for t in samples if "<" not in t and "&" not in t]
    assert len(plain) > 3000
    for text in plain:
        parsed = feeds._strip_once(text)
        assert parsed == text
        assert html_to_text(text) == feeds._SPACE.sub(" ", parsed).strip()


# --- issue 14: hostile and broken feeds ---------------------------------------------------------

def _utf7_bomb(entities: int = 3) -> bytes:
    """The entity bomb of test_entity_bombs_are_refused, written in UTF-7 as an attacker would:
    `<!ENTITY` is `+ADwAIQ-ENTITY` on the wire, so no raw byte spells it."""
    text = ('<?xml version="1.0" encoding="utf-7"?>\n'
            '<!DOCTYPE rss [<!ENTITY a "' + "A" * 1000 + '">]>\n'
            '<rss version="2.0"><channel><title>t</title><item><title>'
            + "&a;" * entities + "</title></item></channel></rss>")
    body = text.encode("utf-7").replace(b"<!ENTITY", b"+ADwAIQ-ENTITY")
    assert b"<!ENTITY" not in body and body.decode("utf-7") == text
    return body


@pytest.mark.parametrize("content_type", ["", "application/xml; charset=utf-7"])
def test_entity_declared_in_utf7_is_refused(content_type: str) -> None:
    with pytest.raises(FeedError, match="declares XML entities"):
        parse_feed(doc(_utf7_bomb(), content_type=content_type))


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "cp037"])
def test_entity_declared_in_other_non_ascii_encodings_is_refused(encoding: str) -> None:
    text = (f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE rss [<!ENTITY a "AAAA">]>'
            '<rss version="2.0"><channel><item><title>&a;&a;</title></item></channel></rss>')
    with pytest.raises(FeedError, match="declares XML entities"):
        parse_feed(doc(text.encode(encoding)))


def test_one_invalid_byte_in_utf8_keeps_the_valid_text() -> None:
    """feedparser alone decodes the whole feed as cp1252 (`Ù…Ø¹Ø§Ø±Ùƒ`); only the bad byte may
    change, and a Latin-1 byte pasted into a UTF-8 feed is read as what it was (café)."""
    body = rss(item(title=ARABIC, summary="Le caf\u00e9 " + ARABIC)).encode("utf-8")
    body = body.replace("caf\u00e9".encode("utf-8"), b"caf\xe9")
    entry = parse_feed(doc(body)).entries[0]
    assert entry.title == ARABIC
    assert entry.summary == "Le caf\u00e9 " + ARABIC


LEGACY = {
    "euc_jp": "東京で大規模な地震が発生し、多くの住民が避難しました。政府は対策本部を設置した。",
    "shift_jis": "東京で大規模な地震が発生し、多くの住民が避難しました。政府は対策本部を設置した。",
    "euc_kr": "서울에서 대규모 시위가 열렸다. 정부는 대책을 발표했다. 경찰은 도로를 통제했다.",
    "tis_620": "รัฐบาลประกาศมาตรการใหม่เพื่อรับมือกับน้ำท่วมในกรุงเทพมหานคร ประชาชนจำนวนมากต้องอพยพ",
    "koi8_r": "В Москве прошли массовые протесты. Правительство объявило о новых мерах безопасности.",
    "gb2312": "北京举行大规模抗议活动。政府宣布了新的安全措施，警方封锁了道路。",
}


@pytest.mark.parametrize("encoding", sorted(LEGACY))
def test_undeclared_legacy_encodings_are_detected(encoding: str) -> None:
    text = LEGACY[encoding]
    body = rss(item(title=text, summary=f"{text} {text}"), decl=None).encode(encoding)
    entry = parse_feed(doc(body)).entries[0]
    assert entry.title == text


def test_text_plain_title_keeps_angle_brackets() -> None:
    atom = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            '<title>f</title><entry><id>1</id><title type="text">History of the &lt;blink&gt; tag'
            '</title></entry><entry><id>2</id><title type="html">An &lt;b&gt;HTML&lt;/b&gt; title'
            '</title></entry></feed>').encode()
    titles = [e.title for e in parse_feed(doc(atom)).entries]
    assert titles == ["History of the <blink> tag", "An HTML title"]
    plain_rss = rss(item(title="History of the &lt;blink&gt; tag")).encode()
    assert parse_feed(doc(plain_rss)).entries[0].title == "History of the <blink> tag"
    twice = rss(item(title="It&amp;#8217;s 1 &lt; 2")).encode()       # RSS escaped twice
    assert parse_feed(doc(twice)).entries[0].title == "It\u2019s 1 < 2"
    literal = atom.replace(b"An &lt;b&gt;HTML&lt;/b&gt; title", b"x").replace(
        b"History of the &lt;blink&gt; tag", b"Escaped &amp;lt;blink&amp;gt; stays")
    assert parse_feed(doc(literal)).entries[0].title == "Escaped &lt;blink&gt; stays"


@pytest.mark.parametrize("ns, prefix", [("http://rssnamespace.org/feedburner/ext/1.0", "feedburner"),
                                        ("http://www.pheedo.com/namespace/pheedo", "pheedo")])
def test_orig_link_beats_the_proxy_link(ns: str, prefix: str) -> None:
    body = (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:{prefix}="{ns}">'
            '<channel><title>f</title><item><title>t</title>'
            '<link>http://feedproxy.google.com/~r/example/~3/AbC/story</link>'
            f'<{prefix}:origLink>https://example.org/2017/raqqa</{prefix}:origLink>'
            '</item></channel></rss>').encode()
    assert parse_feed(doc(body)).entries[0].link == "https://example.org/2017/raqqa"


@pytest.mark.parametrize("date", ["Fri, 31 Dec 9999 12:00:00 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
                                  "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00"])
def test_out_of_range_dates_are_none_not_a_crash(date: str) -> None:
    assert parse_feed(doc(rss(item(date=date)).encode())).entries[0].published is None


def test_an_oversized_entry_is_rejected_and_the_others_kept() -> None:
    from transforms.records import MAX_ITEM_BYTES
    body = rss(item(title="small") + item(title="huge", summary="x" * (MAX_ITEM_BYTES + 1))).encode()
    parsed = parse_feed(doc(body))
    assert [e.title for e in parsed.entries] == ["small"]
    assert len(parsed.rejected) == 1 and "too large" in parsed.rejected[0][1]
