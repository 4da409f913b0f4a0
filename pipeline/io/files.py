"""Sharded file sinks: shard names, clearing leftovers of a killed run, merging into one file."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)


SHARD_TEMPLATE = "-SSSSS-of-NNNNN"


_SHARD_GLOB = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"


def shard_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + _SHARD_GLOB))


def clear_shards(paths: Iterable[Path]) -> None:
    """Shards left by a run that died before merging must not join the next run's file."""
    for path in paths:
        for shard in shard_files(path):
            shard.unlink()


def merge_shards(path: Path, header: str | None = None) -> None:
    """Concatenate `path-NNNNN-of-NNNNN` into `path` (one header), atomically; remove shards."""
    shards = shard_files(path)
    tmp = path.with_name(path.name + ".merging")
    with tmp.open("wb") as out:
        if header:
            out.write(header.encode("utf-8") + b"\n")
        for shard in shards:
            with shard.open("rb") as part:
                if header:
                    first = part.readline()
                    if first.rstrip(b"\r\n") != header.encode("utf-8"):
                        out.write(first)
                while chunk := part.read(1 << 20):
                    out.write(chunk)
    tmp.replace(path)
    for shard in shards:
        shard.unlink()
