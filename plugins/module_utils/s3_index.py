# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The S3 mirror's own files in dest: the index of mirrored objects, the lock, the temporary folder,
and flushing to disk.

The index is a JSON-lines file sorted by key, a header line first.  It is read lazily and
written anew each run beside the old one, then renamed into place, so a crash leaves either
the old or the new index, each describing files that are complete on disk.  While a run goes,
checkpoints replace it the same way: the entries written so far, then the rest of the previous
index, so a killed run loses at most the files completed since the last checkpoint (and the
next run adopts those without a GET when they are complete on disk).
"""

import ctypes
import datetime
import errno
import fcntl
import json
import os
import shutil
from collections import namedtuple

from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError

INDEX_NAME = ".s3_mirror_index.jsonl"
LOCK_NAME = ".s3_mirror.lock"
TEMP_DIR_NAME = ".s3_mirror_tmp"
LAST_RUN_NAME = ".s3_mirror_last_run.json"
PREVIOUS_DIR_NAME = ".s3_mirror_previous"
PREVIOUS_STAMP = "%Y%m%dT%H%M%SZ"
INDEX_FORMAT = "opsvault.aws_backup.s3_mirror"
INDEX_VERSION = 1

# version_id: the object version the file holds, recorded by ``version_as_of`` runs (else None).
IndexEntry = namedtuple("IndexEntry", ["key", "size", "etag", "last_modified", "version_id"], defaults=(None,))


class IndexReader:
    """Reads an index file lazily.

    An index written for another bucket or prefix, or in an unknown format, is ignored as a
    whole; a damaged line ends the reading there.  ``problem`` says what was wrong: the keys
    after it are fetched again and are never deleted, which is the safe side.
    """

    def __init__(self, path, bucket, prefix):
        self.path = path
        self.bucket = bucket
        self.prefix = prefix
        self.problem = None
        self.count = 0

    def __iter__(self):
        try:
            handle = open(self.path, "r", encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self.problem = "index {0} could not be read ({1}); every object is fetched again".format(self.path, exc)
            return
        with handle:
            self.problem = header_problem(self.path, handle.readline(), self.bucket, self.prefix)
            if self.problem:
                return
            previous = None
            for number, line in enumerate(handle, start=2):
                entry = _entry(line)
                if entry is None or (previous is not None and entry.key <= previous):
                    self.problem = "index {0} is damaged at line {1}; the keys from there on are fetched again".format(
                        self.path, number
                    )
                    return
                previous = entry.key
                self.count += 1
                yield entry


def header_problem(path, line, bucket, prefix):
    """None when ``line`` is the header of an index of s3://bucket/prefix, else why it is not."""
    header = _parse(line)
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        return "index {0} is not an s3_mirror index; every object is fetched again".format(path)
    if header.get("version") != INDEX_VERSION:
        return "index {0} has version {1}; every object is fetched again".format(path, header.get("version"))
    if header.get("bucket") != bucket or header.get("prefix") != prefix:
        return (
            "index {0} was written for s3://{1}/{2}, not s3://{3}/{4}; it is ignored and "
            "nothing it lists is deleted".format(path, header.get("bucket"), header.get("prefix"), bucket, prefix)
        )
    return None


def _parse(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _entry(line):
    item = _parse(line)
    if not isinstance(item, list) or len(item) not in (4, 5):
        return None
    key, size, etag, last_modified = item[:4]
    version_id = item[4] if len(item) == 5 else None
    if not isinstance(key, str) or not isinstance(size, int) or not isinstance(etag, str):
        return None
    if not isinstance(last_modified, (int, float)) or not isinstance(version_id, (str, type(None))):
        return None
    return IndexEntry(key, size, etag, float(last_modified), version_id)


def index_header(bucket, prefix):
    return json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION, "bucket": bucket, "prefix": prefix})


def index_line(entry):
    row = [entry.key, entry.size, entry.etag, entry.last_modified]
    if entry.version_id is not None:
        row.append(entry.version_id)
    return json.dumps(row, ensure_ascii=False)


