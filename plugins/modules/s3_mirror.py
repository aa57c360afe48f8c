#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: s3_mirror
short_description: Mirror an S3 bucket or prefix into a local directory, safely and incrementally
version_added: 0.1.0
description:
  - Downloads the objects under O(prefix) of O(bucket) into O(dest), keeping the key's path below the prefix.
  - Keeps an index of the mirrored objects (key, size, ETag, LastModified) in O(dest). An object whose size,
    ETag or LastModified differs from the index, or whose local file is missing or altered, is downloaded
    again; everything else is left alone without a request. An object rewritten with the same size is
    fetched again, because its ETag changed.
  - Every file is written to a temporary name in O(dest), verified, given the object's LastModified as
    mtime, and renamed into place. An interrupted run leaves no partial file under a real name, and the
    next run completes the mirror.
  - Verifies the MD5 of single-part objects against their ETag, the multipart ETag of multipart objects,
    and the object's additional checksum (SHA256, SHA1, CRC32; others through botocore) where S3 has one.
    A mismatch is an error for that key and the previous local copy is kept.
  - Never writes outside O(dest). Keys with C(..) or C(.) segments, empty segments, absolute paths, NUL
    characters or backslashes, and keys that need a path another key holds as a file are left alone and
    listed in RV(skipped_keys) with the reason. A key whose path passes through a symlink in O(dest) is not
    written (or deleted) and is an error. Keys ending in C(/) (folder markers) become directories.
  - The listing is read page by page and merged with the sorted index as it arrives, so memory does not
    grow with the bucket. Small objects are fetched with one GET each on a bounded thread pool; objects of
    O(multipart_threshold) bytes or more go through the S3 transfer manager in concurrent ranged GETs.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  bucket:
    description: The bucket to mirror.
    type: str
    required: true
  prefix:
    description:
      - Only keys under this prefix are mirrored, and the prefix is removed from their local paths.
      - It is read as a folder, V(photos) and V(photos/) both mean the keys under C(photos/).
    type: str
    default: ""
  dest:
    description:
      - The local directory. It is created when missing.
      - The module keeps its index (C(.s3_mirror_index.jsonl)), a lock file and a temporary folder in it;
        keys whose names start with C(.s3_mirror) are therefore not mirrored.
    type: path
    required: true
  include:
    description:
      - Glob patterns on the path below the prefix; when given, only matching keys are mirrored.
      - C(*) also matches C(/), so V(*.jpg) matches C(2026/11/cat.jpg). Matching is case-sensitive.
    type: list
    elements: str
    default: []
  exclude:
    description: Glob patterns on the path below the prefix; matching keys are not mirrored.
    type: list
    elements: str
    default: []
  delete:
    description:
      - Delete local files that the module wrote earlier (they are in its index) and whose object is gone.
      - Files in O(dest) that the module did not write are never deleted.
      - With V(false), such files are kept and listed in RV(orphaned_files).
    type: bool
    default: false
  max_delete:
    description:
      - With O(delete=true), refuse to delete anything when more than this many files would go, either a
        count (V(25)) or a percentage of the mirrored files (V(10%)). The downloads still happen, and the
        task fails naming the limit.
      - Unset means no limit.
    type: str
  max_concurrency:
    description: The most GET requests in flight at once.
    type: int
    default: 32
  multipart_threshold:
    description: Objects of this many bytes or more are fetched in ranged parts of this size by the transfer manager.
    type: int
    default: 8388608
  fsync:
    description:
      - Flush the downloaded files to disk before the index is replaced, so every file the index lists survives
        a power loss; a file written after the last index is fetched again by the next run. A run that wrote
        few files flushes each of them, a larger one flushes the filesystem of O(dest) once (C(syncfs)).
    type: bool
    default: true
  report_limit:
    description: The most entries returned in each of the lists of keys and files; the counts are always complete.
    type: int
    default: 100
notes:
  - Requires C(s3:ListBucket) on the bucket and C(s3:GetObject) on its objects.
  - Supports check mode, which lists what would be downloaded and deleted, and writes nothing.
  - Throttled requests are retried with botocore's adaptive retry mode.
  - Directory buckets (S3 Express One Zone) are not supported, their listings are not sorted by key.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Mirror the images of a bucket onto the backup host
  opsvault.aws_backup.s3_mirror:
    bucket: my-images
    dest: /home/user/myS3backup
    include: ["*.jpg", "*.jpeg", "*.png"]

