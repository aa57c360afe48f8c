# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The S3 mirror's own files in dest: the index of mirrored objects, the lock, the temporary folder,
and flushing to disk.

The index is a JSON-lines file sorted by key, a header line first.  It is read lazily and
written anew each run beside the old one, then renamed into place, so a crash leaves either
the old or the new index, each describing files that are complete on disk.
"""

import ctypes
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
INDEX_FORMAT = "opsvault.aws_backup.s3_mirror"
INDEX_VERSION = 1

IndexEntry = namedtuple("IndexEntry", ["key", "size", "etag", "last_modified"])


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
            header = _parse(handle.readline())
            if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
                self.problem = "index {0} is not an s3_mirror index; every object is fetched again".format(self.path)
                return
            if header.get("version") != INDEX_VERSION:
                self.problem = "index {0} has version {1}; every object is fetched again".format(
                    self.path, header.get("version")
                )
                return
            if header.get("bucket") != self.bucket or header.get("prefix") != self.prefix:
                self.problem = (
                    "index {0} was written for s3://{1}/{2}, not s3://{3}/{4}; it is ignored and "
                    "nothing it lists is deleted".format(
                        self.path, header.get("bucket"), header.get("prefix"), self.bucket, self.prefix
                    )
                )
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


def _parse(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _entry(line):
    item = _parse(line)
    if not isinstance(item, list) or len(item) != 4:
        return None
    key, size, etag, last_modified = item
    if not isinstance(key, str) or not isinstance(size, int) or not isinstance(etag, str):
        return None
    if not isinstance(last_modified, (int, float)):
        return None
    return IndexEntry(key, size, etag, float(last_modified))


def index_header(bucket, prefix):
    return json.dumps({"format": INDEX_FORMAT, "version": INDEX_VERSION, "bucket": bucket, "prefix": prefix})


def index_line(entry):
    return json.dumps([entry.key, entry.size, entry.etag, entry.last_modified], ensure_ascii=False)


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
