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