- name: Keep an exact copy of a prefix, removing files whose object was deleted, ten at most
  opsvault.aws_backup.s3_mirror:
    bucket: my-images
    prefix: uploads/
    dest: /srv/backup/uploads
    delete: true
    max_delete: 10
  register: mirror

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ mirror.counts }} ({{ mirror.bytes.downloaded }} bytes)"
"""

RETURN = r"""
counts:
  description: How many keys went which way. In check mode, what would happen.
  returned: always
  type: dict
  contains:
    listed:
      description: Keys listed under the prefix.
      type: int
    downloaded:
      description: Objects downloaded (new or changed).
      type: int
    unchanged:
      description: Objects already mirrored, not downloaded.
      type: int
    directories:
      description: Directories created for folder-marker keys.
      type: int
    excluded:
      description: Keys left out by O(include) or O(exclude).
      type: int
    skipped:
      description: Keys left alone because of their name, listed in RV(skipped_keys).
      type: int
    deleted:
      description: Local files deleted because their object is gone.
      type: int
    orphaned:
      description: Local files whose object is gone that were kept.
      type: int
    errors:
      description: Keys or steps that failed, listed in RV(errors).
      type: int
  sample: {"listed": 2004, "downloaded": 20, "unchanged": 1984, "directories": 0, "excluded": 0,
           "skipped": 0, "deleted": 0, "orphaned": 0, "errors": 0}
bytes:
  description: Bytes downloaded, and bytes of the objects listed.
  returned: always
  type: dict
  sample: {"downloaded": 20480, "listed": 104857600}
downloaded_keys:
  description: The first O(report_limit) objects downloaded (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"key": "2026/11/cat.jpg", "size": 1024, "reason": "changed"}]
skipped_keys:
  description: The first O(report_limit) keys left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "../etc/passwd", "reason": "key has a '..' path segment"}]
deleted_files:
  description: The first O(report_limit) local files deleted (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/home/user/myS3backup/old.jpg]
orphaned_files:
  description: The first O(report_limit) local files whose object is gone, kept because O(delete=false) or the guard.
  returned: always
  type: list
  elements: str
errors:
  description: The first O(report_limit) failures, each with the key (or step) and the error code.
  returned: always
  type: list
  elements: dict
  sample: [{"key": "2026/11/cat.jpg", "code": "ChecksumMismatch", "message": "MD5 differs from the ETag"}]
dest:
  description: The local directory, resolved.
  returned: always
  type: str
  sample: /home/user/myS3backup
