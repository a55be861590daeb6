"""When a prompt may go out: pure functions of days, hours and time zones (no clock, no DB)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MIN_ANSWERS_FOR_SEND_HOUR = 3


def send_at(day: date, hour: int, zone: ZoneInfo, now: datetime, allowed: list[int]) -> datetime:
    """The UTC instant to send a prompt meant for ``day`` at local ``hour``.

    Never before ``now``: a prompt whose moment has passed goes at the next allowed local hour
    (right away when ``now`` itself is inside one). ``allowed`` lists the local hours outside
    the quiet hours.
    """
    wanted = datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)
    if wanted >= now:
        return wanted
    local = now.astimezone(zone)
    if local.hour in allowed:
        return now
    for step in range(1, 25):
        candidate = (local + timedelta(hours=step)).replace(minute=0, second=0, microsecond=0)
        if candidate.hour in allowed:
            return candidate.astimezone(UTC)
    raise ValueError("no allowed hour")


def send_after(earliest: datetime, hour: int, zone: ZoneInfo, allowed: list[int]) -> datetime:
    """The first moment from ``earliest`` on at which a prompt may go: the customer's local
    ``hour`` that day if it is still to come; else ``earliest`` itself outside the quiet
    hours; else (quiet hours) the customer's hour the next day."""
    local = earliest.astimezone(zone)
    wanted = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if wanted >= earliest:
        return wanted.astimezone(UTC)
    if local.hour in allowed:
        return earliest
    return datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone).astimezone(
        UTC
    )


def learned_send_hour(answer_hours: Iterable[int], allowed: list[int]) -> int | None:
    """The local hour at which this customer usually answers, if there is enough evidence.

    The most frequent hour among the answers (ties: the earliest), moved to the nearest allowed
    hour when it falls in the quiet hours. None with fewer than three answers.
    """
    counts = Counter(answer_hours)
    if sum(counts.values()) < MIN_ANSWERS_FOR_SEND_HOUR:
        return None
    hour = min(counts, key=lambda h: (-counts[h], h))
    if hour in allowed:
        return hour
    return min(allowed, key=lambda h: (min((h - hour) % 24, (hour - h) % 24), h))
