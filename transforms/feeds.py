"""Feed bytes -> plain-text entries: a pure wrapper around feedparser (no Beam, no I/O).

`parse_feed(doc)` turns one fetched `FeedDocument` into a `ParsedFeed`: every entry feedparser
finds comes back either as a `FeedEntry` (plain-text title and summary, absolute link, UTC date,
language) or in `rejected` with a reason; a document that is unusable as a whole raises
`FeedError` with a readable reason.

What feedparser already does, and what is added here:
- Encodings: feedparser honours BOMs, the XML declaration and the HTTP charset (RFC 3023). It has
  no statistical detector unless `chardet` is installed, so a mis-declared legacy document (e.g.
  windows-1256 Arabic declared or served as ISO-8859-1) comes out as Latin-1 mojibake. When the
  decoded text looks like that, the body is re-detected with charset-normalizer over a short list of
  legacy code pages and parsed again with that charset.
- Hostile XML: feedparser turns off external general entities in its SAX parser and strips entity
  declarations it does not consider "safe", so external entities (SYSTEM "file:///etc/passwd") are
  never read. It does keep plain-text entities, and those alone allow a quadratic blowup (one
  100 KB entity referenced 20,000 times: 2 GB of title, 34 s and 5.7 GB measured with feedparser
  6.0.14). Real feeds do not declare entities, so a document whose prologue declares any is refused
  before parsing. The prologue is found the way feedparser finds it (text before the first element).
- Broken documents: `bozo` alone is not fatal; the entries feedparser recovered are kept. A
  document with no entries is an error only if it is not a recognisable feed (HTML page, junk).
"""
from __future__ import annotations

import calendar
import codecs
import html
import io
import json
import re
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import charset_normalizer
import feedparser

from transforms.records import MAX_ITEM_BYTES, RAW_LIMIT, FeedDocument

__all__ = ["FeedEntry", "ParsedFeed", "FeedError", "parse_feed", "html_to_text"]

TITLE_FALLBACK_CHARS = 120          # a missing title becomes the summary's head, this long at most
_LATIN_DECODINGS = {"iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "iso-8859-15",
                    "us-ascii", "ascii"}
_LEGACY_CANDIDATES = ["utf_8", "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255",
                      "cp1256", "cp1257"]
# What an undeclared legacy body may be: the encodings the web uses (WHATWG's list, less the
# exotic ones), so that a rare code page (mac_cyrillic) never wins over cp1251 on a near tie.
_WEB_ENCODINGS = ["utf_8", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
                  "cp1257", "cp1258", "iso8859_2", "iso8859_5", "iso8859_6", "iso8859_7",
                  "iso8859_8", "koi8_r", "koi8_u", "euc_jp", "shift_jis", "cp932", "euc_kr",
                  "cp949", "gb2312", "gbk", "gb18030", "big5", "tis_620", "cp874"]
_MOJIBAKE_RATIO = 0.3    # share of letters in U+0080..U+00FF that means "wrong code page"
_FIRST_ELEMENT = re.compile(rb"<\w")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_ENTITY_DECL_TEXT = re.compile(r"<!ENTITY", re.IGNORECASE)
_FIRST_ELEMENT_TEXT = re.compile(r"<\w")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_XML_ENCODING_SUB = re.compile(rb"""^(\s*<\?xml[^>]*?encoding\s*=\s*["'])([A-Za-z0-9._:-]{1,40})(["'])""")
_HTTP_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]{1,40})", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_EBCDIC_XML = b"\x4c\x6f\xa7\x94"    # '<?xm' in EBCDIC, as feedparser sniffs it
_MIN_YEAR, _MAX_YEAR = 1900, 2199       # as transforms.timeutil.EARLIEST/LATEST
_LANG = re.compile(r"[A-Za-z]{2,3}")
_MARKUP_LEFT = re.compile(r"<[A-Za-z/!]|&(#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class FeedEntry:
    """One feed entry, ready to become an Article."""

    guid: str
    link: str                       # absolute
    title: str                      # plain text
    summary: str                    # plain text
    published: str | None           # 'YYYY-MM-DDTHH:MM:SSZ' or None when missing/unparseable
    language: str | None            # lower-case primary subtag from the entry or the feed


@dataclass(frozen=True)
class ParsedFeed:
    entries: tuple[FeedEntry, ...]
    rejected: tuple[tuple[str, str], ...]   # (raw entry text cut to 4 KiB, reason)


class FeedError(Exception):
    """The whole document is unusable as a feed; str(error) is a readable reason."""


# --- HTML to text ------------------------------------------------------------------------------

_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "ol",
    "p", "pre", "section", "table", "td", "th", "tr", "ul",
})
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


