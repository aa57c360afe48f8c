import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import check_as_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import is_no
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import is_yes
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_age
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_as_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_date
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_duration
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

TODAY = datetime.date(2026, 11, 23)
UTC = datetime.timezone.utc


@pytest.mark.parametrize(
    "text, seconds", [("0", 0), ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800), ("1w", 604800)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["-1h", "1 hour", "h", "1y"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(ValueError, match="min_interval {0!r} is not a duration".format(text)):
        parse_duration(text, "min_interval")


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
def test_yes_words(value, expected):
    assert is_yes(value) is expected


@pytest.mark.parametrize("value", ["no", "FALSE", "0", "off", "", None])
def test_no_words(value):
    assert is_no(value) and not is_yes(value)


@pytest.mark.parametrize(
    "text, moment",
    [
        ("2026-11-23T01:02:03.000Z", datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-23T01:02:03Z", datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-23T03:02:03+02:00", datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)),
        ("Mon, 23 Nov 2026 01:02:03 GMT", datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)),
        (datetime.datetime(2026, 11, 23, 1, 2, 3), datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=UTC)),
    ],
)
def test_one_timestamp_parser_for_every_form_aws_sends(text, moment):
    assert parse_timestamp(text) == moment
    assert parse_timestamp(text).tzinfo is not None


def test_a_missing_timestamp_is_none_and_a_bad_one_is_named():
    assert parse_timestamp(None) is None and parse_timestamp("") is None
    with pytest.raises(ValueError, match="'yesterday' is not a timestamp"):
        parse_timestamp("yesterday")


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "20261201", "tomorrow", "2026-12-01T00:00:00"])
def test_as_of_must_be_a_yyyy_mm_dd_date(value):
    with pytest.raises(ValueError, match="as_of {0!r} is not a date".format(value)):
        parse_as_of(value, TODAY)


def test_as_of_defaults_to_today_also_for_an_empty_answer():
    assert parse_as_of(None, TODAY) == TODAY
    assert parse_as_of("", TODAY) == TODAY
    assert parse_as_of(" 2027-01-31 ", TODAY) == datetime.date(2027, 1, 31)


def test_a_future_as_of_is_refused_outside_check_mode_unless_allowed():
    future = datetime.date(2027, 1, 1)
    with pytest.raises(ValueError, match="as_of 2027-01-01 is in the future.*allow_future_as_of"):
        check_as_of(future, TODAY, check_mode=False, allow_future=False)
    check_as_of(future, TODAY, check_mode=True, allow_future=False)
    check_as_of(future, TODAY, check_mode=False, allow_future=True)
    check_as_of(TODAY, TODAY, check_mode=False, allow_future=False)


@pytest.mark.parametrize("text, age", [("30", datetime.timedelta(days=30)), ("12h", datetime.timedelta(hours=12))])
def test_ages(text, age):
    assert parse_age(text, "stale_min_age") == age


@pytest.mark.parametrize("text, message", [("-1", "must not be negative"), ("soon", "is not an age")])
def test_bad_ages_name_the_option(text, message):
    with pytest.raises(ValueError, match="stale_min_age.*" + message):
        parse_age(text, "stale_min_age")
