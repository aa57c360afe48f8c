import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import Retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import add_months
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import is_true_tag
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_date
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_duration
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention

DAY = datetime.date(2026, 1, 31)


@pytest.mark.parametrize(
    "text, expiry",
    [
        ("7", datetime.date(2026, 2, 7)),
        (7, datetime.date(2026, 2, 7)),
        ("30d", datetime.date(2026, 3, 2)),
        ("2w", datetime.date(2026, 2, 14)),
        ("6m", datetime.date(2026, 7, 31)),
        ("1m", datetime.date(2026, 2, 28)),
        ("1y", datetime.date(2027, 1, 31)),
        ("+30 days", datetime.date(2026, 3, 2)),
        ("+6 months", datetime.date(2026, 7, 31)),
        ("+1 Month", datetime.date(2026, 2, 28)),
        ("2 weeks", datetime.date(2026, 2, 14)),
        (" 1 year ", datetime.date(2027, 1, 31)),
    ],
)
def test_retention_forms_expire_by_the_calendar(text, expiry):
    assert parse_retention(text).expiry(DAY) == expiry


def test_leap_year_month_end():
    assert parse_retention("1m").expiry(datetime.date(2028, 1, 31)) == datetime.date(2028, 2, 29)
    assert add_months(datetime.date(2026, 11, 30), 3) == datetime.date(2027, 2, 28)
    assert add_months(datetime.date(2026, 12, 15), 1) == datetime.date(2027, 1, 15)


@pytest.mark.parametrize("text", ["-7", "0", "0d", "seven", "7x", "7 fortnights", "", "1.5m", "+"])
def test_bad_retention_names_the_value(text):
    with pytest.raises(ValueError) as error:
        parse_retention(text)
    assert repr(text.strip()) in str(error.value)


def test_retention_keeps_its_text_and_compares_by_period():
    assert parse_retention("+6 months").text == "+6 months"
    assert parse_retention("2w") == Retention(days=14)
    assert parse_retention("1y") == Retention(months=12)


@pytest.mark.parametrize(
    "text, seconds", [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("1w", 604800)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["-1h", "1 hour", "h", "1y"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text, day",
    [
        ("2026-11-23", datetime.date(2026, 11, 23)),
        ("2026-11-23T23:30:00Z", datetime.date(2026, 11, 23)),
        ("2026-11-23T23:30:00-02:00", datetime.date(2026, 11, 24)),
        ("2026-11-23T10:00:00", datetime.date(2026, 11, 23)),
    ],
)
def test_delete_on_dates_and_datetimes(text, day):
    assert parse_date(text) == day


def test_bad_date_names_the_value():
    with pytest.raises(ValueError, match="'23/11/2026' is not a date"):
        parse_date("23/11/2026")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("yes", True),
        ("TRUE", True),
        ("1", True),
        ("on", True),
        ("no", False),
        ("", False),
        (None, False),
        ("false", False),
    ],
)
def test_true_tags(value, expected):
    assert is_true_tag(value) is expected