"""

import errno
import fcntl
import os
import shutil
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor

try:
    import botocore.config
    from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError, NoCredentialsError
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber
except ImportError:
    BaseSubscriber = object  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_mirror as mirror
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import MAX_ATTEMPTS
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_message

CREDENTIAL_ERRORS = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
)
CHUNK = 1024 * 1024
FSYNC_EACH_LIMIT = 64
WINDOW = 4096


class MirrorError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class PathError(Exception):
    code = "UnsafePath"


class KnownObject(BaseSubscriber):
    """Hands the listed size and ETag to the transfer manager, so it sends no HeadObject."""

    def __init__(self, size, etag):
        self.size = size
        self.etag = etag

    def on_queued(self, future, **kwargs):
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)


class Report:
    def __init__(self, limit):
        self.limit = limit
        self.counts = dict(
            listed=0, downloaded=0, unchanged=0, directories=0, excluded=0, skipped=0, deleted=0, orphaned=0, errors=0
        )
        self.bytes = dict(downloaded=0, listed=0)
        self.lists = dict(downloaded_keys=[], skipped_keys=[], deleted_files=[], orphaned_files=[], errors=[])

    def add(self, count, list_name=None, item=None):
        self.counts[count] += 1
        if list_name and len(self.lists[list_name]) < self.limit:
            self.lists[list_name].append(item)

    def error(self, key, exc, action=None):
        code = getattr(exc, "code", None) or error_code(exc)
        entry = {"key": key, "code": code, "message": error_message(exc)}
        if action:
            entry["action"] = action
        self.add("errors", "errors", entry)


def listed_objects(pages):
    for page in pages:
        for item in page.get("Contents", []):
            yield mirror.S3Object(
                key=item["Key"],
                size=item["Size"],
                etag=item.get("ETag", ""),
                last_modified=mirror.epoch_seconds(item["LastModified"]),
                checksum_algorithms=tuple(item.get("ChecksumAlgorithm", ())),
            )


class Mirror:
    def __init__(self, module, client, options):
        self.module = module
        self.client = client
        self.bucket = options["bucket"]
        self.prefix = options["prefix"]
        self.dest = options["dest"]
        self.check_mode = module.check_mode
        self.fsync = options["fsync"]
        self.report = Report(options["report_limit"])
        self.filter = mirror.KeyFilter(options["include"], options["exclude"])
        self.temp_dir = os.path.join(self.dest, mirror.TEMP_DIR_NAME)
        self.max_concurrency = options["max_concurrency"]
        self.multipart_threshold = options["multipart_threshold"]
        self.safe_directories = {self.dest}
        self.lock_handle = None
        self.written_paths = []
        self.written_too_many = False

    def fail(self, msg):
        self.module.fail_json(msg=msg, dest=self.dest, **self.result())

    def result(self, changed=False):
        return dict(changed=changed, counts=self.report.counts, bytes=self.report.bytes, **self.report.lists)

    def first_pages(self):
        """The listing as pages, the first one fetched now so a bad bucket or credentials fail before any write."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix))
        try:
            first = next(pages, {})
        except NoCredentialsError:
            self.fail("no AWS credentials found: set access_key/secret_key, profile, or the AWS_* environment")
        except ClientError as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                self.fail("bucket {0!r} does not exist (NoSuchBucket)".format(self.bucket))
            if code in CREDENTIAL_ERRORS:
                self.fail(
                    "S3 rejected the credentials listing bucket {0!r}: {1}: {2}".format(
                        self.bucket, code, error_message(exc)
                    )
                )
            if code == "AccessDenied":
                self.fail(
                    "access denied listing bucket {0!r}: the credentials need s3:ListBucket on it "
                    "(and s3:GetObject on its objects): {1}".format(self.bucket, error_message(exc))
                )
            self.fail("could not list bucket {0!r}: {1}: {2}".format(self.bucket, code, error_message(exc)))
        except BotoCoreError as exc:
            self.fail("could not list bucket {0!r}: {1}".format(self.bucket, exc))

        def chained():
            yield first
            yield from pages

        return chained()

    def prepare_dest(self):
        try:
            os.makedirs(self.dest, exist_ok=True)
        except OSError as exc:
            self.fail("dest {0} cannot be created: {1}".format(self.dest, exc.strerror or exc))
        if not os.path.isdir(self.dest):
            self.fail("dest {0} is not a directory".format(self.dest))
        try:
            self.lock_handle = open(os.path.join(self.dest, mirror.LOCK_NAME), "a")
        except OSError as exc:
            self.fail("dest {0} is not writable: {1}".format(self.dest, exc.strerror or exc))
        try:
            fcntl.flock(self.lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                self.fail("another s3_mirror run is writing to {0}".format(self.dest))
            raise
        try:
            if os.path.islink(self.temp_dir) or os.path.isfile(self.temp_dir):
                os.unlink(self.temp_dir)
            elif os.path.isdir(self.temp_dir):
                shutil.rmtree(self.temp_dir)
            os.mkdir(self.temp_dir)
        except OSError as exc:
            self.fail("dest {0} is not writable: {1}".format(self.dest, exc.strerror or exc))

    def ensure_directory(self, relative):
        """Create dest/relative as a directory, refusing symlinks and files in the way. Returns True if created."""
        created = False
        current = self.dest
        for segment in relative.split("/") if relative else []:
            current = os.path.join(current, segment)
            if current in self.safe_directories:
                continue
            try:
                os.mkdir(current)
                created = True
            except FileExistsError:
                if os.path.islink(current):
                    raise PathError("path passes through the symlink {0}".format(current))
                if not os.path.isdir(current):
                    raise PathError("{0} is a file, not a directory".format(current))
            self.safe_directories.add(current)
        return created

    def place(self, temp_path, obj, relative):
        os.utime(temp_path, (obj.last_modified, obj.last_modified))
        parent = os.path.dirname(relative)
        if parent:
            self.ensure_directory(parent)
        target = os.path.join(self.dest, relative)
        if os.path.isdir(target) and not os.path.islink(target):
            raise PathError("{0} is a directory".format(target))
        os.replace(temp_path, target)
        if len(self.written_paths) < FSYNC_EACH_LIMIT:
            self.written_paths.append(target)
        else:
            self.written_too_many = True
        return mirror.IndexEntry(obj.key, obj.size, obj.etag, obj.last_modified)

    def check_size(self, obj, size):
        if size != obj.size:
            raise MirrorError("SizeMismatch", "got {0} bytes, the listing says {1}".format(size, obj.size))

    def fetch_small(self, obj, relative):
        response = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag, ChecksumMode="ENABLED")
        expected_md5 = None
        if not response.get("SSECustomerAlgorithm") and response.get("ServerSideEncryption") not in (
            "aws:kms",
            "aws:kms:dsse",
        ):
            expected_md5 = mirror.md5_of_etag(response.get("ETag"))
        checksums = [name for name in mirror.COMPUTABLE_CHECKSUMS if response.get(name)]
        digests = mirror.Digests(md5=expected_md5 is not None, checksums=checksums)
        descriptor, temp_path = tempfile.mkstemp(dir=self.temp_dir, prefix="get-")
        try:
            size = 0
            with os.fdopen(descriptor, "wb") as handle:
                try:
                    for chunk in response["Body"].iter_chunks(CHUNK):
                        digests.update(chunk)
                        handle.write(chunk)
                        size += len(chunk)
                except FlexibleChecksumError as exc:
                    names = [name for name in response if name.startswith("Checksum") and name != "ChecksumType"]
                    raise MirrorError("ChecksumMismatch", "{0}: {1}".format(", ".join(names), exc))
            self.check_size(obj, size)
            parts = mirror.multipart_etag_parts(obj.etag)
            if parts:
                self.verify_multipart_etag(temp_path, obj, parts)
            if expected_md5 and digests.md5.hexdigest() != expected_md5:
                raise MirrorError("ChecksumMismatch", "MD5 of the data differs from the ETag {0}".format(obj.etag))
            mismatches = mirror.checksum_mismatches(digests, response)
            if mismatches:
                raise MirrorError("ChecksumMismatch", "{0} of the data differs".format(", ".join(mismatches)))
            return self.place(temp_path, obj, relative)
        except BaseException:
            remove_quietly(temp_path)
            raise

    def fetch_large(self, transfers, obj, relative):
        temp_path = os.path.join(self.temp_dir, "transfer-" + uuid.uuid4().hex)
        try:
            transfers.download(self.bucket, obj.key, temp_path, subscribers=[KnownObject(obj.size, obj.etag)]).result()
            self.check_size(obj, os.stat(temp_path).st_size)
            self.verify_large(temp_path, obj)
            return self.place(temp_path, obj, relative)
        except BaseException:
            remove_quietly(temp_path)
            raise

    def verify_large(self, path, obj):
        head = {}
        checksums = [name for name in mirror.COMPUTABLE_CHECKSUMS if name[len("Checksum") :] in obj.checksum_algorithms]
        if checksums:
            head = self.client.head_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag, ChecksumMode="ENABLED")
        expected_md5 = mirror.md5_of_etag(obj.etag)
        digests = mirror.digest_file(path, md5=expected_md5 is not None, checksums=checksums)
        if expected_md5 and digests.md5.hexdigest() != expected_md5:
            raise MirrorError("ChecksumMismatch", "MD5 of the data differs from the ETag {0}".format(obj.etag))
        mismatches = mirror.checksum_mismatches(digests, head)
        if mismatches:
            raise MirrorError("ChecksumMismatch", "{0} of the data differs".format(", ".join(mismatches)))
        parts = mirror.multipart_etag_parts(obj.etag)
        if parts:
            self.verify_multipart_etag(path, obj, parts)

    def part_size(self, obj, number):
        head = self.client.head_object(Bucket=self.bucket, Key=obj.key, PartNumber=number)
        return head["ContentLength"], head.get("PartsCount")

    def verify_multipart_etag(self, path, obj, parts):
        first_size, parts_count = self.part_size(obj, 1)
        sizes = mirror.uniform_part_sizes(obj.size, first_size, parts_count or parts)
        if sizes and mirror.multipart_etag(path, sizes) == obj.etag:
            return
        sizes = [first_size] + [self.part_size(obj, number)[0] for number in range(2, parts + 1)]
        if sum(sizes) != obj.size or mirror.multipart_etag(path, sizes) != obj.etag:
            raise MirrorError("ChecksumMismatch", "multipart ETag of the data differs from {0}".format(obj.etag))

    def local_stat(self, relative):
        try:
            return os.lstat(os.path.join(self.dest, relative))
        except OSError:
            return None

    def run(self, delete, max_delete):
        pages = self.first_pages()
        if not self.check_mode:
            self.prepare_dest()
        index = mirror.IndexReader(os.path.join(self.dest, mirror.INDEX_NAME), self.bucket, self.prefix)
        writer = None if self.check_mode else mirror.IndexWriter(self.dest, self.bucket, self.prefix, self.fsync)
        collisions = mirror.CollisionTracker()
        gone = []
        window = deque()
        listing_failed = False
        index_errors = []
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_threshold,
            max_request_concurrency=self.max_concurrency,
        )
        transfers = TransferManager(self.client, config)
        small_pool = ThreadPoolExecutor(max_workers=self.max_concurrency)
        large_pool = ThreadPoolExecutor(max_workers=2)

        def settle(slot):
            key, future, kept_entry, obj, reason = slot
            entry = kept_entry
            if future is not None:
                try:
                    entry = future.result()
                    self.report.bytes["downloaded"] += obj.size
                    self.report.add("downloaded", "downloaded_keys", {"key": key, "size": obj.size, "reason": reason})
                except Exception as exc:  # pylint: disable=broad-except
                    if error_code(exc) == "PreconditionFailed":
                        exc = MirrorError(
                            "ObjectChanged", "the object changed while it was fetched; the next run gets it"
                        )
                    self.report.error(key, exc, "download")
            if entry is not None and writer is not None and not index_errors:
                try:
                    writer.write(entry)
                except OSError as exc:
                    index_errors.append(exc)
                    self.report.error(None, exc, "write index")

        def push(slot):
            window.append(slot)
            while window and (len(window) > WINDOW or window[0][1] is None or window[0][1].done()):
                settle(window.popleft())

        try:
            objects = mirror.check_sorted(listed_objects(pages))
            for obj, entry in mirror.merge(objects, index):
                if obj is None:
                    gone.append(entry)
                    push((entry.key, None, entry, None, None))
                    continue
                self.report.counts["listed"] += 1
                self.report.bytes["listed"] += obj.size
                self.handle_object(obj, entry, collisions, push, small_pool, large_pool, transfers)
        except (ClientError, BotoCoreError, ValueError) as exc:
            listing_failed = True
            self.report.error(None, exc, "list")
        finally:
            while window:
                settle(window.popleft())
            small_pool.shutdown(wait=True)
            large_pool.shutdown(wait=True)
            transfers.shutdown()
        if index.problem:
            self.module.warn(index.problem)

        incomplete = listing_failed or bool(index_errors)
        deleted_keys = self.apply_deletes(gone, index.count, delete, max_delete, incomplete)
        if writer is not None:
            index_unchanged = (
                not index.problem
                and not deleted_keys
                and not self.report.counts["downloaded"]
                and writer.count == index.count
            )
            if incomplete or index_unchanged:
                writer.abort()
            else:
                writer.commit(deleted_keys, None if self.written_too_many else self.written_paths)
            self.cleanup_temp()
        counts = self.report.counts
        return bool(counts["downloaded"] or counts["deleted"] or counts["directories"])

    def handle_object(self, obj, entry, collisions, push, small_pool, large_pool, transfers):
        relative, is_directory, reason = mirror.local_path(obj.key, self.prefix)
        if reason is None and not self.filter(relative + "/" if is_directory else relative):
            self.report.counts["excluded"] += 1
            push((obj.key, None, entry, obj, None))
            return
        if reason is None:
            taken_by = collisions.check(relative, is_directory)
            if taken_by is not None:
                reason = "its path {0!r} is taken by the file of key {1!r}".format(relative, self.prefix + taken_by)
        if reason is not None:
            self.report.add("skipped", "skipped_keys", {"key": obj.key, "reason": reason})
            push((obj.key, None, entry, obj, None))
            return
        if is_directory:
            self.mirror_directory(obj, relative)
            return
        local = self.local_stat(relative) if entry is not None else None
        download, why = mirror.decide(obj, entry, local)
        if not download:
            self.report.counts["unchanged"] += 1
            push((obj.key, None, entry, obj, None))
        elif self.check_mode:
            self.report.bytes["downloaded"] += obj.size
            self.report.add("downloaded", "downloaded_keys", {"key": obj.key, "size": obj.size, "reason": why})
            push((obj.key, None, entry, obj, None))
        elif obj.size >= self.multipart_threshold:
            push((obj.key, large_pool.submit(self.fetch_large, transfers, obj, relative), entry, obj, why))
        else:
            push((obj.key, small_pool.submit(self.fetch_small, obj, relative), entry, obj, why))

    def mirror_directory(self, obj, relative):
        path = os.path.join(self.dest, relative)
        if os.path.isdir(path) and not os.path.islink(path):
            return
        if self.check_mode:
            self.report.counts["directories"] += 1
            return
        try:
            if self.ensure_directory(relative):
                self.report.counts["directories"] += 1
        except (OSError, PathError) as exc:
            self.report.error(obj.key, exc, "mkdir")

    def apply_deletes(self, gone, indexed, delete, max_delete, incomplete):
        """Delete (or list) the local files of vanished objects; returns the keys whose files went."""
        candidates = []
        for entry in gone:
            relative, is_directory, reason = mirror.local_path(entry.key, self.prefix)
            if reason is None and not is_directory:
                candidates.append((entry.key, os.path.join(self.dest, relative)))
        refusal = None
        if delete and not incomplete:
            refusal = mirror.delete_limit_exceeded(len(candidates), indexed, max_delete)
            if refusal:
                self.report.error(None, MirrorError("MaxDeleteExceeded", "nothing deleted: " + refusal), "delete")
        if not delete or incomplete or refusal:
            for key, path in candidates:
                self.report.add("orphaned", "orphaned_files", path)
            return []
        deleted = []
        for key, path in candidates:
            if self.check_mode:
                self.report.add("deleted", "deleted_files", path)
                continue
            try:
                if not mirror.is_inside(self.dest, os.path.realpath(os.path.dirname(path))):
                    raise PathError("{0} passes through a symlink out of {1}".format(path, self.dest))
                if os.path.isdir(path) and not os.path.islink(path):
                    raise PathError("{0} is a directory".format(path))
                os.unlink(path)
            except FileNotFoundError:
                pass
            except (OSError, PathError) as exc:
                self.report.error(key, exc, "delete")
                continue
            deleted.append(key)
            self.report.add("deleted", "deleted_files", path)
            self.remove_empty_parents(path)
        return deleted

    def remove_empty_parents(self, path):
        parent = os.path.dirname(path)
        while parent != self.dest and mirror.is_inside(self.dest, parent):
            try:
                os.rmdir(parent)
            except OSError:
                return
            self.safe_directories.discard(parent)
            parent = os.path.dirname(parent)

    def cleanup_temp(self):
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def parse_options(module):
    params = module.params
    try:
        if not params["bucket"] or not params["bucket"].strip():
            raise ValueError("bucket must not be empty")
        if params["max_concurrency"] < 1:
            raise ValueError("max_concurrency must be at least 1, got {0}".format(params["max_concurrency"]))
        if params["multipart_threshold"] < 5 * 1024 * 1024:
            raise ValueError("multipart_threshold must be at least 5 MiB (5242880), S3's smallest part")
        if params["report_limit"] < 0:
            raise ValueError("report_limit must not be negative")
        max_delete = mirror.parse_max_delete(params["max_delete"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return dict(
        bucket=params["bucket"].strip(),
        prefix=mirror.normalize_prefix(params["prefix"]),
        dest=os.path.realpath(params["dest"]),
        include=params["include"],
        exclude=params["exclude"],
        max_concurrency=params["max_concurrency"],
        multipart_threshold=params["multipart_threshold"],
        fsync=params["fsync"],
        report_limit=params["report_limit"],
        max_delete=max_delete,
    )


def main():
    argument_spec = dict(
        bucket=dict(type="str", required=True),
        prefix=dict(type="str", default=""),
        dest=dict(type="path", required=True),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        delete=dict(type="bool", default=False),
        max_delete=dict(type="str"),
        max_concurrency=dict(type="int", default=32),
        multipart_threshold=dict(type="int", default=8 * 1024 * 1024),
        fsync=dict(type="bool", default=True),
        report_limit=dict(type="int", default=100),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = parse_options(module)
    config = botocore.config.Config(
        retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=2 * options["max_concurrency"] + 4,
    )
    [client] = clients_for(module, "s3", config, text_timestamps=True).values()
    job = Mirror(module, client, options)
    changed = job.run(module.params["delete"], options["max_delete"])
    result = dict(job.result(changed), dest=job.dest)
    errors = job.report.lists["errors"]
    if job.report.counts["errors"]:
        module.fail_json(
            msg="{0} error(s) mirroring s3://{1}/{2}: {3}".format(
                job.report.counts["errors"],
                options["bucket"],
                options["prefix"],
                "; ".join(
                    "{0}: {1}: {2}".format(e["key"] or e.get("action"), e["code"], e["message"]) for e in errors[:5]
                ),
            ),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
