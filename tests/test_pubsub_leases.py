"""Leases (pipeline/io/pubsub.py): a held message's deadline is extended before it can pass, and
only then (a message acknowledged within its first deadline costs no extension request)."""
from __future__ import annotations

from typing import Any, Sequence

from pipeline.io.pubsub import ACK_DEADLINE, Leases


class FakePuller:
    def __init__(self) -> None:
        self.leased: list[tuple[list[str], int]] = []

    def lease(self, ack_ids: Sequence[str], seconds: int) -> None:
        self.leased.append((list(ack_ids), seconds))


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def rounds(leases: Leases, clock: Clock, until: float, expires: dict[str, float], acked: dict[str, float]) -> None:
    """Run the extension rounds every `leases.every` up to `until`, as the thread would, and
    check that no held message's deadline passes before it is acknowledged."""
    puller: Any = leases.puller
    while clock.t < until:
        clock.t += leases.every
        for ack_id, at in list(acked.items()):
            if at <= clock.t:
                leases.release([ack_id])
                del acked[ack_id]
                expires.pop(ack_id, None)
        for ack_id in leases.due():
            expires[ack_id] = clock.t + leases.seconds
        for ack_id, deadline in expires.items():
            assert deadline > clock.t + leases.every, f"{ack_id} would expire before the next round"
    assert puller.leased == []      # due() does not send; _run sends what it returns


def test_a_message_acked_within_its_first_deadline_is_never_extended() -> None:
    clock = Clock()
    leases = Leases(FakePuller(), clock=clock)  # type: ignore[arg-type]
    leases.hold(["a", "b"])
    clock.t += leases.every - 0.5
    assert leases.due() == []                    # 2.5 s held of 10: nothing to extend yet
    leases.release(["a", "b"])
    clock.t += 10 * leases.every
    assert leases.due() == []


def test_a_message_held_long_is_extended_every_round_before_its_deadline() -> None:
    clock = Clock()
    leases = Leases(FakePuller(), clock=clock)  # type: ignore[arg-type]
    leases.hold(["slow", "quick"])
    expires = {"slow": clock.t + ACK_DEADLINE, "quick": clock.t + ACK_DEADLINE}
    acked = {"slow": clock.t + 60.0, "quick": clock.t + 2.0}
    rounds(leases, clock, clock.t + 70.0, expires, acked)
    assert "slow" not in expires and not acked   # held 60 s without a lapse, then acknowledged


def test_the_thread_sends_the_due_extensions() -> None:
    puller = FakePuller()
    clock = Clock()
    leases = Leases(puller, every=0.05, clock=clock)  # type: ignore[arg-type]
    leases.hold(["x"])
    clock.t += ACK_DEADLINE                      # x is due now
    leases.start()
    try:
        import time
        deadline = time.monotonic() + 5
        while not puller.leased and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        leases.stop()
    assert puller.leased and puller.leased[0] == (["x"], ACK_DEADLINE)


class EmptyPuller:
    """Answers every pull at once with nothing (as the emulator does after ~45 ms), and
    once `arrive` is set, with one message."""

    def __init__(self) -> None:
        import threading
        self.pulls = 0
        self.arrive = threading.Event()

    def pull(self, room: int, timeout: float = 1.0) -> list[Any]:
        from pipeline.io.pubsub import Pulled
        self.pulls += 1
        if self.arrive.is_set():
            self.arrive.clear()
            return [Pulled("ack-1", "m-1", b"{}", (), 0.0)]
        return []


def test_idle_pulls_back_off_and_a_message_still_comes_in_promptly() -> None:
    """A quiet subscription is not pulled 20 times a second (each empty pull cost the emulator
    6-9 ms of CPU), and a message that arrives is taken within the longest pause."""
    import time
    from pipeline.jobs.stream import IDLE_PULL_PAUSE, _Prefetch, idle_pause
    assert [idle_pause(n) for n in (1, 2, 3, 4, 10)] == [0.05, 0.1, 0.2, IDLE_PULL_PAUSE, IDLE_PULL_PAUSE]
    puller = EmptyPuller()
    prefetch = _Prefetch(puller, Leases(FakePuller())).start()  # type: ignore[arg-type]
    try:
        time.sleep(2.0)
        idle_pulls = puller.pulls
        puller.arrive.set()
        sent = time.monotonic()
        taken = prefetch.take(wait=3.0)
        waited = time.monotonic() - sent
    finally:
        prefetch.halt()
    assert 3 <= idle_pulls <= 2.0 / IDLE_PULL_PAUSE + 4     # not one per return of an empty pull
    assert [m.ack_id for m in taken] == ["ack-1"] and waited <= IDLE_PULL_PAUSE + 0.5
