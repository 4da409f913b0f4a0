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

import logging
import os
from typing import Any, Iterable, Mapping

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
