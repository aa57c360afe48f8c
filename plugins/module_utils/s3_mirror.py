# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Pure logic of the S3 mirror: key -> local path, filters, the local index, and what to do with each key.

The index is a JSON-lines file sorted by key, the order in which ListObjectsV2 returns keys
(UTF-8 binary order, which is also the code point order Python compares strings in).  The
listing and the old index are merged as two sorted streams, so memory does not grow with
the bucket: only the keys in flight and the files to delete are held.
"""

import base64
import datetime
import email.utils
import ctypes
import fnmatch
import hashlib
import json
import os
import re
import zlib
from collections import namedtuple

INDEX_NAME = ".s3_mirror_index.jsonl"
LOCK_NAME = ".s3_mirror.lock"
TEMP_DIR_NAME = ".s3_mirror_tmp"
RESERVED_PREFIX = ".s3_mirror"
INDEX_FORMAT = "opsvault.aws_backup.s3_mirror"
INDEX_VERSION = 1
MAX_SEGMENT_BYTES = 255
MTIME_TOLERANCE = 1.0

IndexEntry = namedtuple("IndexEntry", ["key", "size", "etag", "last_modified"])
S3Object = namedtuple("S3Object", ["key", "size", "etag", "last_modified", "checksum_algorithms"])

MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
MULTIPART_ETAG = re.compile(r'^"?([0-9a-f]{32})-([0-9]+)"?$')


def epoch_seconds(timestamp):
    """Seconds since the epoch of an S3 timestamp: ISO 8601 text as S3 lists it
    (``2026-11-23T01:02:03.000Z``), RFC 1123 text, or a datetime; raises ValueError otherwise."""
    if isinstance(timestamp, datetime.datetime):
        moment = timestamp
    else:
        text = timestamp.strip()
        try:
            moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            moment = email.utils.parsedate_to_datetime(text)  # RFC 1123, as in HTTP headers
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def normalize_prefix(prefix):
    """A key prefix read as a folder: ``photos`` and ``photos/`` both mean the keys under ``photos/``."""
    prefix = (prefix or "").lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def local_path(key, prefix=""):
    """Where a key goes under dest: ``(relative_path, is_directory, reason)``.

    ``relative_path`` is None when the key must not be written, and ``reason`` says why.
    The mapping is one-to-one for the keys it accepts: a key whose path would need
    normalising (``a//b``, ``./a``) is refused rather than merged with another key.
    """
    if not key.startswith(prefix):
        return None, False, "key is outside the prefix {0!r}".format(prefix)
    relative = key[len(prefix) :]
    if "\x00" in relative:
        return None, False, "key contains a NUL character"
    if "\\" in relative:
        return None, False, "key contains a backslash, a path separator on some systems"
    if relative.startswith("/"):
        return None, False, "key is an absolute path"
    is_directory = relative.endswith("/") or relative == ""
    if is_directory:
        relative = relative[:-1] if relative else ""
        if not relative:
            return "", True, None
    segments = relative.split("/")
    for segment in segments:
        if segment == "":
            return None, False, "key has an empty path segment ('//')"
        if segment in (".", ".."):
            return None, False, "key has a {0!r} path segment".format(segment)
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return None, False, "key has a path segment longer than {0} bytes".format(MAX_SEGMENT_BYTES)
        if segment.startswith(RESERVED_PREFIX):
            return None, False, "name {0!r} is reserved for the mirror's own files".format(segment)
    return relative, is_directory, None


def is_inside(root, path):
    """True when ``path`` (already resolved) is ``root`` or below it."""
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class KeyFilter:
    """include/exclude globs on the path relative to the prefix; ``*`` also matches ``/``."""

    def __init__(self, include=None, exclude=None):
        self.include = list(include or [])
        self.exclude = list(exclude or [])

    def __call__(self, relative):
        if self.include and not any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.include):
            return False
        return not any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.exclude)


class CollisionTracker:
    """Finds keys that need a path another key already holds as a file (``a`` then ``a/b`` or ``a/``).

    Keys arrive sorted, so every key that starts with a given string follows it in one run:
    a stack of the file paths that are string prefixes of the current key is all it keeps.
    """

    def __init__(self):
        self._files = []

    def check(self, relative, is_directory):
        """Record a path; returns the file path it collides with, or None."""
        while self._files and not relative.startswith(self._files[-1]):
            self._files.pop()
        for file_path in self._files:
            if relative.startswith(file_path + "/") or (is_directory and relative == file_path):
                return file_path
        if not is_directory:
            self._files.append(relative)
        return None


def parse_max_delete(value):
    """``None`` (no limit), ``"25"`` (files) or ``"10%"`` (of the files in the index) -> ``(number, is_percent)``."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    is_percent = text.endswith("%")
    number_text = text[:-1].strip() if is_percent else text
    try:
        number = float(number_text) if is_percent else int(number_text)
    except ValueError:
        raise ValueError("max_delete must be a number of files (25) or a percentage (10%), got {0!r}".format(value))
    if number < 0 or (is_percent and number > 100):
        raise ValueError("max_delete must be between 0 and 100% or a count of at least 0, got {0!r}".format(value))
    return number, is_percent


def delete_limit_exceeded(to_delete, indexed, max_delete):
    """None when ``to_delete`` files may go, else the reason (``max_delete`` from parse_max_delete)."""
    if max_delete is None or to_delete == 0:
        return None
    number, is_percent = max_delete
    if is_percent:
        share = 100.0 * to_delete / indexed if indexed else 100.0
        if share > number:
            return "{0} of {1} mirrored files ({2:.1f}%) would be deleted; max_delete is {3:g}%".format(
                to_delete, indexed, share, number
            )
        return None
    if to_delete > number:
        return "{0} files would be deleted; max_delete is {1}".format(to_delete, number)
    return None


def decide(obj, entry, local_stat):
    """What to do with a listed object: ``(download, reason)``.

    ``entry`` is its index entry or None, ``local_stat`` the ``os.stat_result`` of its local
    file or None.  Size and ETag decide whether the object changed, so an object rewritten
    with the same size is fetched again; the local file must still be the one the index
    describes (same size and mtime), else it is fetched again too.
    """
    if entry is None:
        return True, "new"
    if entry.size != obj.size or entry.etag != obj.etag:
        return True, "changed"
    if abs(entry.last_modified - obj.last_modified) >= MTIME_TOLERANCE:
        return True, "changed"
    if local_stat is None:
        return True, "missing locally"
    if local_stat.st_size != obj.size or abs(local_stat.st_mtime - obj.last_modified) >= MTIME_TOLERANCE:
        return True, "local copy differs"
    return False, "unchanged"


def merge(listing, index_entries):
    """Merge two key-sorted streams: yields ``(object or None, entry or None)`` in key order."""
    entries = iter(index_entries)
    entry = next(entries, None)
    for obj in listing:
        while entry is not None and entry.key < obj.key:
            yield None, entry
            entry = next(entries, None)
        if entry is not None and entry.key == obj.key:
            yield obj, entry
            entry = next(entries, None)
        else:
            yield obj, None
    while entry is not None:
        yield None, entry
        entry = next(entries, None)


def check_sorted(objects):
    """Pass objects through, raising ValueError when the listing is not in key order."""
    previous = None
    for obj in objects:
        if previous is not None and obj.key <= previous:
            raise ValueError(
                "the bucket listing is not in key order ({0!r} after {1!r}); "
                "directory buckets (S3 Express One Zone) are not supported".format(obj.key, previous)
            )
        previous = obj.key
        yield obj


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
            header = self._parse(handle.readline())
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
                entry = self._entry(line)
                if entry is None or (previous is not None and entry.key <= previous):
                    self.problem = "index {0} is damaged at line {1}; the keys from there on are fetched again".format(
                        self.path, number
                    )
                    return
                previous = entry.key
                self.count += 1
                yield entry

    @staticmethod
    def _parse(line):
        try:
            return json.loads(line)
        except ValueError:
            return None

    def _entry(self, line):
        item = self._parse(line)
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
    """Writes a new index to a temporary file beside the old one; ``commit`` renames it into place."""

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


def md5_of_etag(etag):
    """The hex MD5 an ETag stands for when it is a plain MD5 (single-part, not SSE-KMS/SSE-C), else None."""
    match = MD5_ETAG.match(etag or "")
    return match.group(1) if match else None


def multipart_etag_parts(etag):
    """The part count of a multipart ETag (``"<md5>-<parts>"``), else None."""
    match = MULTIPART_ETAG.match(etag or "")
    return int(match.group(2)) if match else None


def multipart_etag(path, part_sizes, chunk_size=1024 * 1024):
    """The multipart ETag of a local file cut into parts of the given sizes (MD5 of the parts' MD5s)."""
    digests = []
    with open(path, "rb") as handle:
        for part_size in part_sizes:
            part = hashlib.md5()
            remaining = part_size
            while remaining > 0:
                chunk = handle.read(min(chunk_size, remaining))
                if not chunk:
                    break
                part.update(chunk)
                remaining -= len(chunk)
            digests.append(part.digest())
    return '"{0}-{1}"'.format(hashlib.md5(b"".join(digests)).hexdigest(), len(part_sizes))


def uniform_part_sizes(total_size, first_part_size, parts_count):
    """Part sizes when every part but the last has the size of the first (what SDKs upload)."""
    if parts_count < 1 or first_part_size <= 0:
        return None
    sizes = [first_part_size] * (parts_count - 1)
    last = total_size - first_part_size * (parts_count - 1)
    if last <= 0 or last > first_part_size:
        return None
    return sizes + [last]


COMPUTABLE_CHECKSUMS = ("ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC32")


class Digests:
    """MD5 and the additional checksums S3 returns that the standard library computes (SHA256, SHA1, CRC32)."""

    def __init__(self, md5=True, checksums=COMPUTABLE_CHECKSUMS):
        self.md5 = hashlib.md5() if md5 else None
        self.sha256 = hashlib.sha256() if "ChecksumSHA256" in checksums else None
        self.sha1 = hashlib.sha1() if "ChecksumSHA1" in checksums else None
        self.crc32 = 0 if "ChecksumCRC32" in checksums else None

    def update(self, chunk):
        if self.md5 is not None:
            self.md5.update(chunk)
        if self.sha256 is not None:
            self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        if self.crc32 is not None:
            self.crc32 = zlib.crc32(chunk, self.crc32)

    def checksum(self, name):
        """The base64 value of ChecksumSHA256/ChecksumSHA1/ChecksumCRC32, or None when not computed."""
        if name == "ChecksumSHA256" and self.sha256 is not None:
            return base64.b64encode(self.sha256.digest()).decode()
        if name == "ChecksumSHA1" and self.sha1 is not None:
            return base64.b64encode(self.sha1.digest()).decode()
        if name == "ChecksumCRC32" and self.crc32 is not None:
            return base64.b64encode(self.crc32.to_bytes(4, "big")).decode()
        return None


def digest_file(path, md5=True, checksums=COMPUTABLE_CHECKSUMS, chunk_size=1024 * 1024):
    digests = Digests(md5, checksums)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digests.update(chunk)
    return digests


def checksum_mismatches(digests, response):
    """Names of the full-object checksums in a GetObject/HeadObject response that the data does not match."""
    if response.get("ChecksumType") == "COMPOSITE":
        return []
    mismatches = []
    for name in COMPUTABLE_CHECKSUMS:
        expected = response.get(name)
        computed = digests.checksum(name)
        if expected and "-" not in expected and computed is not None and computed != expected:
            mismatches.append(name)
    return mismatches
