# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The S3 mirror's run: the listing merged with the index, fetches of small objects (one GET each,
on a thread pool) and of large ones (ranged GETs through s3transfer), atomic placement under dest,
deletes of vanished objects, and the new index.

Mirror(client, options, check_mode).run() returns a Report; a failure of the whole run (bucket,
credentials, dest) raises MirrorError, and ``mirror.report`` then holds what was done before it.

While the run goes, the index is checkpointed (see IndexWriter.checkpoint) every CHECKPOINT_FILES
completed files or CHECKPOINT_SECONDS, whichever comes first, but never more often than keeps
the time spent on checkpoints under 1/CHECKPOINT_SPACING of the run, since each rewrites the index.
"""

import datetime
import json
import os
import shutil
import tempfile
import time
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
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import PreviousIndexTail
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import previous_dir
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import remove_expired_previous
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import prepare_dest
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import record_complete_run
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import remove_temp_dir
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import S3Object
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import CollisionTracker
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import KeyFilter
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import PathError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import check_sorted
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import is_inside
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import listed_objects
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import local_path
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import objects_as_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import open_listing
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import parallel_pages
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import ADOPT
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import CHANGED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import change_limit_exceeded
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
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import computable_checksums
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import expected_md5
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_message
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import utc_now

# Past this many written files, the index commit flushes the filesystem once instead of each file.
FSYNC_EACH_LIMIT = 64
# Keys in flight between the listing and the index writer, which takes them in key order.
WINDOW = 4096
LARGE_WORKERS = 2
CHECKPOINT_FILES = 1000
CHECKPOINT_SECONDS = 30.0
CHECKPOINT_SPACING = 20
VERSIONED = ("Enabled", "Suspended")


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
        self.max_changed = options.get("max_changed")
        self.keep_previous = options.get("keep_previous")
        self.version_as_of = options.get("version_as_of")
        self.verify_existing = options.get("verify_existing", False)
        self.list_concurrency = options.get("list_concurrency", 1)
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
        self._replacing = 0
        self._previous_dir = None
        if self.keep_previous is not None:
            self._previous_dir = previous_dir(self.dest, utc_now() + self.keep_previous)

    def run(self):
        if self.version_as_of is not None:
            self._check_versioning()
            pages = open_listing(self.client, self.bucket, self.prefix, "list_object_versions")
        elif self.list_concurrency > 1:
            pages = open_listing(self.client, self.bucket, self.prefix, Delimiter="/")
            pages = parallel_pages(self.client, self.bucket, self.prefix, self.list_concurrency, pages)
        else:
            pages = open_listing(self.client, self.bucket, self.prefix)
        lock = None if self.check_mode else prepare_dest(self.dest)
        try:
            if lock is not None:
                self._remove_expired_previous()
            self._mirror(pages)
            if lock is not None and not self.report.counts["errors"]:
                self._record_complete_run()
        finally:
            if lock is not None:
                lock.close()
        return self.report

    def _check_versioning(self):
        """A bucket that never kept versions cannot be mirrored as it was: fail naming version_as_of."""
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except (ClientError, BotoCoreError) as exc:
            raise MirrorError(
                error_code(exc),
                "could not read the versioning of bucket {0!r} for version_as_of: {1}".format(
                    self.bucket, error_message(exc)
                ),
                self.bucket,
                "list",
            )
        if status not in VERSIONED:
            raise MirrorError(
                "BucketNotVersioned",
                "version_as_of {0} cannot be honoured: bucket {1!r} does not keep object versions "
                "(versioning was never enabled), so its past is not stored".format(
                    self.version_as_of.isoformat(), self.bucket
                ),
                self.bucket,
                "list",
            )

    def _remove_expired_previous(self):
        try:
            removed = remove_expired_previous(self.dest, utc_now())
        except OSError as exc:
            self.report.error(self.dest, "remove previous", exc)
            return
        if removed:
            self.report.notes.append(
                "removed {0} folder(s) of previous files past their keep_previous time".format(len(removed))
            )

    def _objects(self, pages, oldest):
        if self.version_as_of is None:
            return listed_objects(pages)
        return objects_as_of(pages, self.version_as_of.timestamp(), oldest)

    def _record_complete_run(self):
        """When every object was listed and none failed: the time the coverage report reads."""
        try:
            record_complete_run(self.dest, self.bucket, self.prefix, utc_now(), self.report.counts["listed"])
        except OSError as exc:
            self.report.error(self.dest, "record run", exc)

    def _mirror(self, pages):
        report = self.report
        index = IndexReader(os.path.join(self.dest, INDEX_NAME), self.bucket, self.prefix)
        oldest = []
        source = merge(check_sorted(self._objects(pages, oldest)), index)
        if self.max_changed is not None and not self.check_mode:
            try:
                source = self._guard_changes(source, index)
            except (ClientError, BotoCoreError, ValueError) as exc:
                report.error(self.bucket, "list", exc)
                remove_temp_dir(self.dest)
                return
            except MirrorError:
                remove_temp_dir(self.dest)
                raise
        tail = None if self.check_mode else PreviousIndexTail(index.path, self.bucket, self.prefix)
        writer = None if self.check_mode else IndexWriter(self.dest, self.bucket, self.prefix, self.fsync)
        checkpoints = dict(completed=0, at=time.monotonic(), took=0.0, listing_read=False, in_flight=0)
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

        def checkpoint():
            checkpoints["completed"] += 1
            now = time.monotonic()
            # A checkpoint bounds what a killed run fetches again to CHECKPOINT_FILES files.  Once the whole
            # listing is read and fewer than that are in flight, the commit comes first: a checkpoint then
            # would only copy the whole index just before it.  A long wait still checkpoints by time.
            by_count = checkpoints["completed"] >= CHECKPOINT_FILES
            by_count = by_count and not (checkpoints["listing_read"] and checkpoints["in_flight"] < CHECKPOINT_FILES)
            due = by_count or now - checkpoints["at"] >= CHECKPOINT_SECONDS
            if not due or now - checkpoints["at"] < CHECKPOINT_SPACING * checkpoints["took"]:
                return
            try:
                writer.checkpoint(tail)
            except OSError as exc:
                index_errors.append(exc)
                report.error(self.dest, "write index", exc)
            checkpoints.update(completed=0, at=time.monotonic(), took=time.monotonic() - now)

        def settle(slot):
            key, future, kept_entry, obj, reason = slot
            entry = kept_entry
            completed = False
            if future is not None:
                checkpoints["in_flight"] -= 1
                try:
                    entry, fetched_reason = future.result()
                    if fetched_reason is None:
                        report.add("adopted")
                    else:
                        report.downloaded(obj, fetched_reason)
                    completed = True
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
                if completed and not index_errors:
                    checkpoint()

        def push(slot):
            window.append(slot)
            if slot[1] is not None:
                checkpoints["in_flight"] += 1
            while window and (len(window) > WINDOW or window[0][1] is None or window[0][1].done()):
                settle(window.popleft())

        def fetch(obj, relative, reason):
            if reason == ADOPT:
                return small_pool.submit(self._adopt, transfers, obj, relative)
            if obj.size >= self.multipart_threshold:
                return large_pool.submit(self._with_reason, reason, self._fetch_large, transfers, obj, relative)
            return small_pool.submit(self._with_reason, reason, self._fetch_small, obj, relative)

        try:
            for obj, entry in source:
                if obj is None:
                    gone.append(entry)
                    push((entry.key, None, entry, None, None))
                    continue
                report.listed(obj)
                self._handle(obj, entry, collisions, push, fetch)
            checkpoints["listing_read"] = True
        except (ClientError, BotoCoreError, ValueError) as exc:
            listing_failed = True
            report.error(self.bucket, "list", exc)
        finally:
            while window:
                settle(window.popleft())
            small_pool.shutdown(wait=True)
            large_pool.shutdown(wait=True)
            transfers.shutdown()
            if tail is not None:
                tail.close()
        if index.problem:
            report.warnings.append(index.problem)
        too_early = None if listing_failed else self._too_early(oldest)
        if too_early:
            report.error(self.bucket, "list", MirrorError("VersionAsOfTooEarly", too_early))
        refusal = change_limit_exceeded(self._replacing, index.count, self.max_changed) if self.check_mode else None
        if refusal:
            report.notes.append("the run would write nothing: " + refusal)
            report.error(self.dest, "download", MirrorError("MaxChangedExceeded", "would write nothing: " + refusal))

        incomplete = listing_failed or bool(index_errors) or bool(too_early)
        deleted_keys = self._apply_deletes(gone, index.count, incomplete)
        if writer is not None:
            index_unchanged = (
                not index.problem
                and not deleted_keys
                and not report.counts["downloaded"]
                and not report.counts["adopted"]
                and writer.count == index.count
            )
            if incomplete or index_unchanged:
                writer.abort()
            else:
                writer.commit(deleted_keys, None if self._written_too_many else self._written_paths)
            remove_temp_dir(self.dest)

    def _too_early(self, oldest):
        """With version_as_of: why nothing can be mirrored from then, when no version is that old; else None."""
        if self.version_as_of is None or (oldest and oldest[0] <= self.version_as_of.timestamp()):
            return None
        source = "s3://{0}/{1}".format(self.bucket, self.prefix)
        if not oldest:
            return "version_as_of {0}: {1} holds no object version at all; nothing written".format(
                self.version_as_of.isoformat(), source
            )
        return (
            "version_as_of {0} is before the oldest object version under {1} ({2}): the bucket held nothing "
            "there then; nothing written".format(
                self.version_as_of.isoformat(),
                source,
                datetime.datetime.fromtimestamp(oldest[0], datetime.timezone.utc).isoformat(),
            )
        )

    def _guard_changes(self, source, index):
        """max_changed: read the whole listing first, into a plan in the temporary folder, counting the
        mirrored files that changed objects would replace; raise MirrorError (nothing written) past the
        limit, else return the plan's pairs to mirror from."""
        plan_path = os.path.join(self.temp_dir, "plan.jsonl")
        replacing = 0
        with open(plan_path, "w", encoding="utf-8") as plan:
            for obj, entry in source:
                if obj is not None and entry is not None and self._would_replace(obj, entry):
                    replacing += 1
                plan.write(json.dumps([obj, entry], ensure_ascii=False) + "\n")
        refusal = change_limit_exceeded(replacing, index.count, self.max_changed)
        if refusal:
            raise MirrorError(
                "MaxChangedExceeded",
                "Nothing written: {0}. If the bucket was rewritten on purpose, raise max_changed for one run; "
                "else the local copy is the good one".format(refusal),
                self.dest,
                "download",
            )
        return _read_plan(plan_path)

    def _would_replace(self, obj, entry):
        """Whether mirroring ``obj`` replaces a mirrored local file because the object changed."""
        relative, is_directory, reason = local_path(obj.key, self.prefix)
        if reason is not None or is_directory or not self.filter(relative):
            return False
        local = self._local_stat(relative)
        download, why = decide(obj, entry, local)
        return download and why == CHANGED and local is not None

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
        local = self._local_stat(relative)
        download, why = decide(obj, entry, local)
        if download and why == CHANGED and local is not None:
            self._replacing += 1
        if not download and why != ADOPT:
            report.counts["unchanged"] += 1
            push((obj.key, None, entry, obj, None))
        elif self.check_mode:
            if download:
                report.downloaded(obj, why)
            else:
                report.add("adopted")
            push((obj.key, None, entry, obj, None))
        else:
            push((obj.key, fetch(obj, relative, why), entry, obj, why))

    @staticmethod
    def _with_reason(reason, function, *args):
        return function(*args), reason

    def _adopt(self, transfers, obj, relative):
        """``(entry, None)`` for a file complete on disk, checked against the object's checksum when it has
        one (and its ETag with verify_existing); a file that does not match is downloaded instead."""
        path = os.path.join(self.dest, relative)
        if not is_inside(self.dest, os.path.realpath(os.path.dirname(path))):
            raise PathError("path passes through a symlink out of {0}".format(self.dest))
        if computable_checksums(obj) or self.verify_existing:
            try:
                self.verifier.verify_file(path, obj, etag=self.verify_existing)
            except MirrorError as exc:
                if exc.code != "ChecksumMismatch":
                    raise
                fetched = self._fetch_large if obj.size >= self.multipart_threshold else self._fetch_small
                args = (transfers, obj, relative) if fetched == self._fetch_large else (obj, relative)
                return fetched(*args), "local copy differs"
        return IndexEntry(obj.key, obj.size, obj.etag, obj.last_modified, obj.version_id), None

    def _fetch_small(self, obj, relative):
        params = dict(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag, ChecksumMode="ENABLED")
        if obj.version_id is not None:
            params["VersionId"] = obj.version_id
        response = self.client.get_object(**params)
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
            extra_args = {"VersionId": obj.version_id} if obj.version_id is not None else None
            transfers.download(
                self.bucket, obj.key, temp_path, extra_args=extra_args, subscribers=[_KnownObject(obj.size, obj.etag)]
            ).result()
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
        if self._previous_dir is not None and os.path.isfile(target) and not os.path.islink(target):
            self._keep_previous(target, relative, move=False)
        os.replace(temp_path, target)
        if len(self._written_paths) < FSYNC_EACH_LIMIT:
            self._written_paths.append(target)
        else:
            self._written_too_many = True
        return IndexEntry(obj.key, obj.size, obj.etag, obj.last_modified, obj.version_id)

    def _keep_previous(self, path, relative, move):
        """Keep the local file about to be replaced (a hard link) or deleted (moved) under the previous folder."""
        kept = os.path.join(self._previous_dir, relative)
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        if move:
            os.replace(path, kept)
        else:
            try:
                if os.path.lexists(kept):
                    os.unlink(kept)
                os.link(path, kept)
            except OSError:
                shutil.copy2(path, kept)
        self.report.add("kept_previous")

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
                candidates.append((entry.key, relative, os.path.join(self.dest, relative)))
        refusal = None
        if self.delete and not incomplete:
            refusal = delete_limit_exceeded(len(candidates), indexed, self.max_delete)
            if refusal:
                report.notes.append("nothing deleted: " + refusal)
                report.error(self.dest, "delete", MirrorError("MaxDeleteExceeded", "nothing deleted: " + refusal))
        if not self.delete or incomplete or refusal:
            for _key, _relative, path in candidates:
                report.add("orphaned", "orphaned_files", path)
            return []
        deleted = []
        for key, relative, path in candidates:
            if self.check_mode:
                report.add("deleted", "deleted_files", path)
                continue
            try:
                if not is_inside(self.dest, os.path.realpath(os.path.dirname(path))):
                    raise PathError("{0} passes through a symlink out of {1}".format(path, self.dest))
                if os.path.isdir(path) and not os.path.islink(path):
                    raise PathError("{0} is a directory".format(path))
                if self._previous_dir is not None:
                    self._keep_previous(path, relative, move=True)
                else:
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


def _read_plan(path):
    """The ``(object, entry)`` pairs written by Mirror._guard_changes, read lazily."""
    with open(path, "r", encoding="utf-8") as plan:
        for line in plan:
            obj, entry = json.loads(line)
            if obj is not None:
                obj[4] = tuple(obj[4])
                obj = S3Object(*obj)
            yield obj, (IndexEntry(*entry) if entry is not None else None)