class PreviousIndexTail:
    """The previous index, read from the start of the run, for checkpoints: the entries after a key.

    The handle is opened before any checkpoint replaces the file, so it keeps reading the index the
    run started from.  Keys only grow from one checkpoint to the next, so each line is parsed once
    in the whole run; what follows the key is copied as it is.
    """

    def __init__(self, path, bucket, prefix):
        self._handle = None
        self._pending = None  # (offset, key) of the first line not yet known to be before a checkpoint
        try:
            handle = open(path, "rb")
        except OSError:
            return
        if header_problem(path, handle.readline().decode("utf-8", "replace"), bucket, prefix):
            handle.close()
            return
        self._handle = handle

    def copy_after(self, key, target):
        """Append to ``target`` (binary) the lines of entries after ``key``."""
        if self._handle is None:
            return
        while True:
            if self._pending is None:
                offset = self._handle.tell()
                line = self._handle.readline()
                if not line:
                    return
                entry = _entry(line.decode("utf-8", "replace"))
                # A damaged line is kept as it is: the next run stops reading there, as it would have.
                self._pending = (offset, entry.key if entry is not None else None)
            offset, pending_key = self._pending
            if pending_key is None or key is None or pending_key > key:
                break
            self._pending = None
        self._handle.seek(offset)
        shutil.copyfileobj(self._handle, target, 1024 * 1024)
        self._handle.seek(offset)
        self._handle.readline()

    def close(self):
        if self._handle is not None:
            self._handle.close()


class IndexWriter:
    """Writes a new index to the temporary folder; ``commit`` renames it into place."""

    def __init__(self, dest, bucket, prefix, fsync=True):
        self.path = os.path.join(dest, INDEX_NAME)
        self.temp_path = os.path.join(dest, TEMP_DIR_NAME, INDEX_NAME + ".new")
        self.fsync = fsync
        self.count = 0
        self._previous = None
        self._handle = open(self.temp_path, "w", encoding="utf-8")
        self._handle.write(index_header(bucket, prefix) + "\n")

    def write(self, entry):
        if self._previous is not None and entry.key <= self._previous:
            raise ValueError("index entries out of order: {0!r} after {1!r}".format(entry.key, self._previous))
        self._previous = entry.key
        self._handle.write(index_line(entry) + "\n")
        self.count += 1

    def checkpoint(self, tail):
        """Replace the index by the entries written so far and, after them, the previous index's
        (``tail``, a PreviousIndexTail), once the files written so far are on disk (with fsync)."""
        self._handle.flush()
        checkpoint_path = self.temp_path + ".checkpoint"
        with open(checkpoint_path, "wb") as target, open(self.temp_path, "rb") as written:
            shutil.copyfileobj(written, target, 1024 * 1024)
            tail.copy_after(self._previous, target)
        if self.fsync:
            sync_filesystem(checkpoint_path)
        os.replace(checkpoint_path, self.path)
        if self.fsync:
            fsync_path(os.path.dirname(self.path))

    def commit(self, dropped_keys=(), written_paths=None):
        """Close and rename into place, leaving out ``dropped_keys`` (files deleted after they were written).

        With fsync, the files written in the run reach the disk first: ``written_paths`` one by one
        (with their directories) when the run kept the list, else the whole filesystem (syncfs).
        """
        self._handle.close()
        if dropped_keys:
            self._rewrite_without(set(dropped_keys))
        if self.fsync:
            if written_paths is None:
                sync_filesystem(self.temp_path)
            else:
                for path in sorted(set(written_paths) | {os.path.dirname(path) for path in written_paths}):
                    try:
                        fsync_path(path)
                    except FileNotFoundError:
                        pass
                fsync_path(self.temp_path)
        os.replace(self.temp_path, self.path)
        if self.fsync:
            fsync_path(os.path.dirname(self.path))

    def abort(self):
        self._handle.close()
        try:
            os.unlink(self.temp_path)
        except FileNotFoundError:
            pass

    def _rewrite_without(self, dropped):
        filtered = self.temp_path + ".filtered"
        with open(self.temp_path, "r", encoding="utf-8") as source, open(filtered, "w", encoding="utf-8") as target:
            target.write(source.readline())
            for line in source:
                if json.loads(line)[0] in dropped:
                    self.count -= 1
                    continue
                target.write(line)
        os.replace(filtered, self.temp_path)


