import base64
import datetime
import hashlib
import json
import os
import zlib

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_mirror as m


def obj(key, size=1, etag='"e"', last_modified=1000.0):
    return m.S3Object(key, size, etag, last_modified, ())


def entry(key, size=1, etag='"e"', last_modified=1000.0):
    return m.IndexEntry(key, size, etag, last_modified)


class Stat:
    def __init__(self, size, mtime):
        self.st_size = size
        self.st_mtime = mtime


@pytest.mark.parametrize(
    "prefix, expected",
    [("", ""), ("photos", "photos/"), ("photos/", "photos/"), ("/photos", "photos/"), (None, "")],
)
def test_prefix_is_read_as_a_folder(prefix, expected):
    assert m.normalize_prefix(prefix) == expected


@pytest.mark.parametrize(
    "key, expected",
    [
        ("a.jpg", ("a.jpg", False, None)),
        ("2026/11/café ☕ photo.jpg", ("2026/11/café ☕ photo.jpg", False, None)),
        ("dir/", ("dir", True, None)),
        ("a/b/", ("a/b", True, None)),
        ("..dots-in-name..jpg", ("..dots-in-name..jpg", False, None)),
        ("../x", (None, False, "key has a '..' path segment")),
        ("a/../../x", (None, False, "key has a '..' path segment")),
        ("a/..", (None, False, "key has a '..' path segment")),
        ("../", (None, False, "key has a '..' path segment")),
        ("./x", (None, False, "key has a '.' path segment")),
        ("/etc/passwd", (None, False, "key is an absolute path")),
        ("a//b", (None, False, "key has an empty path segment ('//')")),
        ("a\\..\\..\\x", (None, False, "key contains a backslash, a path separator on some systems")),
        ("a\x00b", (None, False, "key contains a NUL character")),
        ("x" * 256, (None, False, "key has a path segment longer than 255 bytes")),
        ("é" * 128, (None, False, "key has a path segment longer than 255 bytes")),
        (
            ".s3_mirror_index.jsonl",
            (None, False, "name '.s3_mirror_index.jsonl' is reserved for the mirror's own files"),
        ),
        ("a/.s3_mirror_tmp/x", (None, False, "name '.s3_mirror_tmp' is reserved for the mirror's own files")),
    ],
)
def test_local_path(key, expected):
    assert m.local_path(key) == expected


def test_local_path_strips_the_prefix_and_maps_its_own_marker_to_dest():
    assert m.local_path("uploads/a/b.jpg", "uploads/") == ("a/b.jpg", False, None)
    assert m.local_path("uploads/", "uploads/") == ("", True, None)
    assert m.local_path("uploads//x", "uploads/")[2] == "key is an absolute path"
    assert m.local_path("other/x", "uploads/")[0] is None


def test_accepted_paths_stay_inside_dest(tmp_path):
    dest = str(tmp_path)
    for key in ["a", "a/b", "..a", "a..", "...", "a/...b/c", " a", "a ", "~/x", "$HOME/x", "%2e%2e/x"]:
        relative, _is_directory, reason = m.local_path(key)
        assert reason is None
        assert m.is_inside(dest, os.path.realpath(os.path.join(dest, relative)))
    assert not m.is_inside("/srv/mirror", "/srv/mirror-other/x")
    assert m.is_inside("/srv/mirror", "/srv/mirror/x")


def test_filters_match_the_path_below_the_prefix():
    images = m.KeyFilter(include=["*.jpg", "*.png"], exclude=["tmp/*", "*.thumb.jpg"])
    assert images("a.jpg") and images("2026/11/b.png")
    assert not images("a.txt") and not images("tmp/a.jpg") and not images("x.thumb.jpg")
    assert not images("a.JPG")
    assert m.KeyFilter()("anything/at/all")
    assert not m.KeyFilter(exclude=["*"])("a")


def test_collisions_between_a_file_and_a_path_below_it():
    tracker = m.CollisionTracker()
    keys = [("a", False), ("a!b", False), ("a-c/d", False), ("a/b", False), ("a/c/", True), ("ab", False), ("b", True)]
    assert [tracker.check(path, is_dir) for path, is_dir in keys] == [None, None, None, "a", "a", None, None]
    tracker = m.CollisionTracker()
    assert tracker.check("x", False) is None
    assert tracker.check("x", True) == "x"
    assert tracker.check("x/y/z", False) == "x"
    assert tracker.check("y/z", False) is None
    assert tracker.check("y/z/w", False) == "y/z"


@pytest.mark.parametrize(
    "value, expected", [(None, None), ("", None), ("0", (0, False)), ("25", (25, False)), ("10%", (10.0, True))]
)
def test_parse_max_delete(value, expected):
    assert m.parse_max_delete(value) == expected


@pytest.mark.parametrize("value", ["ten", "-1", "150%", "%", "1.5"])
def test_parse_max_delete_rejects(value):
    with pytest.raises(ValueError, match="max_delete"):
        m.parse_max_delete(value)


