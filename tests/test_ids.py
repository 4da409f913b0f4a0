"""Canonical URLs and stable ids (transforms/ids.py)."""
from transforms.ids import article_id, canonical_url, normalise_title


def test_tracking_parameters_fragments_and_hosts_are_dropped() -> None:
    a = canonical_url("http://www.Example.org/world/story/?utm_source=rss&utm_medium=x&id=7#comments")
    b = canonical_url("https://m.example.org/world/story?id=7&fbclid=abc")
    assert a == b == "https://example.org/world/story?id=7"


def test_query_order_does_not_matter_but_values_do() -> None:
    assert canonical_url("https://x.org/a?b=2&a=1") == canonical_url("https://x.org/a?a=1&b=2")
    assert canonical_url("https://x.org/a?a=1") != canonical_url("https://x.org/a?a=2")


def test_non_default_port_kept_default_dropped() -> None:
    assert canonical_url("https://x.org:443/a") == "https://x.org/a"
    assert canonical_url("https://x.org:8443/a") == "https://x.org:8443/a"


def test_two_label_host_keeps_its_name() -> None:
    # "m.org" is a domain, not a mobile subdomain of "org"
    assert canonical_url("https://m.org/a") == "https://m.org/a"


def test_non_ascii_path_is_stable() -> None:
    a = canonical_url("https://www.aljazeera.net/news/2026/1/29/عراقجي-3")
    b = canonical_url("https://aljazeera.net/news/2026/1/29/%D8%B9%D8%B1%D8%A7%D9%82%D8%AC%D9%8A-3")
    assert a == b


def test_id_prefers_url_then_guid_then_title() -> None:
    by_url = article_id("https://x.org/a?utm_source=1", "g1", "feed", "Title")
    assert by_url == article_id("https://www.x.org/a", "other-guid", "other-feed", "Other")
    by_guid = article_id("", "g1", "feed", "Title")
    assert by_guid == article_id("", "g1", "feed", "Changed title")
    assert by_guid != article_id("", "g1", "another-feed", "Title")  # bare guids are per source
    by_title = article_id("", "", "feed", "Raqqa:  the FINAL assault!")
    assert by_title == article_id("", "", "feed", "raqqa the final assault")
    assert len({by_url, by_guid, by_title}) == 3


def test_normalise_title_folds_case_accents_tatweel_and_punctuation() -> None:
    assert normalise_title("Rakka libérée !") == normalise_title("rakka liberee")
    assert normalise_title("الرقــة") == normalise_title("الرقة")


# --- issue 14: dedup misses and false merges ---------------------------------------------------

import pytest  # noqa: E402


@pytest.mark.parametrize("tracked, clean", [
    ("https://www.aljazeera.com/news/2017/10/17/raqqa?traffic_source=rss",
     "https://aljazeera.com/news/2017/10/17/raqqa"),
    ("https://www.nytimes.com/2017/10/17/world/raqqa.html?partner=rss&emc=rss",
     "https://nytimes.com/2017/10/17/world/raqqa.html"),
    ("https://www.washingtonpost.com/world/raqqa/?wprss=rss_world",
     "https://washingtonpost.com/world/raqqa"),
    ("https://example.org/news.php?id=3&PHPSESSID=0123abcd", "https://example.org/news.php?id=3"),
    ("https://example.org/story;jsessionid=0123ABCD?id=3", "https://example.org/story?id=3"),
    ("https://example.org/story/amp", "https://example.org/story"),
    ("https://example.org/story?outputType=amp", "https://example.org/story"),
    ("https://www-example-org.cdn.ampproject.org/c/s/www.example.org/story/amp",
     "https://example.org/story"),
    ("https://example.org/world/index.html", "https://example.org/world"),
    ("https://www.google.com/url?sa=t&url=https%3A%2F%2Fexample.org%2Fstory%3Fid%3D3&ved=2a",
     "https://example.org/story?id=3"),
    # an old-style Google News id: base64 protobuf holding the article URL
    ("https://news.google.com/rss/articles/CBMiQ2h0dHBzOi8vd3d3LmJiYy5jb20vbmV3cy93b3JsZC1taWRkbGUtZWFzdC00MTYzMzU4NdIBAA?oc=5",
     "https://bbc.com/news/world-middle-east-41633585"),
])
def test_trackers_sessions_amp_index_and_wrappers_reduce_to_the_article(tracked: str, clean: str) -> None:
    assert canonical_url(tracked) == clean
    assert canonical_url(clean) == clean


def test_site_parameters_that_are_not_trackers_are_kept() -> None:
    a = canonical_url("https://example.org/news.php?cid=1201")
    b = canonical_url("https://example.org/news.php?cid=1202")
    assert a != b and "cid=1201" in a
    kept = canonical_url("https://example.org/a?ref=home&src=7")
    assert "ref=home" in kept and "src=7" in kept


