"""Typed records (transforms/records.py)."""
from __future__ import annotations

import dataclasses

import pytest

from transforms.records import Article


def article() -> Article:
    return Article(id="a1", url="https://e.example/1", title="Raqqa", summary="Fighting near Raqqa.",
                   source="feed", published="2026-01-02T03:04:05Z", fetched="2026-01-02T03:04:06Z",
                   topics=("battle",), keyword_mentions=(("raqqa", 2),))


@pytest.mark.parametrize("changes", [
    {}, {"language": "en", "language_confidence": 0.93},
    {"topics": ("a", "b"), "keywords": ("k",), "evidence": (("a", (("raqqa", ("Raqqa",)),)),)},
    {"story": "s1", "story_size": 3, "language_hint": None, "title": "Other"},
])
def test_replace_gives_what_dataclasses_replace_gives(changes: dict[str, object]) -> None:
    a = article()
    fast, slow = a.replace(**changes), dataclasses.replace(a, **changes)
    assert fast == slow and hash(fast) == hash(slow) and type(fast) is Article
    assert fast.__dict__ == slow.__dict__
    assert a == article()                                   # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.language = "fr"  # type: ignore[misc]


def test_replace_refuses_a_field_that_does_not_exist() -> None:
    with pytest.raises(TypeError, match="langauge"):
        article().replace(langauge="en")