class _TextCollector(HTMLParser):
    """Collects character data; block tags become spaces; script/style content is dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _strip_once(fragment: str) -> str:
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    return "".join(collector.parts)


def html_to_text(fragment: str) -> str:
    """HTML fragment -> plain text: tags stripped, entities decoded, whitespace folded.

    Feeds often escape their HTML twice (`&lt;p&gt;`, `&amp;#8220;`), so a second pass runs when
    markup or an entity is still visible after the first.
    """
    if not fragment:
        return ""
    if "<" not in fragment and "&" not in fragment:
        # no tag and no entity: the parser would hand the text back as it is (4 us -> 0.3 us)
        return _SPACE.sub(" ", fragment).strip()
    text = _strip_once(fragment)
    if _MARKUP_LEFT.search(text):
        text = _strip_once(text)
    return _SPACE.sub(" ", text).strip()


# --- parsing -----------------------------------------------------------------------------------

def _codec(name: str | None) -> str | None:
    """Python's name for an encoding label, or None when Python does not know it."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except (LookupError, ValueError):
        return None


def _declared_encodings(body: bytes, content_type: str) -> tuple[str | None, str | None, str | None]:
    """(BOM, XML declaration, HTTP charset) encodings, as Python codec names."""
    bom = next((enc for mark, enc in _BOMS if body.startswith(mark)), None)
    match = _XML_ENCODING.match(body[:1024].lstrip(b"\xef\xbb\xbf"))
    xml_decl = _codec(match.group(1).decode("ascii")) if match else None
    charset = _HTTP_CHARSET.search(content_type or "")
    http = _codec(charset.group(1)) if charset else None
    return _codec(bom), xml_decl, http


def _ascii_compatible(codec: str) -> bool:
    """True when every ASCII byte decodes to itself (not UTF-7, whose `+` starts base64)."""
    ascii_bytes = bytes(range(0x20, 0x7F))
    try:
        return ascii_bytes.decode(codec) == ascii_bytes.decode("ascii")
    except (UnicodeError, LookupError):
        return False


def _prologue_declares_entities(body: bytes, content_type: str = "") -> bool:
    """True if the text before the first element declares an XML entity.

    The raw bytes are scanned (ASCII-compatible encodings; UTF-16/32 with their NULs taken out),
    and so is the text in every other encoding the document or the server declares (UTF-7
    writes `<!ENTITY` as `+ADwAIQ-ENTITY`; EBCDIC has other bytes altogether), because
    feedparser decodes with those before its XML parser sees the declaration.
    """
    data = body.replace(b"\x00", b"") if b"\x00" in body[:4] else body
    first = _FIRST_ELEMENT.search(data)
    prologue = data[: first.start()] if first else data
    if _ENTITY_DECL.search(prologue):
        return True
    candidates = {c for c in _declared_encodings(body, content_type) if c}
    if body.startswith(_EBCDIC_XML):
        candidates.add("cp037")
    for codec in candidates:
        if _ascii_compatible(codec):
            continue
        try:
            text = body.decode(codec, errors="replace")
        except (UnicodeError, LookupError):
            continue
        found = _FIRST_ELEMENT_TEXT.search(text)
        if _ENTITY_DECL_TEXT.search(text[: found.start()] if found else text):
            return True
    return False


def _byte_fallback(error: UnicodeError) -> tuple[str, int]:
    """codecs error handler: an invalid UTF-8 byte is read as cp1252 (Latin-1 where undefined)."""
    assert isinstance(error, UnicodeDecodeError)
    byte = error.object[error.start:error.start + 1]
    try:
        return byte.decode("cp1252"), error.start + 1
    except UnicodeDecodeError:
        return byte.decode("latin-1"), error.start + 1


codecs.register_error("mediamon-byte-fallback", _byte_fallback)


def _as_utf8(text: str, body: bytes) -> bytes:
    data = text.encode("utf-8")
    if _XML_ENCODING_SUB.match(data):
        data = _XML_ENCODING_SUB.sub(rb"\g<1>utf-8\g<3>", data, count=1)
    return data


