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
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from transforms.ids import article_id
from transforms.records import Article

log = logging.getLogger(__name__)

HEARTBEAT_ATTRIBUTE = "mediamon_heartbeat"

MAX_MESSAGE_BYTES = 10 * 1024 * 1024      # Pub/Sub's own limit on one message
GRPC_RECEIVE_LIMIT = 64 * 1024 * 1024     # per pull response; gRPC's default is 4 MiB
PULL_BYTES = 16 * 1024 * 1024             # what one pull should bring back, at most (a target)
PULL_MAX_MESSAGES = 1000                  # Pub/Sub returns at most 1,000 per pull
ACK_CHUNK = 1000                          # ack ids per acknowledge request (request size limit)


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


ACK_DEADLINE = 10   # seconds; the stream job extends the lease of what it holds (Leases)


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
                                            "ack_deadline_seconds": ACK_DEADLINE})
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


# ---------------------------------------------------------------- synchronous pull (stream job)

def pull_subscriber() -> Any:
    """A SubscriberClient whose gRPC channel accepts pull responses up to GRPC_RECEIVE_LIMIT.

    Against Google Cloud the library's channel has no receive limit already; against the
    emulator it makes a plain insecure channel with gRPC's 4 MiB default, so one 5 MB message
    (Pub/Sub allows 10 MB) would fail every pull forever: we make that channel ourselves.
    """
    from google.cloud import pubsub_v1
    if not on_emulator():
        return pubsub_v1.SubscriberClient()
    import grpc  # type: ignore[import-untyped]
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
    channel = grpc.insecure_channel(os.environ["PUBSUB_EMULATOR_HOST"], options=[
        ("grpc.max_receive_message_length", GRPC_RECEIVE_LIMIT),
        ("grpc.max_send_message_length", GRPC_RECEIVE_LIMIT)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


@dataclass(frozen=True)
class Pulled:
    """One message as pulled: its ack id, data, attributes and size."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: tuple[tuple[str, str], ...]
    publish_time: float

    @property
    def size(self) -> int:
        return len(self.data) + sum(len(k) + len(v) for k, v in self.attributes)


class Puller:
    """Synchronous pulls sized by bytes: asks for as many messages as fit PULL_BYTES at the
    recent average size, and halves the request when a response is still too large, down to
    one message (which always fits: 10 MB < GRPC_RECEIVE_LIMIT). Never stalls on one message."""

    def __init__(self, subscription: str, client: Any = None, target_bytes: int = PULL_BYTES) -> None:
        self.subscription = subscription
        self.client = client or pull_subscriber()
        self.target_bytes = target_bytes
        self.average = 2048.0          # bytes per message, a running estimate
        self.cap = PULL_MAX_MESSAGES    # lowered after a RESOURCE_EXHAUSTED, raised again slowly

    def wanted(self, room: int) -> int:
        by_bytes = int(self.target_bytes / max(self.average, 1.0))
        return max(1, min(room, self.cap, by_bytes, PULL_MAX_MESSAGES))

    def pull(self, room: int = PULL_MAX_MESSAGES, timeout: float = 2.0) -> list[Pulled]:
        """Up to `room` messages; [] when none arrived within `timeout` seconds."""
        from google.api_core import exceptions as gexc
        want = self.wanted(room)
        try:
            response = self.client.pull(request={"subscription": self.subscription, "max_messages": want},
                                        timeout=timeout, retry=None)
        except gexc.DeadlineExceeded:
            return []
        except gexc.ResourceExhausted as exc:   # a response over the gRPC limit, or quota
            self.cap = max(1, want // 2)
            log.warning("pull of %d messages too large (%s): asking for %d next", want, exc, self.cap)
            return []
        except (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.Aborted, gexc.Unknown) as exc:
            log.warning("pull failed (%s); retrying", exc)
            time.sleep(0.5)
            return []
        # the raw protobuf under the proto-plus wrapper: wrapping each field access cost more
        # than the rest of the pull (py-spy, a 20,000-message burst)
        out = [Pulled(ack_id=r.ack_id, message_id=r.message.message_id, data=r.message.data,
                      attributes=tuple(sorted(r.message.attributes.items())),
                      publish_time=r.message.publish_time.seconds + r.message.publish_time.nanos / 1e9)
               for r in type(response).pb(response).received_messages]
        if out:
            size = sum(m.size for m in out) / len(out)
            self.average = 0.7 * self.average + 0.3 * size if self.average else size
            if self.cap < PULL_MAX_MESSAGES:
                self.cap = min(PULL_MAX_MESSAGES, self.cap * 2)
        return out

    def ack(self, ack_ids: Sequence[str]) -> None:
        """Acknowledge, in chunks; raises if Pub/Sub refuses (the caller stops: nothing is lost,
        the messages come back and the store's ids absorb them)."""
        for i in range(0, len(ack_ids), ACK_CHUNK):
            self.client.acknowledge(request={"subscription": self.subscription,
                                             "ack_ids": list(ack_ids[i:i + ACK_CHUNK])})

    def lease(self, ack_ids: Sequence[str], seconds: int) -> None:
        """Extend (or with 0, give up) the ack deadline of messages we hold."""
        for i in range(0, len(ack_ids), ACK_CHUNK):
            self.client.modify_ack_deadline(request={"subscription": self.subscription,
                                                     "ack_ids": list(ack_ids[i:i + ACK_CHUNK]),
                                                     "ack_deadline_seconds": seconds})


class Leases:
    """Keeps the messages we hold from being redelivered while we work on them: every `every`
    seconds, the ack deadline of each message that would expire before the next round is
    pushed `seconds` ahead (a killed job stops doing this, so Pub/Sub redelivers them within
    `seconds`).  A message is assumed to expire ACK_DEADLINE (Pub/Sub's minimum) after it was
    pulled, so most messages are acknowledged before they ever need an extension: extending
    everything held every round cost the emulator more than the acknowledgements did."""

    def __init__(self, puller: Puller, seconds: int = ACK_DEADLINE, every: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.puller = puller
        self.seconds = seconds
        self.every = every
        self.clock = clock
        self._held: dict[str, float] = {}        # ack id -> when its deadline passes (clock)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pubsub-leases", daemon=True)

    def start(self) -> "Leases":
        self._thread.start()
        return self

    def hold(self, ack_ids: Iterable[str]) -> None:
        expires = self.clock() + ACK_DEADLINE
        with self._lock:
            self._held.update(dict.fromkeys(ack_ids, expires))

    def release(self, ack_ids: Iterable[str]) -> None:
        with self._lock:
            for ack_id in ack_ids:
                self._held.pop(ack_id, None)

    def due(self) -> list[str]:
        """The held messages whose deadline passes before the round after next (with a second
        to spare for the request itself), now given `seconds` more."""
        now = self.clock()
        soon = now + 2 * self.every + 1.0
        with self._lock:
            ids = [ack_id for ack_id, expires in self._held.items() if expires <= soon]
            self._held.update(dict.fromkeys(ids, now + self.seconds))
        return ids

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            ids = self.due()
            if ids:
                try:
                    self.puller.lease(ids, self.seconds)
                except Exception as exc:  # a missed extension only risks a redelivery (absorbed)
                    log.warning("lease extension of %d messages failed: %s", len(ids), exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
