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