def _repair_encoding(body: bytes, content_type: str) -> tuple[bytes, str | None]:
    """A body feedparser would read as UTF-8 but that is not valid UTF-8, made valid.

    feedparser falls back to cp1252 for the *whole* document when one byte is invalid, so
    `معارك` would come out as `Ù…Ø¹Ø§Ø±Ùƒ`. Instead: a body with no encoding declared and no
    valid multi-byte UTF-8 at all is a legacy encoding, detected with charset-normalizer (EUC-JP,
    EUC-KR, Shift_JIS, TIS-620, KOI8-R, GB2312...) and transcoded; otherwise only the invalid
    bytes are repaired (read as cp1252: a Latin-1 `é` pasted into a UTF-8 feed), and the valid
    text stays as it is.
    Returns the body to parse and the charset to tell feedparser (None: leave as is).
    """
    bom, xml_decl, http = _declared_encodings(body, content_type)
    if bom is not None and bom != "utf-8":
        return body, None
    effective = http or xml_decl
    if effective not in (None, "utf-8"):
        return body, None
    try:
        body.decode("utf-8")
        return body, None
    except UnicodeDecodeError:
        pass
    lenient = body.decode("utf-8", errors="replace")
    invalid = lenient.count("\ufffd")
    valid = sum(1 for c in lenient if ord(c) > 0x7F) - invalid
    if valid < invalid:   # mostly invalid as UTF-8: a legacy encoding, declared or not
        best = charset_normalizer.from_bytes(body, cp_isolation=_WEB_ENCODINGS).best()
        if best is not None and best.encoding not in ("utf_8", "ascii"):
            return _as_utf8(str(best), body), "utf-8"
    return _as_utf8(body.decode("utf-8", errors="mediamon-byte-fallback"), body), "utf-8"


def _feedparser(body: bytes, headers: dict[str, str]) -> Any:
    # BytesIO: never let feedparser treat the input as a URL or a file name.
    return feedparser.parse(io.BytesIO(body), response_headers=headers,
                            sanitize_html=False, resolve_relative_uris=False)


def _looks_like_mojibake(result: Any) -> bool:
    """A legacy code page read as Latin-1: most letters fall in U+0080..U+00FF."""
    if str(result.get("encoding", "")).lower() not in _LATIN_DECODINGS:
        return False
    high = letters = 0
    for entry in result.entries[:20]:
        for text in (entry.get("title", ""), entry.get("summary", "")[:500]):
            for char in text:
                if char.isalpha():
                    letters += 1
                    if 0x80 <= ord(char) <= 0xFF:
                        high += 1
    title = result.feed.get("title", "")
    for char in title:
        if char.isalpha():
            letters += 1
            high += 0x80 <= ord(char) <= 0xFF
    return letters > 0 and high / letters > _MOJIBAKE_RATIO


def _redetect(body: bytes) -> str | None:
    best = charset_normalizer.from_bytes(body, cp_isolation=_LEGACY_CANDIDATES).best()
    if best is None or best.encoding in ("cp1252", "latin_1", "ascii"):
        return None
    return str(best.encoding)


def _iso_utc(parsed: Any) -> str | None:
    if not parsed:
        return None
    try:
        seconds = calendar.timegm(parsed)
        moment = time.gmtime(seconds)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    if not _MIN_YEAR <= moment.tm_year <= _MAX_YEAR:
        return None     # year 9999 or 0001: not a real date; the entry falls back to its fetch time
    return (f"{moment.tm_year:04d}-{moment.tm_mon:02d}-{moment.tm_mday:02d}"
            f"T{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d}Z")


def _published(entry: Any) -> str | None:
    # dict.get: FeedParserDict.get('updated_parsed') maps back to published, with a warning
    return _iso_utc(dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed"))


def _language(*candidates: Any) -> str | None:
    for value in candidates:
        if isinstance(value, str) and value.strip():
            primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0]
            if _LANG.fullmatch(primary):
                return primary.lower()
    return None