def sync_filesystem(path):
    """Flush every file of the filesystem holding ``path`` (Linux syncfs), else of all filesystems."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syncfs(descriptor) == 0:
                return
        except (AttributeError, OSError):
            pass
        os.sync()
    finally:
        os.close(descriptor)


def fsync_path(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def prepare_dest(dest):
    """Create dest, take its lock (so one run at a time writes there) and an empty temporary folder.

    Returns the open lock file: the lock lasts until it is closed.  Raises MirrorError.
    """
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise _dest_error("DestNotCreated", "dest {0} cannot be created: {1}".format(dest, exc.strerror or exc), dest)
    if not os.path.isdir(dest):
        raise _dest_error("DestNotDirectory", "dest {0} is not a directory".format(dest), dest)
    lock = _lock(dest)
    temp_dir = os.path.join(dest, TEMP_DIR_NAME)
    try:
        if os.path.islink(temp_dir) or os.path.isfile(temp_dir):
            os.unlink(temp_dir)
        elif os.path.isdir(temp_dir):
            shutil.rmtree(temp_dir)
        os.mkdir(temp_dir)
    except OSError as exc:
        lock.close()
        raise _not_writable(dest, exc)
    return lock


def _lock(dest):
    try:
        handle = open(os.path.join(dest, LOCK_NAME), "a")
    except OSError as exc:
        raise _not_writable(dest, exc)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise _dest_error("DestLocked", "another s3_mirror run is writing to {0}".format(dest), dest)
        raise
    return handle


def _not_writable(dest, exc):
    return _dest_error("DestNotWritable", "dest {0} is not writable: {1}".format(dest, exc.strerror or exc), dest)


def _dest_error(code, message, dest):
    return MirrorError(code, message, resource=dest, action="prepare dest")


def remove_temp_dir(dest):
    shutil.rmtree(os.path.join(dest, TEMP_DIR_NAME), ignore_errors=True)


def record_complete_run(dest, bucket, prefix, finished_at, listed):
    """Record in dest when the last complete run (every object listed, none failed) finished, for the
    coverage report; written beside the old record, then renamed into place.  Raises OSError."""
    path = os.path.join(dest, LAST_RUN_NAME)
    record = dict(format=INDEX_FORMAT, version=INDEX_VERSION, bucket=bucket, prefix=prefix, listed=listed)
    record["finished_at"] = finished_at.isoformat()
    with open(path + ".new", "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    os.replace(path + ".new", path)


def read_last_run(dest):
    """``(record, problem)``: the last complete run recorded in dest, or None with the reason."""
    path = os.path.join(dest, LAST_RUN_NAME)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            record = _parse(handle.read())
    except FileNotFoundError:
        return None, "no complete s3_mirror run recorded in {0}".format(dest)
    except OSError as exc:
        return None, "{0} could not be read ({1})".format(path, exc.strerror or exc)
    if not isinstance(record, dict) or record.get("format") != INDEX_FORMAT or not record.get("finished_at"):
        return None, "{0} is not an s3_mirror record".format(path)
    return record, None


def previous_dir(dest, until):
    """Where a run that keeps replaced and deleted files until ``until`` (a UTC datetime) puts them."""
    return os.path.join(dest, PREVIOUS_DIR_NAME, "until-" + until.strftime(PREVIOUS_STAMP))


def remove_expired_previous(dest, now):
    """Remove the folders of kept files whose time has passed; returns their paths.  Raises OSError."""
    root = os.path.join(dest, PREVIOUS_DIR_NAME)
    if os.path.islink(root) or not os.path.isdir(root):
        return []
    removed = []
    for name in sorted(os.listdir(root)):
        try:
            until = datetime.datetime.strptime(name, "until-" + PREVIOUS_STAMP).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
        path = os.path.join(root, name)
        if until <= now and not os.path.islink(path) and os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(path)
    if not os.listdir(root):
        os.rmdir(root)
    return removed
