"""Cell-level parsing shared by the table and RecBole readers.

The functions raise ``ValueError`` with a short reason; the readers add the file and line,
which only they know.
"""

from __future__ import annotations

import datetime as dt
import math

__all__ = ["parse_id", "parse_label", "parse_timestamp"]


def parse_id(value: object, what: str) -> str:
    """A user/item id as a string key: ids may be ints in one file and strings in another.

    Integral floats are accepted as ints (``12.0`` → ``"12"``) because CSV/Parquet exports of
    integer columns with gaps often turn them into floats.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"empty {what}")
        return text
    if isinstance(value, bool) or value is None:
        raise ValueError(f"missing {what}" if value is None else f"{what} {value!r} is not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        raise ValueError(f"{what} {value!r} is not an integer or a string")
    raise ValueError(f"{what} {value!r} has unsupported type {type(value).__name__}")


def parse_label(value: object, what: str) -> str:
    """A domain or behaviour name: a non-empty string (numbers are turned into strings)."""
    if value is None:
        raise ValueError(f"missing {what}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"empty {what}")
    return text


#: Values of the interactions table's optional ``split`` column (see :func:`parse_split`).
SPLIT_LABELS = ("train", "valid", "test", "history")
_SPLIT_ALIASES = {"validation": "valid", "val": "valid", "context": "history"}


def parse_split(value: object) -> int:
    """A ``split`` cell as an index into :data:`SPLIT_LABELS` (case-insensitive; ``validation``
    and ``val`` mean ``valid``, ``context`` means ``history``)."""
    if value is None:
        raise ValueError("missing split")
    text = str(value).strip().lower()
    text = _SPLIT_ALIASES.get(text, text)
    if text not in SPLIT_LABELS:
        raise ValueError(f"split {value!r} is not one of {', '.join(SPLIT_LABELS)}")
    return SPLIT_LABELS.index(text)


def _utc_seconds(moment: dt.datetime) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC (not the machine's zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def parse_timestamp(value: object) -> float:
    """A finite float: a number (any unit) or an ISO-8601 date/time (→ seconds, UTC)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(
            "missing timestamp" if value is None else f"timestamp {value!r} is not a time"
        )
    seconds: float
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, dt.datetime):
        seconds = _utc_seconds(value)
    elif isinstance(value, dt.date):
        seconds = _utc_seconds(dt.datetime(value.year, value.month, value.day))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        try:
            seconds = float(text)
        except ValueError:
            iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            try:
                seconds = _utc_seconds(dt.datetime.fromisoformat(iso))
            except ValueError:
                raise ValueError(
                    f"timestamp {text[:40]!r} is neither a number nor an ISO-8601 date"
                ) from None
    else:
        raise ValueError(f"timestamp {value!r} has unsupported type {type(value).__name__}")
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp {value!r} is not finite")
    return seconds