def _is_absolute(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:      # `http://]`: an unbalanced IPv6 bracket
        return False
    return bool(parts.scheme and (parts.netloc or parts.scheme in ("mailto", "urn", "tag", "file")))


def _absolute(link: str, base: str) -> str:
    """`link` made absolute against `base`; a link that is no URL at all (`http://]`) is ""."""
    if not link or _is_absolute(link):
        return link
    try:
        return urljoin(base, link)
    except ValueError:
        return ""


def _feed_base(doc: FeedDocument, result: Any) -> str:
    """What relative entry links resolve against (feedparser has already applied xml:base).

    The feed URL is not handed to feedparser as Content-Location on purpose: feedparser would
    then also "resolve" relative guids, and a guid must stay what the feed says (ids hang on it).
    """
    if doc.url.startswith(("http://", "https://")):
        return doc.url
    channel_link = str(result.feed.get("link", ""))
    if channel_link.startswith(("http://", "https://")):
        return channel_link
    try:
        return Path(doc.url).absolute().as_uri()
    except ValueError:
        return doc.url


def _raw(entry: Any) -> str:
    text = json.dumps(entry, ensure_ascii=False, default=str)
    return text.encode("utf-8")[:RAW_LIMIT].decode("utf-8", errors="ignore")


def _head(text: str, limit: int = TITLE_FALLBACK_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut + "…"


def _text_of(entry: Any, key: str, atom: bool) -> str:
    """A text construct as plain text: HTML is stripped, text/plain keeps its `<blink>`.

    Atom says what its text is, so Atom plain text is taken literally (`&lt;` stays as written);
    RSS titles are "plain" only by default, and an entity still visible there was escaped twice
    (`&amp;#8217;`), so it is decoded once more."""
    value = entry.get(key, "") or ""
    detail = entry.get(f"{key}_detail")
    kind = str(detail.get("type", "")) if hasattr(detail, "get") else ""
    if kind == "text/plain":
        if not atom and _MARKUP_LEFT.search(value) and "&" in value:
            value = html.unescape(value)
        return _SPACE.sub(" ", value).strip()
    return html_to_text(value)


def _link(entry: Any) -> str:
    """The entry's article link: FeedBurner's and Pheedo's origLink beat their proxy link."""
    for key in ("feedburner_origlink", "pheedo_origlink"):
        original = str(entry.get(key, "") or "").strip()
        if original.lower().startswith(("http://", "https://")):
            return original
    return str(entry.get("link", "") or "").strip()


def _entry(entry: Any, base: str, feed_language: str | None, atom: bool = False) -> FeedEntry | str:
    """One feedparser entry -> FeedEntry, or the reason it cannot become an article."""
    link = _absolute(_link(entry), base)
    summary_html = entry.get("summary", "") or ""
    if not summary_html and entry.get("content"):
        summary_html = entry["content"][0].get("value", "") or ""
    size = len(summary_html) + len(entry.get("title", "") or "")
    if size > MAX_ITEM_BYTES:   # characters: a lower bound of the bytes
        return f"entry too large: {size} characters > {MAX_ITEM_BYTES}"
    summary = html_to_text(summary_html)
    title = _text_of(entry, "title", atom)
    if not title:
        title = _head(summary) or link
    if not title:
        return "entry has no title, no summary and no link"
    details = entry.get("title_detail") or entry.get("summary_detail") or {}
    return FeedEntry(
        guid=str(entry.get("id", "") or "").strip(),
        link=link,
        title=title,
        summary=summary,
        published=_published(entry),
        language=_language(details.get("language") if hasattr(details, "get") else None,
                           feed_language),
    )


def _error_reason(result: Any) -> str:
    exc = result.get("bozo_exception")
    return f"{type(exc).__name__}: {exc}" if exc is not None else "no feed elements"


def parse_feed(doc: FeedDocument) -> ParsedFeed:
    """Parse one feed document; raises FeedError when it is not a usable feed at all."""
    body = doc.body
    if not body or not body.strip():
        raise FeedError("empty document")
    if _prologue_declares_entities(body, doc.content_type):
        raise FeedError("refused: the document declares XML entities (<!ENTITY>), "
                        "the vector of entity-expansion and external-entity attacks")
    headers: dict[str, str] = {}
    if doc.content_type:
        headers["content-type"] = doc.content_type
    try:
        body, charset = _repair_encoding(body, doc.content_type)
        if charset:
            headers["content-type"] = f"application/xml; charset={charset}"
        result = _feedparser(body, headers)
        if result.entries and _looks_like_mojibake(result):
            charset = _redetect(body)
            if charset:
                retry = _feedparser(body, {**headers,
                                           "content-type": f"application/xml; charset={charset}"})
                if len(retry.entries) == len(result.entries):
                    result = retry
    except (RecursionError, MemoryError, ValueError, LookupError, UnicodeError) as exc:
        raise FeedError(f"feed parser failed: {type(exc).__name__}: {exc}") from exc

    if not result.entries:
        head = body[:512].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
            raise FeedError("not a feed: got an HTML page")
        if result.get("bozo") and not result.feed:
            raise FeedError(f"not a feed: {_error_reason(result)}")
        if not result.get("version") and not result.feed:
            raise FeedError("not a feed: no RSS, RDF or Atom elements found")
        return ParsedFeed(entries=(), rejected=())

    base = _feed_base(doc, result)
    feed_language = _language(result.feed.get("language"),
                              (result.feed.get("title_detail") or {}).get("language"))
    entries: list[FeedEntry] = []
    rejected: list[tuple[str, str]] = []
    atom = str(result.get("version", "")).startswith("atom")
    for entry in result.entries:
        made = _entry(entry, base, feed_language, atom)
        if isinstance(made, FeedEntry):
            entries.append(made)
        else:
            rejected.append((_raw(entry), made))
    return ParsedFeed(entries=tuple(entries), rejected=tuple(rejected))
