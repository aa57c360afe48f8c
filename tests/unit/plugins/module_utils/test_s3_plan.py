"""s3_plan: what to do with each key, the merge of listing and index, the delete limit."""

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_plan as plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index as index
from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_listing as listing


def obj(key, size=1, etag='"e"', last_modified=1000.0):
    return listing.S3Object(key, size, etag, last_modified, ())


def entry(key, size=1, etag='"e"', last_modified=1000.0):
    return index.IndexEntry(key, size, etag, last_modified)


class Stat:
    def __init__(self, size, mtime):
        self.st_size = size
        self.st_mtime = mtime


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
