# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The bucket side of the S3 mirror: the listing, and which key may go to which local path.

ListObjectsV2 returns keys in UTF-8 binary order, which is also the code point order Python
compares strings in; the rest of the mirror relies on that order (check_sorted enforces it).
"""

import fnmatch
import os
import queue
import threading
from collections import deque
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

try:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_message
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import epoch_seconds

RESERVED_PREFIX = ".s3_mirror"
MAX_SEGMENT_BYTES = 255
CREDENTIAL_ERRORS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
)

# version_id: the version a ``version_as_of`` run fetches, None for the current object.
S3Object = namedtuple(
    "S3Object", ["key", "size", "etag", "last_modified", "checksum_algorithms", "version_id"], defaults=(None,)
)


class MirrorError(Exception):
    """A failure with an error code, as AWS errors have; ``resource`` and ``action`` say where, for a whole run."""

    def __init__(self, code, message, resource=None, action=None):
        super().__init__(message)
        self.code = code
        self.resource = resource
        self.action = action


class PathError(Exception):
    code = "UnsafePath"


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
    for segment in relative.split("/"):
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


def open_listing(client, bucket, prefix, operation="list_objects_v2", **parameters):
    """The ListObjectsV2 (or ListObjectVersions) pages of ``bucket`` under ``prefix``, the first one fetched
    now, so that a missing bucket or bad credentials fail (MirrorError) before anything is written."""
    pages = iter(client.get_paginator(operation).paginate(Bucket=bucket, Prefix=prefix, **parameters))
    try:
        first = next(pages, {})
    except NoCredentialsError:
        raise MirrorError(
            "NoCredentials",
            "no AWS credentials found: set access_key/secret_key, profile, or the AWS_* environment",
            bucket,
            "list",
        )
    except ClientError as exc:
        raise MirrorError(error_code(exc), _listing_failure(bucket, exc), bucket, "list")
    except BotoCoreError as exc:
        raise MirrorError(error_code(exc), "could not list bucket {0!r}: {1}".format(bucket, exc), bucket, "list")

    def chained():
        yield first
        yield from pages

    return chained()


def _listing_failure(bucket, exc):
    code, message = error_code(exc), error_message(exc)
    if code == "NoSuchBucket":
        return "bucket {0!r} does not exist (NoSuchBucket)".format(bucket)
    if code in CREDENTIAL_ERRORS:
        return "S3 rejected the credentials listing bucket {0!r}: {1}: {2}".format(bucket, code, message)
    if code == "AccessDenied":
        return (
            "access denied listing bucket {0!r}: the credentials need s3:ListBucket on it "
            "(and s3:GetObject on its objects): {1}".format(bucket, message)
        )
    return "could not list bucket {0!r}: {1}: {2}".format(bucket, code, message)


def listed_objects(pages):
    """The S3Objects of ListObjectsV2 pages, LastModified in seconds since the epoch."""
    for page in pages:
        for item in page.get("Contents", ()):
            yield S3Object(
                key=item["Key"],
                size=item["Size"],
                etag=item.get("ETag", ""),
                last_modified=epoch_seconds(item["LastModified"]),
                checksum_algorithms=tuple(item.get("ChecksumAlgorithm", ())),
            )


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


def objects_as_of(pages, moment, oldest=None):
    """The S3Objects of ListObjectVersions pages as the bucket held them at ``moment`` (seconds since the
    epoch): for each key, its newest version or delete marker from then on or before; a key whose newest
    one then is a delete marker, or that had none yet, is left out.

    S3 lists versions by key, newest first, and delete markers apart from them in each page; a key's
    versions may continue on the next page, so one key at a time is held.  ``oldest``, a list, receives
    the LastModified of the oldest version or marker seen (to tell a moment before the bucket held
    anything from an empty past).
    """
    current_key = None
    chosen = False
    for page in pages:
        items = [(item, False) for item in page.get("Versions", ())]
        items.extend((item, True) for item in page.get("DeleteMarkers", ()))
        # Within a key, newest first; IsLatest breaks a tie of LastModified.
        items.sort(
            key=lambda pair: (pair[0]["Key"], -epoch_seconds(pair[0]["LastModified"]), not pair[0].get("IsLatest"))
        )
        for item, is_marker in items:
            last_modified = epoch_seconds(item["LastModified"])
            if oldest is not None and (not oldest or last_modified < oldest[0]):
                oldest[:] = [last_modified]
            if item["Key"] != current_key:
                current_key, chosen = item["Key"], False
            if chosen or last_modified > moment:
                continue
            chosen = True
            if is_marker:
                continue
            yield S3Object(
                key=item["Key"],
                size=item["Size"],
                etag=item.get("ETag", ""),
                last_modified=last_modified,
                checksum_algorithms=tuple(item.get("ChecksumAlgorithm", ())),
                version_id=item.get("VersionId"),
            )


class _Stop(Exception):
    pass


def parallel_pages(client, bucket, prefix, workers, pages, depth=4):
    """ListObjectsV2 pages of ``bucket`` under ``prefix`` in key order, the key space split at its folders.

    ``pages``: the pages of the listing of ``prefix`` with the delimiter ``/`` (open_listing), which
    name the folders (common prefixes) of that level.  The keys under one folder are a contiguous
    range in key order, so the whole listing is the level's own keys and its folders' listings,
    concatenated in the order S3 returns them: up to ``workers`` folders ahead of the one being
    read are listed concurrently, each into a queue of at most two pages, so memory stays bounded.
    A level with a single folder and no key of its own is descended into (up to ``depth`` levels);
    a level with no folder is one stream, the plain listing.
    """
    pages = iter(pages)
    page = next(pages, {})
    paginator = client.get_paginator("list_objects_v2")
    for _level in range(depth):
        folders = page.get("CommonPrefixes", ())
        if len(folders) != 1 or page.get("Contents") or page.get("IsTruncated"):
            break
        pages = iter(paginator.paginate(Bucket=bucket, Prefix=folders[0]["Prefix"], Delimiter="/"))
        page = next(pages, {})
    yield from _concatenated(client, bucket, page, pages, workers)


def _level_items(page, pages):
    """The keys and folders of a delimiter listing, in key order: ``(item, is_folder)``."""
    while page is not None:
        items = [(item["Key"], item, False) for item in page.get("Contents", ())]
        items.extend((folder["Prefix"], folder, True) for folder in page.get("CommonPrefixes", ()))
        items.sort(key=lambda triple: triple[0])
        for _name, item, is_folder in items:
            yield item, is_folder
        page = next(pages, None)


def _concatenated(client, bucket, page, pages, workers):
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers))

    def produce(folder, pages_queue):
        try:
            for listed in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
                _put(pages_queue, listed, stop)
            _put(pages_queue, None, stop)
        except _Stop:
            return
        except Exception as exc:  # pylint: disable=broad-except
            try:
                _put(pages_queue, exc, stop)
            except _Stop:
                return

    ahead = deque()
    keys = []
    items = _level_items(page, pages)
    try:
        exhausted = False
        while True:
            while not exhausted and len(ahead) <= workers:
                following = next(items, None)
                if following is None:
                    exhausted = True
                    break
                item, is_folder = following
                if is_folder:
                    pages_queue = queue.Queue(maxsize=2)
                    pool.submit(produce, item["Prefix"], pages_queue)
                    ahead.append(pages_queue)
                else:
                    ahead.append(item)
            if not ahead:
                break
            current = ahead.popleft()
            if isinstance(current, dict):
                keys.append(current)
                if len(keys) >= 1000 or not ahead or not isinstance(ahead[0], dict):
                    yield {"Contents": keys}
                    keys = []
                continue
            while True:
                listed = current.get()
                if listed is None:
                    break
                if isinstance(listed, Exception):
                    raise listed
                yield listed
    finally:
        stop.set()
        pool.shutdown(wait=True)


def _put(pages_queue, value, stop):
    # A listing abandoned without being closed must not keep the module from exiting.
    while not stop.is_set() and threading.main_thread().is_alive():
        try:
            pages_queue.put(value, timeout=0.2)
            return
        except queue.Full:
            continue
    raise _Stop()