def test_ipv6_host_is_canonicalised_not_an_error() -> None:
    assert canonical_url("http://[2001:db8::1]/story") == "https://[2001:db8::1]/story"
    assert canonical_url("http://[2001:DB8::1]:8080/story/") == "https://[2001:db8::1]:8080/story"
    assert article_id("http://[2001:db8::1]/story", "", "f", "t") == \
        article_id("https://[2001:db8::1]/story", "", "g", "u")


def test_idn_host_with_bare_root_path_keeps_its_slash_and_is_idempotent() -> None:
    unicode_form = canonical_url("http://www.bücher.de?q=x")
    punycode_form = canonical_url("http://www.xn--bcher-kva.de?q=x")
    assert unicode_form == punycode_form == "https://xn--bcher-kva.de/?q=x"
    assert canonical_url(unicode_form) == unicode_form


@pytest.mark.parametrize("placeholder", ["http://", "https://", "http://user@/x", "http://:80/",
                                         "https://x.org:notaport/"])
def test_placeholder_links_fall_back_to_guid_or_title(placeholder: str) -> None:
    assert canonical_url(placeholder) == ""
    a = article_id(placeholder, "", "feed-a", "Raqqa falls")
    b = article_id(placeholder, "", "feed-b", "Mosul retaken")
    assert a != b
    assert article_id(placeholder, "guid-1", "feed-a", "x") == article_id("", "guid-1", "feed-a", "y")


# --- the plain-URL fast path (issue 15: CPU per item) gives the full path's results -------------

import itertools  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

from transforms import ids  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
_SCHEMES = ["http", "https", "HTTP", "hTTps"]
_HOSTS = ["example.org", "www.example.org", "WWW.Example.ORG", "m.example.org", "mobile.example.co.uk",
          "amp.example.org", "m.org", "www.m.example.org", "a-b.example", "xn--bcher-kva.example",
          "a--b.example", "-a.example", "a-.example", "1.2.3.4", "localhost", "news.google.com",
          "www.news.google.com", "google.com", "www.google.co.uk", "google.example-site.org",
          "www-example-org.cdn.ampproject.org", "cdn.ampproject.org", "a" * 63 + ".org", "a" * 64 + ".org",
          "example.org.", "ex_ample.org", "xn--c1yn36f.example", "a..b.org"]
_PATHS = ["", "/", "/story", "/story/", "/Story/AMP", "/story/amp/", "/a/index.html", "/a/INDEX.HTM/",
          "/a//b", "/a/./b", "/a/../b", "/.hidden", "/a.b/c~d_e-f", "/url", "/amp", "/index.html",
          "/rss/articles/CBMiQ2h0dHBzOi8vd3d3LmJiYy5jb20vbmV3cy93b3JsZC1taWRkbGUtZWFzdC00MTYzMzU4NdIBAA",
          "/c/s/www.example.org/story/amp", "/v/example.org/a", "/a;jsessionid=1", "/%7Euser", "/~user",
          "/é", "/a/b.", "/a/b..", "/-/_/~"]
_TAILS = ["", "?a=1", "#frag", "?utm_source=x", ":8080", "/"]


def _full_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_PLAIN_URL", re.compile(r"(?!)"))      # matches nothing


def _corpus_links() -> list[str]:
    links: set[str] = set()
    for path in (CORPUS / "feeds").rglob("*"):
        if path.is_file() and path.suffix in (".xml", ".rss", ".atom", ""):
            links.update(re.findall(r"https?://[^\s<>\"'\]]+", path.read_text(encoding="utf-8", errors="replace")))
    return sorted(links)


def test_the_plain_url_fast_path_equals_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [f"{s}://{h}{p}{t}" for s, h, p, t in itertools.product(_SCHEMES, _HOSTS, _PATHS, _TAILS)]
    urls += _corpus_links()
    fast = [ids.canonical_url.__wrapped__(u) for u in urls]
    plain = sum(1 for u in urls if ids._PLAIN_URL.fullmatch(u.strip()))
    assert plain > 2000                                # the fast path is taken, and often
    _full_path_only(monkeypatch)
    full = [ids.canonical_url.__wrapped__(u) for u in urls]
    assert [(u, f) for u, f, g in zip(urls, fast, full) if f != g] == []


@pytest.mark.skipif(not (CORPUS / "feeds").is_dir(), reason="corpus absent")
def test_the_corpus_has_plain_links_for_the_fast_path() -> None:
    links = _corpus_links()
    assert len(links) > 500
    assert sum(1 for u in links if ids._PLAIN_URL.fullmatch(u)) > len(links) // 4
