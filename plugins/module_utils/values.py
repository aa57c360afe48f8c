# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The values users and AWS write as text: timestamps, dates, durations, ages, yes/no words.

Each is read in one place, so that every module accepts the same spellings and names the
option and the value when it refuses one.
"""

import datetime
import email.utils
import re

TRUE_WORDS = ("yes", "true", "1", "on")
FALSE_WORDS = ("no", "false", "0", "off", "")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw]?)$")
_DAYS_RE = re.compile(r"^\d+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def utc_now():
    """Now, in UTC, to the second (what AWS timestamps and names carry)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def parse_timestamp(value):
    """An aware UTC datetime from what AWS returns: ISO 8601 text (``2026-11-23T01:02:03.000Z``),
    RFC 1123 text (HTTP headers) or a datetime.  None for a missing value; ValueError otherwise."""
    if value is None or value == "":
        return None
    moment = _moment(value)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def epoch_seconds(value):
    """Seconds since the epoch of an AWS timestamp (see parse_timestamp); ValueError for a missing one.

    A listing parses one per object, so this skips parse_timestamp's conversion to UTC, which
    does not change the result.
    """
    moment = _moment(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _moment(value):
    """The datetime a timestamp stands for, as written (aware or naive)."""
    if value.__class__ is str:
        text = value.strip()
    elif isinstance(value, datetime.datetime):
        return value
    else:
        text = str(value).strip()
    try:
        return datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        try:
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            raise ValueError("{0!r} is not a timestamp".format(value))


def parse_date(value):
    """A ``DeleteOn``-style date: ``YYYY-MM-DD`` or an ISO 8601 datetime (reduced to its UTC date).

    Raises ValueError naming the value.
    """
    if isinstance(value, datetime.datetime):
        return parse_timestamp(value).date()
    if isinstance(value, datetime.date):
        return value
    text = str(value).strip()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parse_timestamp(text).date()
    except ValueError:
        raise ValueError("{0!r} is not a date (expected YYYY-MM-DD)".format(text))


def parse_as_of(value, today):
    """The ``as_of`` option of the purges: a ``YYYY-MM-DD`` date, today (UTC) when unset.

    Raises ValueError naming the option and the value.
    """
    if value is None or str(value).strip() == "":
        return today
    text = str(value).strip()
    try:
        if not _ISO_DATE.match(text):
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError("as_of {0!r} is not a date: use YYYY-MM-DD, for example {1}".format(value, today.isoformat()))


def check_as_of(as_of, today, check_mode, allow_future):
    """Refuse a future ``as_of`` outside check mode: it would delete backups before their DeleteOn."""
    if as_of > today and not check_mode and not allow_future:
        raise ValueError(
            "as_of {0} is in the future: outside check mode it would delete backups before their DeleteOn. "
            "Run with --check to preview, or set allow_future_as_of: true to purge them now".format(as_of.isoformat())
        )


def parse_moment(value, option):
    """A moment a user names, such as ``version_as_of``: an ISO 8601 date and time (``2026-11-23T01:00:00Z``,
    an offset, or none for UTC) or a date (its midnight, UTC).  Returns an aware UTC datetime; raises
    ValueError naming the option and the value."""
    if isinstance(value, datetime.datetime):
        return parse_timestamp(value)
    text = str(value if value is not None else "").strip()
    try:
        if _ISO_DATE.match(text):
            return datetime.datetime.combine(datetime.date.fromisoformat(text), datetime.time(), datetime.timezone.utc)
        if not re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text):
            raise ValueError(text)
        return parse_timestamp(text)
    except ValueError:
        raise ValueError(
            "{0} {1!r} is not a date and time: use ISO 8601, for example 2026-11-23T01:00:00Z".format(option, value)
        )


def parse_duration(value, option="duration"):
    """A duration such as ``min_interval``: seconds (``90``) or a count with a unit (``30m``, ``1h``, ``2d``, ``1w``).

    Returns a timedelta; raises ValueError naming the option and the value.
    """
    text = str(value).strip().lower()
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(
            "{0} {1!r} is not a duration: use a number of seconds or a count with a unit "
            "(90s, 30m, 1h, 2d, 1w)".format(option, value)
        )
    return datetime.timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])


def parse_age(value, option):
    """A minimum age: a bare number of days (``30``), or a count with a unit (``12h``, ``2w``).

    Raises ValueError naming the option for negative or malformed values.
    """
    text = str(value).strip().lower()
    if text.startswith("-"):
        raise ValueError("{0} must not be negative, got {1!r}".format(option, value))
    if _DAYS_RE.match(text):
        return datetime.timedelta(days=int(text))
    try:
        return parse_duration(text, option)
    except ValueError:
        raise ValueError(
            "{0} {1!r} is not an age: use a number of days (30) or a count with a unit (12h, 30d, 2w)".format(
                option, value
            )
        )


def is_yes(value):
    """Words that mean yes in a tag value: ``yes``, ``true``, ``1``, ``on`` (any case)."""
    return str(value if value is not None else "").strip().lower() in TRUE_WORDS


def is_no(value):
    """Words that mean no in a tag value: ``no``, ``false``, ``0``, ``off`` (any case), or empty."""
    return str(value if value is not None else "").strip().lower() in FALSE_WORDS


def parse_yes_no(value, option):
    """A boolean from a bool or one of the yes/no words; raises ValueError naming the option."""
    if isinstance(value, bool):
        return value
    if is_yes(value):
        return True
    if value is not None and is_no(value) and str(value).strip():
        return False
    raise ValueError(
        "{0} must be a boolean ({1} or {2}), got {3!r}".format(
            option, "/".join(TRUE_WORDS), "/".join(FALSE_WORDS[:-1]), value
        )
    )
