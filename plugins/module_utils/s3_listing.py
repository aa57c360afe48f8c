# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The bucket side of the S3 mirror: the listing, and which key may go to which local path.

ListObjectsV2 returns keys in UTF-8 binary order, which is also the code point order Python
compares strings in; the rest of the mirror relies on that order (check_sorted enforces it).
"""

import fnmatch
import functools
import os
import threading
from collections import deque
from collections import namedtuple

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
    parent, _slash, name = relative.rpartition("/")
    reason = (_parent_problem(parent) if parent else None) or _segment_problem(name)
    if reason is not None:
        return None, False, reason
    return relative, is_directory, None


@functools.lru_cache(maxsize=256)
def _parent_problem(parent):
    """What is wrong with a path's folders, if anything; the keys of one folder come together, so this is
    worked out once per folder."""
    for segment in parent.split("/"):
        reason = _segment_problem(segment)
        if reason is not None:
            return reason
    return None


def _segment_problem(segment):
    if segment == "":
        return "key has an empty path segment ('//')"
    if segment in (".", ".."):
        return "key has a {0!r} path segment".format(segment)
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return "key has a path segment longer than {0} bytes".format(MAX_SEGMENT_BYTES)
    if segment.startswith(RESERVED_PREFIX):
        return "name {0!r} is reserved for the mirror's own files".format(segment)
    return None


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


def parallel_pages(client, bucket, prefix, workers, pages):
    """ListObjectsV2 pages of ``bucket`` under ``prefix`` in key order, the key space split at its folders.

    ``pages``: the pages of the listing of ``prefix`` with the delimiter ``/`` (open_listing), which
    name the folders (common prefixes) of that level.  The keys under one folder are a contiguous
    range in key order, so the whole listing is the level's own keys and its folders' listings,
    concatenated in the order S3 returns them.  Each folder is listed by its own thread, up to
    ``workers`` folders ahead of the one being read in each level and ``2 * workers`` over all
    levels, and up to ``workers`` ListObjectsV2 requests are in flight at once.  While the listing
    has found fewer folders than ``workers``, a folder is itself split the same way (listed with the
    delimiter, its subfolders listed apart); after that, a folder is listed in one stream, so a
    bucket of many small folders is not listed one small request per folder.  A level without
    folders is one stream, the plain listing.  The listings ahead of the one being read share a budget
    of ``PAGES_AHEAD_PER_WORKER * workers`` pages, and the one being read hands on at most two, so the
    pages held are bounded by ``workers``, not by the bucket.
    """
    listing = _SplitListing(client, bucket, workers)
    try:
        yield from listing.level(pages)
    finally:
        listing.close()


# Pages (of up to 1,000 keys, under a megabyte parsed) the folders ahead of the one being read may hold,
# per worker: a folder is one stream of pages, so what keeps the listings ahead busy is how far they may
# read ahead of the reader.
PAGES_AHEAD_PER_WORKER = 8
# Pages the listing being read hands on before they are read.
PAGES_IN_FRONT = 2


class _SplitListing:
    def __init__(self, client, bucket, workers):
        self.paginator = client.get_paginator("list_objects_v2")
        self.bucket = bucket
        self.workers = max(1, workers)
        self.requests = threading.BoundedSemaphore(self.workers)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.folders_found = 0
        # Folders listed ahead of the ones being read, over all levels: what bounds the listings running.
        self.ahead_slots = threading.BoundedSemaphore(2 * self.workers)
        # Guards every folder's queue, ``pages_ahead`` and which folders are being read.
        self.handed_on = threading.Condition()
        self.pages_ahead = 0
        self.page_budget = PAGES_AHEAD_PER_WORKER * self.workers
        self.threads = set()

    def pages(self, prefix, delimiter):
        """The pages of one listing, each requested while holding one of the ``workers`` request slots."""
        parameters = {"Delimiter": "/"} if delimiter else {}
        pages = iter(self.paginator.paginate(Bucket=self.bucket, Prefix=prefix, **parameters))
        while True:
            with self.requests:
                page = next(pages, None)
            if page is None:
                return
            yield page

    def level(self, pages, folder=None):
        """The keys of a delimiter listing (of ``folder``, None at the top) and the listings of its folders,
        in key order."""
        ahead = deque()  # the level's next keys (dicts) and folders (_Folder), in key order
        keys = []
        items = self._items(pages)
        exhausted = False
        while True:
            for entry in ahead:
                if _waiting(entry) and not self._start(entry, reserved=True):
                    break
            # Read on while the folders ahead found slots to be listed in.
            while not exhausted and len(ahead) <= self.workers and not (ahead and _waiting(ahead[-1])):
                following = next(items, None)
                if following is None:
                    exhausted = True
                elif following[1]:
                    ahead.append(_Folder(following[0]["Prefix"], folder))
                    self._start(ahead[-1], reserved=True)
                else:
                    ahead.append(following[0])
            if not ahead:
                return
            current = ahead.popleft()
            if isinstance(current, dict):
                keys.append(current)
                if len(keys) >= 1000 or not ahead or not isinstance(ahead[0], dict):
                    yield {"Contents": keys}
                    keys = []
                continue
            if _waiting(current):
                self._start(current, reserved=False)
            with self.handed_on:
                current.being_read = True
                self.handed_on.notify_all()
            try:
                while True:
                    listed = self._get(current)
                    if listed is None:
                        break
                    if isinstance(listed, Exception):
                        raise listed
                    yield listed
            finally:
                if current.reserved:
                    self.ahead_slots.release()

    def _items(self, pages):
        """``(item, is_folder)`` of a delimiter listing in key order; counts the folders found."""
        for page in pages:
            folders = page.get("CommonPrefixes", ())
            with self.lock:
                self.folders_found += len(folders)
            items = [(item["Key"], item, False) for item in page.get("Contents", ())]
            items.extend((folder["Prefix"], folder, True) for folder in folders)
            items.sort(key=lambda triple: triple[0])
            for _name, item, is_folder in items:
                yield item, is_folder

    def _start(self, folder, reserved):
        """Start a thread listing ``folder`` (see ``_put`` for how many pages it hands on), split while few
        folders are known.  ``reserved``: only with one of the slots for folders listed ahead of the one
        being read."""
        if reserved and not self.ahead_slots.acquire(blocking=False):
            return False
        folder.reserved = reserved
        folder.pages = deque()
        with self.lock:
            split = self.folders_found < self.workers

        def produce():
            try:
                if split:
                    pages = self.level(self.pages(folder.prefix, True), folder)
                else:
                    pages = self.pages(folder.prefix, False)
                for page in pages:
                    self._put(folder, page)
                self._put(folder, None)
            except _Stop:
                return
            except Exception as exc:  # pylint: disable=broad-except
                try:
                    self._put(folder, exc)
                except _Stop:
                    return
            finally:
                with self.lock:
                    self.threads.discard(threading.current_thread())

        thread = threading.Thread(target=produce, daemon=True)
        with self.lock:
            self.threads.add(thread)
        thread.start()
        return True

    def _running(self):
        # A listing abandoned without being closed must not keep the module from exiting.
        return not self.stop.is_set() and threading.main_thread().is_alive()

    def _put(self, folder, value):
        """Hand on a page (or the end, None, or an exception) of ``folder``'s listing: at most
        PAGES_IN_FRONT while it is being read (the reader takes them at once), else one of the budget's.

        The folder being read never waits for the budget, so the listing always moves on."""
        with self.handed_on:
            while self._running():
                in_front = _in_front(folder)
                if not isinstance(value, dict):
                    budgeted = False
                elif in_front and len(folder.pages) < PAGES_IN_FRONT:
                    budgeted = False
                elif not in_front and self.pages_ahead < self.page_budget:
                    budgeted = True
                    self.pages_ahead += 1
                else:
                    self.handed_on.wait(0.2)
                    continue
                folder.pages.append((value, budgeted))
                self.handed_on.notify_all()
                return
        raise _Stop()

    def _get(self, folder):
        with self.handed_on:
            while self._running():
                if folder.pages:
                    value, budgeted = folder.pages.popleft()
                    if budgeted:
                        self.pages_ahead -= 1
                    self.handed_on.notify_all()
                    return value
                self.handed_on.wait(0.2)
        raise _Stop()

    def close(self):
        self.stop.set()
        with self.handed_on:
            self.handed_on.notify_all()
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join()


class _Folder:
    """A folder of a level (of ``parent``'s listing, None at the top), and the pages its listing hands on
    once it is started: ``(page, taken from the budget)``."""

    def __init__(self, prefix, parent):
        self.prefix = prefix
        self.parent = parent
        self.pages = None
        self.reserved = False
        self.being_read = False


def _waiting(entry):
    return isinstance(entry, _Folder) and entry.pages is None


def _in_front(folder):
    """Whether the top-level reader is reading ``folder``'s pages now: it and every folder it is in are
    being read."""
    while folder is not None:
        if not folder.being_read:
            return False
        folder = folder.parent
    return True
