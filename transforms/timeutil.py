"""Time parsing and formatting: everything leaves as ISO-8601 UTC with a Z."""
from __future__ import annotations

import email.utils
from datetime import datetime, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso_utc(datetime.now(timezone.utc))


def parse_time(value: object) -> datetime | None:
    """ISO-8601 (with or without zone; naive means UTC), RFC 2822, or epoch seconds; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_epoch(iso: str) -> float:
    moment = parse_time(iso)
    if moment is None:
        raise ValueError(f"not an ISO-8601 time: {iso!r}")
    return (moment - EPOCH).total_seconds()


def from_epoch(seconds: float) -> str:
    return iso_utc(datetime.fromtimestamp(seconds, tz=timezone.utc))
