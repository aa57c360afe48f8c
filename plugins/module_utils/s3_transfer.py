# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The S3 mirror's run: the listing merged with the index, fetches of small objects (one GET each,
on a thread pool) and of large ones (ranged GETs through s3transfer), atomic placement under dest,
deletes of vanished objects, and the new index.

Mirror(client, options, check_mode).run() returns a Report; a failure of the whole run (bucket,
credentials, dest) raises MirrorError, and ``mirror.report`` then holds what was done before it.
"""

import os
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor

try:
    from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError
    from s3transfer.manager import TransferConfig, TransferManager
    from s3transfer.subscribers import BaseSubscriber
except ImportError:
    BaseSubscriber = object  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import INDEX_NAME
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import TEMP_DIR_NAME
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import IndexEntry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import IndexReader
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import IndexWriter
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import prepare_dest
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import record_complete_run
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import remove_temp_dir
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import CollisionTracker
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import KeyFilter
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import PathError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import check_sorted
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import is_inside
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import listed_objects
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import local_path
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import open_listing
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import decide
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import delete_limit_exceeded
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import merge
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_report import Report
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import CHUNK
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import COMPUTABLE_CHECKSUMS
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import Digests
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import ObjectVerifier
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import check_digests
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import check_size
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import expected_md5
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import utc_now

# Past this many written files, the index commit flushes the filesystem once instead of each file.
FSYNC_EACH_LIMIT = 64
# Keys in flight between the listing and the index writer, which takes them in key order.
WINDOW = 4096
LARGE_WORKERS = 2


class _KnownObject(BaseSubscriber):
    """Hands the listed size and ETag to the transfer manager, so it sends no HeadObject."""

    def __init__(self, size, etag):
        self.size = size
        self.etag = etag

    def on_queued(self, future, **kwargs):
        future.meta.provide_transfer_size(self.size)
        future.meta.provide_object_etag(self.etag)


class Mirror:
    """One run of the mirror of ``s3://bucket/prefix`` into dest (``options`` as the module parses them)."""

    def __init__(self, client, options, check_mode=False):
        self.client = client
        self.bucket = options["bucket"]
        self.prefix = options["prefix"]
        self.dest = options["dest"]
        self.delete = options["delete"]
        self.max_delete = options["max_delete"]
        self.check_mode = check_mode
        self.fsync = options["fsync"]
        self.max_concurrency = options["max_concurrency"]
        self.multipart_threshold = options["multipart_threshold"]
        self.report = Report(options["report_limit"], client.meta.region_name, check_mode)
        self.filter = KeyFilter(options["include"], options["exclude"])
        self.verifier = ObjectVerifier(client, self.bucket)
        self.temp_dir = os.path.join(self.dest, TEMP_DIR_NAME)
        self._safe_directories = {self.dest}
        self._written_paths = []
        self._written_too_many = False

    def run(self):
        pages = open_listing(self.client, self.bucket, self.prefix)
        lock = None if self.check_mode else prepare_dest(self.dest)
        try:
            self._mirror(pages)
            if lock is not None and not self.report.counts["errors"]:
                self._record_complete_run()
        finally:
            if lock is not None:
                lock.close()
        return self.report

    def _record_complete_run(self):
        """When every object was listed and none failed: the time the coverage report reads."""
        try:
            record_complete_run(self.dest, self.bucket, self.prefix, utc_now(), self.report.counts["listed"])
        except OSError as exc:
            self.report.error(self.dest, "record run", exc)

    def _mirror(self, pages):
        report = self.report
        index = IndexReader(os.path.join(self.dest, INDEX_NAME), self.bucket, self.prefix)
        writer = None if self.check_mode else IndexWriter(self.dest, self.bucket, self.prefix, self.fsync)
        collisions = CollisionTracker()
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
        large_pool = ThreadPoolExecutor(max_workers=LARGE_WORKERS)

        def settle(slot):
            key, future, kept_entry, obj, reason = slot
            entry = kept_entry
            if future is not None:
                try:
                    entry = future.result()
                    report.downloaded(obj, reason)
                except Exception as exc:  # pylint: disable=broad-except
                    if error_code(exc) == "PreconditionFailed":
                        exc = MirrorError(
                            "ObjectChanged", "the object changed while it was fetched; the next run gets it"
                        )
                    report.error(key, "download", exc)
            if entry is not None and writer is not None and not index_errors:
                try:
                    writer.write(entry)
                except OSError as exc:
                    index_errors.append(exc)
                    report.error(self.dest, "write index", exc)

        def push(slot):
            window.append(slot)
            while window and (len(window) > WINDOW or window[0][1] is None or window[0][1].done()):
                settle(window.popleft())

        def fetch(obj, relative):
            if obj.size >= self.multipart_threshold:
                return large_pool.submit(self._fetch_large, transfers, obj, relative)
            return small_pool.submit(self._fetch_small, obj, relative)

        try:
            for obj, entry in merge(check_sorted(listed_objects(pages)), index):
                if obj is None:
                    gone.append(entry)
                    push((entry.key, None, entry, None, None))
                    continue
                report.listed(obj)
                self._handle(obj, entry, collisions, push, fetch)
        except (ClientError, BotoCoreError, ValueError) as exc:
            listing_failed = True
            report.error(self.bucket, "list", exc)
        finally:
            while window:
                settle(window.popleft())
            small_pool.shutdown(wait=True)
            large_pool.shutdown(wait=True)
            transfers.shutdown()
        if index.problem:
            report.warnings.append(index.problem)

        incomplete = listing_failed or bool(index_errors)
        deleted_keys = self._apply_deletes(gone, index.count, incomplete)
        if writer is not None:
            index_unchanged = (
                not index.problem
                and not deleted_keys
                and not report.counts["downloaded"]
                and writer.count == index.count
            )
            if incomplete or index_unchanged:
                writer.abort()
            else:
                writer.commit(deleted_keys, None if self._written_too_many else self._written_paths)
            remove_temp_dir(self.dest)

    def _handle(self, obj, entry, collisions, push, fetch):
        report = self.report
        relative, is_directory, reason = local_path(obj.key, self.prefix)
        if reason is None and not self.filter(relative + "/" if is_directory else relative):
            report.counts["excluded"] += 1
            push((obj.key, None, entry, obj, None))
            return
        if reason is None:
            taken_by = collisions.check(relative, is_directory)
            if taken_by is not None:
                reason = "its path {0!r} is taken by the file of key {1!r}".format(relative, self.prefix + taken_by)
        if reason is not None:
            report.skipped(obj.key, reason)
            push((obj.key, None, entry, obj, None))
            return
        if is_directory:
            self._mirror_directory(obj, relative)
            return
        local = self._local_stat(relative) if entry is not None else None
        download, why = decide(obj, entry, local)
        if not download:
            report.counts["unchanged"] += 1
            push((obj.key, None, entry, obj, None))
        elif self.check_mode:
            report.downloaded(obj, why)
            push((obj.key, None, entry, obj, None))
        else:
            push((obj.key, fetch(obj, relative), entry, obj, why))

    def _fetch_small(self, obj, relative):
        response = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag, ChecksumMode="ENABLED")
        md5 = expected_md5(response)
        digests = Digests(md5=md5 is not None, checksums=[name for name in COMPUTABLE_CHECKSUMS if response.get(name)])
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
            check_size(obj, size)
            self.verifier.verify_multipart_etag(temp_path, obj)
            check_digests(obj, digests, md5, response)
            return self._place(temp_path, obj, relative)
        except BaseException:
            _remove_quietly(temp_path)
            raise

    def _fetch_large(self, transfers, obj, relative):
        temp_path = os.path.join(self.temp_dir, "transfer-" + uuid.uuid4().hex)
        try:
            transfers.download(self.bucket, obj.key, temp_path, subscribers=[_KnownObject(obj.size, obj.etag)]).result()
            check_size(obj, os.stat(temp_path).st_size)
            self.verifier.verify_file(temp_path, obj)
            return self._place(temp_path, obj, relative)
        except BaseException:
            _remove_quietly(temp_path)
            raise

    def _place(self, temp_path, obj, relative):
        """Rename a verified temporary file onto its path, with the object's LastModified as mtime."""
        os.utime(temp_path, (obj.last_modified, obj.last_modified))
        parent = os.path.dirname(relative)
        if parent:
            self._ensure_directory(parent)
        target = os.path.join(self.dest, relative)
        if os.path.isdir(target) and not os.path.islink(target):
            raise PathError("{0} is a directory".format(target))
        os.replace(temp_path, target)
        if len(self._written_paths) < FSYNC_EACH_LIMIT:
            self._written_paths.append(target)
        else:
            self._written_too_many = True
        return IndexEntry(obj.key, obj.size, obj.etag, obj.last_modified)

    def _ensure_directory(self, relative):
        """Create dest/relative as a directory, refusing symlinks and files in the way. Returns True if created."""
        created = False
        current = self.dest
        for segment in relative.split("/") if relative else []:
            current = os.path.join(current, segment)
            if current in self._safe_directories:
                continue
            try:
                os.mkdir(current)
                created = True
            except FileExistsError:
                if os.path.islink(current):
                    raise PathError("path passes through the symlink {0}".format(current))
                if not os.path.isdir(current):
                    raise PathError("{0} is a file, not a directory".format(current))
            self._safe_directories.add(current)
        return created

    def _mirror_directory(self, obj, relative):
        path = os.path.join(self.dest, relative)
        if os.path.isdir(path) and not os.path.islink(path):
            return
        if self.check_mode:
            self.report.counts["directories"] += 1
            return
        try:
            if self._ensure_directory(relative):
                self.report.counts["directories"] += 1
        except (OSError, PathError) as exc:
            self.report.error(obj.key, "mkdir", exc)

    def _local_stat(self, relative):
        try:
            return os.lstat(os.path.join(self.dest, relative))
        except OSError:
            return None

    def _apply_deletes(self, gone, indexed, incomplete):
        """Delete (or list) the local files of vanished objects; returns the keys whose files went."""
        report = self.report
        candidates = []
        for entry in gone:
            relative, is_directory, reason = local_path(entry.key, self.prefix)
            if reason is None and not is_directory:
                candidates.append((entry.key, os.path.join(self.dest, relative)))
        refusal = None
        if self.delete and not incomplete:
            refusal = delete_limit_exceeded(len(candidates), indexed, self.max_delete)
            if refusal:
                report.notes.append("nothing deleted: " + refusal)
                report.error(self.dest, "delete", MirrorError("MaxDeleteExceeded", "nothing deleted: " + refusal))
        if not self.delete or incomplete or refusal:
            for _key, path in candidates:
                report.add("orphaned", "orphaned_files", path)
            return []
        deleted = []
        for key, path in candidates:
            if self.check_mode:
                report.add("deleted", "deleted_files", path)
                continue
            try:
                if not is_inside(self.dest, os.path.realpath(os.path.dirname(path))):
                    raise PathError("{0} passes through a symlink out of {1}".format(path, self.dest))
                if os.path.isdir(path) and not os.path.islink(path):
                    raise PathError("{0} is a directory".format(path))
                os.unlink(path)
            except FileNotFoundError:
                pass
            except (OSError, PathError) as exc:
                report.error(key, "delete", exc)
                continue
            deleted.append(key)
            report.add("deleted", "deleted_files", path)
            self._remove_empty_parents(path)
        return deleted

    def _remove_empty_parents(self, path):
        parent = os.path.dirname(path)
        while parent != self.dest and is_inside(self.dest, parent):
            try:
                os.rmdir(parent)
            except OSError:
                return
            self._safe_directories.discard(parent)
            parent = os.path.dirname(parent)


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