def test_delete_limit():
    assert m.delete_limit_exceeded(5, 100, None) is None
    assert m.delete_limit_exceeded(5, 100, (5, False)) is None
    assert "6 files would be deleted; max_delete is 5" == m.delete_limit_exceeded(6, 100, (5, False))
    assert m.delete_limit_exceeded(10, 100, (10.0, True)) is None
    assert "11 of 100 mirrored files (11.0%)" in m.delete_limit_exceeded(11, 100, (10.0, True))
    assert m.delete_limit_exceeded(0, 0, (0, False)) is None
    assert m.delete_limit_exceeded(1, 10, (0, False))


def test_decide():
    current = obj("a", size=4, etag='"1"', last_modified=1000.0)
    assert m.decide(current, None, None) == (True, "new")
    assert m.decide(current, entry("a", 4, '"0"', 1000.0), Stat(4, 1000.0)) == (True, "changed")
    assert m.decide(current, entry("a", 5, '"1"', 1000.0), Stat(4, 1000.0)) == (True, "changed")
    assert m.decide(current, entry("a", 4, '"1"', 900.0), Stat(4, 900.0)) == (True, "changed")
    assert m.decide(current, entry("a", 4, '"1"', 1000.0), None) == (True, "missing locally")
    assert m.decide(current, entry("a", 4, '"1"', 1000.0), Stat(3, 1000.0)) == (True, "local copy differs")
    assert m.decide(current, entry("a", 4, '"1"', 1000.0), Stat(4, 2000.0)) == (True, "local copy differs")
    assert m.decide(current, entry("a", 4, '"1"', 1000.0), Stat(4, 1000.0)) == (False, "unchanged")


def test_merge_walks_both_sorted_streams_once():
    listing = [obj("a"), obj("c"), obj("d"), obj("f")]
    index = [entry("b"), entry("c"), entry("e"), entry("f"), entry("g")]
    merged = [(o and o.key, e and e.key) for o, e in m.merge(iter(listing), iter(index))]
    assert merged == [("a", None), (None, "b"), ("c", "c"), ("d", None), (None, "e"), ("f", "f"), (None, "g")]
    assert [(o.key, e) for o, e in m.merge([obj("a")], [])] == [("a", None)]
    assert [(o, e.key) for o, e in m.merge([], [entry("a")])] == [(None, "a")]


def test_merge_is_lazy():
    def listing():
        yield obj("a")
        raise AssertionError("read past the first object")

    merged = m.merge(listing(), iter([entry("b")]))
    assert next(merged)[0].key == "a"


def test_check_sorted_rejects_unordered_listings():
    assert [o.key for o in m.check_sorted([obj("a"), obj("b"), obj("é")])] == ["a", "b", "é"]
    with pytest.raises(ValueError, match="not in key order"):
        list(m.check_sorted([obj("b"), obj("a")]))


def test_utf8_byte_order_equals_python_string_order():
    keys = ["a", "z", "é", "€", "\U0001f600", "A", "~", "\x7f", "\u07ff", "\uffff"]
    assert sorted(keys) == sorted(keys, key=lambda key: key.encode("utf-8"))


def write_index(dest, entries, bucket="b", prefix="p/"):
    os.makedirs(os.path.join(dest, m.TEMP_DIR_NAME), exist_ok=True)
    writer = m.IndexWriter(str(dest), bucket, prefix, fsync=True)
    for item in entries:
        writer.write(item)
    return writer


def test_index_round_trip_and_dropped_keys(tmp_path):
    entries = [entry("a", 1, '"x"', 1.5), entry("b c/é", 2, '"y-2"', 2.0), entry("d", 0, '"z"', 3.0)]
    writer = write_index(tmp_path, entries)
    writer.commit(dropped_keys=["d"])
    assert writer.count == 2
    reader = m.IndexReader(str(tmp_path / m.INDEX_NAME), "b", "p/")
    assert list(reader) == entries[:2]
    assert reader.problem is None and reader.count == 2
    assert not (tmp_path / m.TEMP_DIR_NAME / (m.INDEX_NAME + ".new")).exists()
    assert json.loads((tmp_path / m.INDEX_NAME).read_text().splitlines()[0]) == {
        "format": m.INDEX_FORMAT,
        "version": 1,
        "bucket": "b",
        "prefix": "p/",
    }


def test_index_writer_refuses_unsorted_entries_and_abort_leaves_the_old_index(tmp_path):
    write_index(tmp_path, [entry("a")]).commit()
    writer = write_index(tmp_path, [entry("b")])
    with pytest.raises(ValueError, match="out of order"):
        writer.write(entry("a"))
    writer.abort()
    assert list(m.IndexReader(str(tmp_path / m.INDEX_NAME), "b", "p/")) == [entry("a")]


