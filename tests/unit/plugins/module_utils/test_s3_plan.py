"""s3_plan: what to do with each key, the merge of listing and index, the delete limit."""

import stat

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_plan as plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index as index
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_listing as listing


def obj(key, size=1, etag='"e"', last_modified=1000.0):
    return listing.S3Object(key, size, etag, last_modified, ())


def entry(key, size=1, etag='"e"', last_modified=1000.0):
    return index.IndexEntry(key, size, etag, last_modified)


class Stat:
    def __init__(self, size, mtime, mode=stat.S_IFREG | 0o644):
        self.st_size = size
        self.st_mtime = mtime
        self.st_mode = mode


@pytest.mark.parametrize(
    "value, expected", [(None, None), ("", None), ("0", (0, False)), ("25", (25, False)), ("10%", (10.0, True))]
)
def test_parse_max_delete(value, expected):
    assert plan.parse_max_delete(value) == expected


@pytest.mark.parametrize("value", ["ten", "-1", "150%", "%", "1.5"])
def test_parse_max_delete_rejects(value):
    with pytest.raises(ValueError, match="max_delete"):
        plan.parse_max_delete(value)


def test_delete_limit():
    assert plan.delete_limit_exceeded(5, 100, None) is None
    assert plan.delete_limit_exceeded(5, 100, (5, False)) is None
    assert "6 files would be deleted; max_delete is 5" == plan.delete_limit_exceeded(6, 100, (5, False))
    assert plan.delete_limit_exceeded(10, 100, (10.0, True)) is None
    assert "11 of 100 mirrored files (11.0%)" in plan.delete_limit_exceeded(11, 100, (10.0, True))
    assert plan.delete_limit_exceeded(0, 0, (0, False)) is None
    assert plan.delete_limit_exceeded(1, 10, (0, False))


def test_decide():
    current = obj("a", size=4, etag='"1"', last_modified=1000.0)
    assert plan.decide(current, None, None) == (True, "new")
    assert plan.decide(current, entry("a", 4, '"0"', 1000.0), Stat(4, 1000.0)) == (True, "changed")
    assert plan.decide(current, entry("a", 5, '"1"', 1000.0), Stat(4, 1000.0)) == (True, "changed")
    assert plan.decide(current, entry("a", 4, '"1"', 900.0), Stat(4, 900.0)) == (True, "changed")
    assert plan.decide(current, entry("a", 4, '"1"', 1000.0), None) == (True, "missing locally")
    assert plan.decide(current, entry("a", 4, '"1"', 1000.0), Stat(3, 1000.0)) == (True, "local copy differs")
    assert plan.decide(current, entry("a", 4, '"1"', 1000.0), Stat(4, 2000.0)) == (True, "local copy differs")
    assert plan.decide(current, entry("a", 4, '"1"', 1000.0), Stat(4, 1000.0)) == (False, "unchanged")


def test_decide_adopts_a_file_complete_on_disk_that_the_index_does_not_describe():
    current = obj("a", size=4, etag='"2"', last_modified=2000.0)
    assert plan.decide(current, None, Stat(4, 2000.0)) == (False, plan.ADOPT)
    assert plan.decide(current, None, Stat(4, 2000.0, stat.S_IFLNK | 0o777)) == (True, "new")
    assert plan.decide(current, None, Stat(5, 2000.0)) == (True, "new")
    assert plan.decide(current, None, Stat(4, 1990.0)) == (True, "new")
    # Replaced on disk by a killed run after the last checkpoint: the index still has the old version.
    assert plan.decide(current, entry("a", 4, '"1"', 1000.0), Stat(4, 2000.0)) == (False, plan.ADOPT)
    # Same LastModified in the index and the bucket: the mtime cannot tell which version the file holds.
    same_second = obj("a", size=4, etag='"2"', last_modified=1000.0)
    assert plan.decide(same_second, entry("a", 4, '"1"', 1000.0), Stat(4, 1000.0)) == (True, "changed")


def test_decide_compares_versions_when_both_have_one():
    versioned = listing.S3Object("a", 1, '"e"', 1000.0, (), "v2")
    assert plan.decide(versioned, index.IndexEntry("a", 1, '"e"', 1000.0, "v1"), Stat(1, 1000.0)) == (True, "changed")
    assert plan.decide(versioned, index.IndexEntry("a", 1, '"e"', 1000.0, "v2"), Stat(1, 1000.0)) == (
        False,
        "unchanged",
    )
    assert plan.decide(versioned, entry("a"), Stat(1, 1000.0)) == (False, "unchanged")


@pytest.mark.parametrize("value", ["150%", "ten", "-3"])
def test_parse_file_limit_names_the_option_and_the_value(value):
    with pytest.raises(ValueError) as raised:
        plan.parse_file_limit(value, "max_changed")
    assert str(raised.value).startswith("max_changed must be") and repr(value) in str(raised.value)


def test_change_limit():
    assert plan.change_limit_exceeded(50, 100, None) is None
    assert plan.change_limit_exceeded(0, 100, (0, False)) is None
    assert plan.change_limit_exceeded(10, 100, (10.0, True)) is None
    assert plan.change_limit_exceeded(50, 100, (10.0, True)) == (
        "50 of 100 mirrored files (50.0%) would be replaced by changed objects; max_changed is 10%"
    )
    assert plan.change_limit_exceeded(3, 100, (2, False)) == (
        "3 mirrored files would be replaced by changed objects; max_changed is 2"
    )


def test_merge_walks_both_sorted_streams_once():
    listing = [obj("a"), obj("c"), obj("d"), obj("f")]
    index = [entry("b"), entry("c"), entry("e"), entry("f"), entry("g")]
    merged = [(o and o.key, e and e.key) for o, e in plan.merge(iter(listing), iter(index))]
    assert merged == [("a", None), (None, "b"), ("c", "c"), ("d", None), (None, "e"), ("f", "f"), (None, "g")]
    assert [(o.key, e) for o, e in plan.merge([obj("a")], [])] == [("a", None)]
    assert [(o, e.key) for o, e in plan.merge([], [entry("a")])] == [(None, "a")]


def test_merge_is_lazy():
    def listing():
        yield obj("a")
        raise AssertionError("read past the first object")

    merged = plan.merge(listing(), iter([entry("b")]))
    assert next(merged)[0].key == "a"
