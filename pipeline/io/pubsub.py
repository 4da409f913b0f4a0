"""Small Pub/Sub helpers for `poll` and `stream`: make topics and subscriptions, publish items.

Against the emulator (`PUBSUB_EMULATOR_HOST` set) missing topics and subscriptions are created,
so a fresh emulator works with no setup.  Against real Google Cloud nothing is created: the
operator makes them once with `gcloud pubsub ...` (see docs/streaming.md), and a missing one is
an error naming it.

`PUBSUB_EMULATOR_HOST` must be set before the first client is made; the clients here are made
lazily, on first use, for that reason.

A heartbeat is a message with attribute `mediamon_heartbeat=1` and empty data.  The stream job
publishes one now and then to unblock the local runner's 30 s pull (so window output stays
timely and a stop is prompt); `is_heartbeat` lets the job drop them before any stage counts them.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable, Mapping

from transforms.ids import article_id
from transforms.records import Article

log = logging.getLogger(__name__)

HEARTBEAT_ATTRIBUTE = "mediamon_heartbeat"


def on_emulator() -> bool:
    return bool(os.environ.get("PUBSUB_EMULATOR_HOST"))


def publisher() -> Any:
    from google.cloud import pubsub_v1
    return pubsub_v1.PublisherClient()


def subscriber() -> Any:
    from google.cloud import pubsub_v1
    return pubsub_v1.SubscriberClient()


def ensure_topic(topic: str, client: Any = None) -> None:
    """Create `topic` if it is missing (emulator only; on Google Cloud only check it exists)."""
    from google.api_core.exceptions import AlreadyExists, NotFound
    client = client or publisher()
    try:
        client.get_topic(request={"topic": topic})
        return
    except NotFound:
        if not on_emulator():
            raise
    try:
        client.create_topic(request={"name": topic})
        log.info("created topic %s on the emulator", topic)
    except AlreadyExists:
        pass


def ensure_subscription(subscription: str, topic: str | None, client: Any = None) -> str:
    """Create `subscription` on `topic` if missing (emulator only); return its topic."""
    from google.api_core.exceptions import AlreadyExists, NotFound
    client = client or subscriber()
    try:
        return str(client.get_subscription(request={"subscription": subscription}).topic)
    except NotFound:
        if not on_emulator() or topic is None:
            raise
    ensure_topic(topic)
    try:
        client.create_subscription(request={"name": subscription, "topic": topic,
                                            "ack_deadline_seconds": 60})
        log.info("created subscription %s on %s on the emulator", subscription, topic)
    except AlreadyExists:
        pass
    return topic


def publish_all(client: Any, topic: str, messages: Iterable[tuple[bytes, Mapping[str, str]]],
                timeout: float = 60.0) -> int:
    """Publish every (data, attributes) and wait until Pub/Sub has accepted all of them.

    Raises the first publish error: the caller must not record as published what was not.
    """
    futures = [client.publish(topic, data, **dict(attrs)) for data, attrs in messages]
    for future in futures:
        future.result(timeout=timeout)
    return len(futures)


def publish_heartbeat(client: Any, topic: str, timeout: float = 10.0) -> None:
    client.publish(topic, b"", **{HEARTBEAT_ATTRIBUTE: "1"}).result(timeout=timeout)


def is_heartbeat(attributes: Mapping[str, str] | Iterable[tuple[str, str]]) -> bool:
    attrs = dict(attributes)
    return attrs.get(HEARTBEAT_ATTRIBUTE) == "1"


def item_form(article: Article) -> dict[str, Any]:
    """The contract's JSONL item form of a parsed feed entry, keeping its mediamon id stable.

    The url is left out when it would not give the same id (a feed whose entries share a link).
    """
    item: dict[str, Any] = {"url": article.url, "title": article.title,
                            "summary": article.summary, "published": article.published,
                            "source": article.source}
    if article.guid:
        item["id"] = article.guid
    if article.language_hint:
        item["language"] = article.language_hint
    if article_id(article.url, article.guid, article.source, article.title) != article.id:
        item["url"] = ""
    return item


def message_for(article: Article) -> tuple[bytes, dict[str, str]]:
    """Data: the item form; attribute `id` is the mediamon article id."""
    item = item_form(article)
    data = json.dumps(item, ensure_ascii=False).encode("utf-8")
    return data, {"id": article.id, "source": article.source, "published": article.published}
