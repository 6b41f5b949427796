"""Calendar helpers: fast ISO date text and the export timestamp.

Episodes and measurements are generated as integer day numbers (proleptic
ordinals); turning millions of them into text with ``date.isoformat`` would
dominate the run time, so a ``DayText`` table formats each day once.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

EXPORT_TIME = (23, 5)  # nightly export at 23:05 local time, as in the contract's example


class DayText:
    """ISO text for every day in ``[first, last]`` (day ordinals), formatted once."""

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self._text = [date.fromordinal(day).isoformat() for day in range(first, last + 1)]

    def __call__(self, day: int) -> str:
        return self._text[day - self.first]


def parse_export_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"export date must be YYYY-MM-DD, got {text!r}") from exc


def _last_sunday(year: int, month: int) -> date:
    first_of_next = date(year + (month == 12), month % 12 + 1, 1)
    last_day = first_of_next - timedelta(days=1)
    return last_day - timedelta(days=(last_day.weekday() + 1) % 7)


def amsterdam_offset(day: date) -> timezone:
    """UTC offset of Europe/Amsterdam on ``day`` (evening), by the EU summer-time rule.

    Written out instead of using ``zoneinfo`` so that generation does not depend
    on the machine's time-zone database (Windows has none without ``tzdata``).
    """
    summer = _last_sunday(day.year, 3) <= day < _last_sunday(day.year, 10)
    return timezone(timedelta(hours=2 if summer else 1))


def exported_at(day: date, minute_offset: int = 0) -> str:
    """Timestamp of the nightly export, e.g. ``2026-11-21T23:05:00+01:00``.

    ``minute_offset`` staggers concerns a little within the same night (kept
    below 55 so the timestamp stays on the export date).
    """
    hour, minute = EXPORT_TIME
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=amsterdam_offset(day))
    return (moment + timedelta(minutes=minute_offset % 55)).isoformat()