def test_index_reader_is_safe_with_missing_foreign_or_damaged_files(tmp_path):
    path = str(tmp_path / m.INDEX_NAME)
    reader = m.IndexReader(path, "b", "p/")
    assert list(reader) == [] and reader.problem is None

    write_index(tmp_path, [entry("a")], bucket="other").commit()
    reader = m.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "was written for s3://other/p/" in reader.problem

    (tmp_path / m.INDEX_NAME).write_text("not json\n")
    reader = m.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "not an s3_mirror index" in reader.problem

    header = m.index_header("b", "p/")
    lines = [header, '["a", 1, "\\"e\\"", 1000.0]', '["c", 1, "\\"e\\"", 1000.0]', '["b", 1, "\\"e\\"", 1000.0]']
    (tmp_path / m.INDEX_NAME).write_text("\n".join(lines) + "\n")
    reader = m.IndexReader(path, "b", "p/")
    assert [item.key for item in reader] == ["a", "c"] and "damaged at line 4" in reader.problem

    (tmp_path / m.INDEX_NAME).write_text(header + '\n["a", "1", "e", 1]\n')
    reader = m.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "damaged at line 2" in reader.problem


def test_etag_helpers(tmp_path):
    assert m.md5_of_etag('"0cc175b9c0f1b6a831c399e269772661"') == "0cc175b9c0f1b6a831c399e269772661"
    assert m.md5_of_etag('"0cc175b9c0f1b6a831c399e269772661-2"') is None
    assert m.multipart_etag_parts('"0cc175b9c0f1b6a831c399e269772661-12"') == 12
    assert m.multipart_etag_parts('"0cc175b9c0f1b6a831c399e269772661"') is None
    assert m.uniform_part_sizes(11, 5, 3) == [5, 5, 1]
    assert m.uniform_part_sizes(10, 5, 2) == [5, 5]
    assert m.uniform_part_sizes(16, 5, 3) is None
    assert m.uniform_part_sizes(10, 5, 0) is None

    data = b"0123456789a"
    path = tmp_path / "f"
    path.write_bytes(data)
    digests = [hashlib.md5(data[0:5]).digest(), hashlib.md5(data[5:10]).digest(), hashlib.md5(data[10:]).digest()]
    expected = '"{0}-3"'.format(hashlib.md5(b"".join(digests)).hexdigest())
    assert m.multipart_etag(str(path), [5, 5, 1]) == expected
    assert m.multipart_etag(str(path), [6, 4, 1]) != expected


def test_checksums_against_a_response(tmp_path):
    data = b"hello"
    path = tmp_path / "f"
    path.write_bytes(data)
    digests = m.digest_file(str(path))
    good = {
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "ChecksumSHA1": base64.b64encode(hashlib.sha1(data).digest()).decode(),
        "ChecksumCRC32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
        "ChecksumCRC32C": "not computed here",
    }
    assert m.checksum_mismatches(digests, good) == []
    assert digests.md5.hexdigest() == hashlib.md5(data).hexdigest()
    bad = dict(good, ChecksumSHA256=base64.b64encode(b"x" * 32).decode(), ChecksumCRC32="AAAAAA==")
    assert m.checksum_mismatches(digests, bad) == ["ChecksumSHA256", "ChecksumCRC32"]
    assert m.checksum_mismatches(digests, dict(bad, ChecksumType="COMPOSITE")) == []
    assert m.checksum_mismatches(digests, {"ChecksumSHA256": "abc-3"}) == []
    only_md5 = m.digest_file(str(path), checksums=())
    assert m.checksum_mismatches(only_md5, bad) == []


def test_index_commit_flushes_the_written_files_or_the_filesystem(tmp_path, monkeypatch):
    flushed, synced = [], []
    monkeypatch.setattr(m, "fsync_path", flushed.append)
    monkeypatch.setattr(m, "sync_filesystem", synced.append)
    (tmp_path / "sub").mkdir()
    written = [str(tmp_path / "sub" / "a"), str(tmp_path / "b")]
    write_index(tmp_path, [entry("a")]).commit(written_paths=written)
    assert set(flushed) >= set(written) | {str(tmp_path / "sub"), str(tmp_path)}
    assert synced == []

    flushed.clear()
    write_index(tmp_path, [entry("a")]).commit()
    assert len(synced) == 1 and flushed == [str(tmp_path)]
    assert [item.key for item in m.IndexReader(str(tmp_path / m.INDEX_NAME), "b", "p/")] == ["a"]


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-23T01:02:03.000Z",
        "2026-11-23T01:02:03Z",
        "2026-11-23T02:02:03.000+01:00",
        "Mon, 23 Nov 2026 01:02:03 GMT",
        datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=datetime.timezone.utc),
    ],
)
def test_epoch_seconds_of_s3_timestamps(timestamp):
    assert (
        m.epoch_seconds(timestamp) == datetime.datetime(2026, 11, 23, 1, 2, 3, tzinfo=datetime.timezone.utc).timestamp()
    )


def test_epoch_seconds_rejects_what_is_not_a_timestamp():
    with pytest.raises(ValueError):
        m.epoch_seconds("yesterday")
