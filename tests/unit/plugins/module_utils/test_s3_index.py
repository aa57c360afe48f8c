"""s3_index: the index round trip, its safety with foreign or damaged files, and flushing."""

import datetime
import json
import os

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_index as index


def entry(key, size=1, etag='"e"', last_modified=1000.0):
    return index.IndexEntry(key, size, etag, last_modified)


def write_index(dest, entries, bucket="b", prefix="p/"):
    os.makedirs(os.path.join(dest, index.TEMP_DIR_NAME), exist_ok=True)
    writer = index.IndexWriter(str(dest), bucket, prefix, fsync=True)
    for item in entries:
        writer.write(item)
    return writer


def test_index_round_trip_and_dropped_keys(tmp_path):
    entries = [entry("a", 1, '"x"', 1.5), entry("b c/é", 2, '"y-2"', 2.0), entry("d", 0, '"z"', 3.0)]
    writer = write_index(tmp_path, entries)
    writer.commit(dropped_keys=["d"])
    assert writer.count == 2
    reader = index.IndexReader(str(tmp_path / index.INDEX_NAME), "b", "p/")
    assert list(reader) == entries[:2]
    assert reader.problem is None and reader.count == 2
    assert not (tmp_path / index.TEMP_DIR_NAME / (index.INDEX_NAME + ".new")).exists()
    assert json.loads((tmp_path / index.INDEX_NAME).read_text().splitlines()[0]) == {
        "format": index.INDEX_FORMAT,
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
    assert list(index.IndexReader(str(tmp_path / index.INDEX_NAME), "b", "p/")) == [entry("a")]


def test_index_reader_is_safe_with_missing_foreign_or_damaged_files(tmp_path):
    path = str(tmp_path / index.INDEX_NAME)
    reader = index.IndexReader(path, "b", "p/")
    assert list(reader) == [] and reader.problem is None

    write_index(tmp_path, [entry("a")], bucket="other").commit()
    reader = index.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "was written for s3://other/p/" in reader.problem

    (tmp_path / index.INDEX_NAME).write_text("not json\n")
    reader = index.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "not an s3_mirror index" in reader.problem

    header = index.index_header("b", "p/")
    lines = [header, '["a", 1, "\\"e\\"", 1000.0]', '["c", 1, "\\"e\\"", 1000.0]', '["b", 1, "\\"e\\"", 1000.0]']
    (tmp_path / index.INDEX_NAME).write_text("\n".join(lines) + "\n")
    reader = index.IndexReader(path, "b", "p/")
    assert [item.key for item in reader] == ["a", "c"] and "damaged at line 4" in reader.problem

    (tmp_path / index.INDEX_NAME).write_text(header + '\n["a", "1", "e", 1]\n')
    reader = index.IndexReader(path, "b", "p/")
    assert list(reader) == [] and "damaged at line 2" in reader.problem


def test_index_commit_flushes_the_written_files_or_the_filesystem(tmp_path, monkeypatch):
    flushed, synced = [], []
    monkeypatch.setattr(index, "fsync_path", flushed.append)
    monkeypatch.setattr(index, "sync_filesystem", synced.append)
    (tmp_path / "sub").mkdir()
    written = [str(tmp_path / "sub" / "a"), str(tmp_path / "b")]
    write_index(tmp_path, [entry("a")]).commit(written_paths=written)
    assert set(flushed) >= set(written) | {str(tmp_path / "sub"), str(tmp_path)}
    assert synced == []

    flushed.clear()
    write_index(tmp_path, [entry("a")]).commit()
    assert len(synced) == 1 and flushed == [str(tmp_path)]
    assert [item.key for item in index.IndexReader(str(tmp_path / index.INDEX_NAME), "b", "p/")] == ["a"]


def test_version_ids_round_trip_and_old_rows_still_read(tmp_path):
    entries = [entry("a"), index.IndexEntry("b", 2, '"y"', 2.0, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")]
    write_index(tmp_path, entries).commit()
    lines = (tmp_path / index.INDEX_NAME).read_text().splitlines()
    assert json.loads(lines[1]) == ["a", 1, '"e"', 1000.0]
    assert json.loads(lines[2])[4] == "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    assert list(index.IndexReader(str(tmp_path / index.INDEX_NAME), "b", "p/")) == entries


def test_checkpoints_hold_the_written_entries_then_the_rest_of_the_previous_index(tmp_path):
    path = str(tmp_path / index.INDEX_NAME)
    previous = [entry(key, 1, '"old"') for key in ("a", "c", "e", "g")]
    write_index(tmp_path, previous).commit()
    tail = index.PreviousIndexTail(path, "b", "p/")
    writer = write_index(tmp_path, [])

    writer.checkpoint(tail)
    assert list(index.IndexReader(path, "b", "p/")) == previous
    writer.write(entry("a", 2, '"new"'))
    writer.write(entry("b", 2, '"new"'))
    writer.checkpoint(tail)
    assert list(index.IndexReader(path, "b", "p/")) == [entry("a", 2, '"new"'), entry("b", 2, '"new"')] + previous[1:]
    writer.write(entry("c", 2, '"new"'))
    writer.write(entry("f", 2, '"new"'))
    writer.checkpoint(tail)
    reader = index.IndexReader(path, "b", "p/")
    assert [(item.key, item.etag) for item in reader] == [
        ("a", '"new"'),
        ("b", '"new"'),
        ("c", '"new"'),
        ("f", '"new"'),
        ("g", '"old"'),
    ]
    assert reader.problem is None
    writer.write(entry("g", 2, '"new"'))
    writer.commit()
    tail.close()
    assert [item.key for item in index.IndexReader(path, "b", "p/")] == ["a", "b", "c", "f", "g"]


def test_a_checkpoint_ignores_a_previous_index_of_another_bucket(tmp_path):
    path = str(tmp_path / index.INDEX_NAME)
    write_index(tmp_path, [entry("z")], bucket="other").commit()
    tail = index.PreviousIndexTail(path, "b", "p/")
    writer = write_index(tmp_path, [entry("a")])
    writer.checkpoint(tail)
    assert list(index.IndexReader(path, "b", "p/")) == [entry("a")]


def test_expired_previous_folders_are_removed_and_the_others_kept(tmp_path):
    now = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
    expired = index.previous_dir(str(tmp_path), now - datetime.timedelta(seconds=1))
    kept = index.previous_dir(str(tmp_path), now + datetime.timedelta(hours=1))
    for folder in (expired, kept):
        os.makedirs(os.path.join(folder, "sub"))
        open(os.path.join(folder, "sub", "f"), "w").close()
    os.makedirs(os.path.join(str(tmp_path), index.PREVIOUS_DIR_NAME, "not-a-run"))
    assert index.remove_expired_previous(str(tmp_path), now) == [expired]
    assert sorted(os.listdir(os.path.join(str(tmp_path), index.PREVIOUS_DIR_NAME))) == [
        "not-a-run",
        os.path.basename(kept),
    ]
    assert os.path.basename(kept) == "until-20261201T130000Z"
