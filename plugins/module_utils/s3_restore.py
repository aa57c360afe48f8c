# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A mirror made by s3_mirror, uploaded back: which files differ, and conditional, checksummed uploads.

* A file is uploaded when its key is missing, or when its size or MD5 differs from the listed
  object (a multipart ETag is compared part by part, at the SDK's part size).
* A new key is written with ``If-None-Match: *`` and a replaced one with ``If-Match: <listed ETag>``,
  so an object that changed in the bucket after the listing is never overwritten: S3 answers 412,
  and the key is reported. https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
* Every upload carries a SHA-256 checksum that S3 verifies before it stores the object.
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html
* The mirror's own files (index, lock, temporary folder) are never uploaded.
"""

import os
import threading

try:
    from botocore.exceptions import ClientError
    from s3transfer.manager import TransferConfig, TransferManager
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import RESERVED_PREFIX
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import local_path
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import digest_file
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import md5_of_etag
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import multipart_etag
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import multipart_etag_parts
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_verify import uniform_part_sizes

PART_SIZE = 8 * 1024 * 1024  # s3transfer's default multipart_chunksize
CHANGED_SINCE_LISTING = "changed in the bucket since the listing: not overwritten"


def local_files(src):
    """``(files, skipped)``: ``{relative posix path: (path, size)}`` of the regular files under ``src``,
    without the mirror's own files; ``skipped``: ``[(relative path, reason)]`` (links, odd names)."""
    files, skipped = {}, []
    for root, dirs, names in os.walk(src):
        relative_root = os.path.relpath(root, src)
        dirs[:] = sorted(name for name in dirs if not (relative_root == "." and name.startswith(RESERVED_PREFIX)))
        for name in sorted(names):
            relative = name if relative_root == "." else os.path.join(relative_root, name).replace(os.sep, "/")
            path = os.path.join(root, name)
            if relative_root == "." and name.startswith(RESERVED_PREFIX):
                continue
            if os.path.islink(path) or not os.path.isfile(path):
                skipped.append((relative, "not a regular file"))
                continue
            files[relative] = (path, os.path.getsize(path))
    return files, skipped


def same_content(path, size, obj):
    """Whether a local file holds what the listed object does (size, then MD5 or the multipart ETag)."""
    if obj.size != size:
        return False
    md5 = md5_of_etag(obj.etag)
    if md5 is not None:
        return digest_file(path, md5=True, checksums=()).md5.hexdigest() == md5
    parts = multipart_etag_parts(obj.etag)
    sizes = uniform_part_sizes(size, PART_SIZE, parts) if parts else None
    return bool(sizes) and multipart_etag(path, sizes) == '"{0}"'.format(obj.etag.strip('"'))


def plan_restore(files, objects, prefix):
    """``{"upload": [...], "unchanged": [...], "orphans": [...], "skipped": [...]}``.

    ``files``: from local_files. ``objects``: the listed S3Objects under ``prefix`` (normalised).
    Each upload is ``{key, path, size, condition}``: ``{"IfNoneMatch": "*"}`` for a new key,
    ``{"IfMatch": etag}`` for a replaced one. ``orphans``: listed keys no local file stands for.
    """
    listed = {obj.key: obj for obj in objects}
    upload, unchanged, skipped = [], [], []
    for relative, (path, size) in sorted(files.items()):
        key = prefix + relative
        mapped, _is_directory, reason = local_path(key, prefix)
        if mapped != relative:
            skipped.append((key, reason or "the mirror would not map this key back to this file"))
            continue
        obj = listed.get(key)
        if obj is None:
            upload.append({"key": key, "path": path, "size": size, "condition": {"IfNoneMatch": "*"}})
        elif same_content(path, size, obj):
            unchanged.append(key)
        else:
            upload.append({"key": key, "path": path, "size": size, "condition": {"IfMatch": obj.etag}})
    wanted = {prefix + relative for relative in files}
    orphans = [obj for obj in objects if obj.key not in wanted and not obj.key.endswith("/")]
    return {"upload": upload, "unchanged": unchanged, "orphans": orphans, "skipped": skipped}


class ConditionalUploads:
    """Uploads through s3transfer with a write condition per key and a SHA-256 checksum on every upload.

    s3transfer takes no If-Match/If-None-Match among its extra arguments, so the condition of each
    key is added to its PutObject or CompleteMultipartUpload request by a botocore event handler.
    """

    def __init__(self, client, max_concurrency, multipart_threshold):
        self.client = client
        self.conditions = {}
        self.lock = threading.Lock()
        self.config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=PART_SIZE,
            max_request_concurrency=max_concurrency,
        )
        for operation in ("PutObject", "CompleteMultipartUpload"):
            client.meta.events.register("before-parameter-build.s3." + operation, self._add_condition)

    def _add_condition(self, params, **_kwargs):
        with self.lock:
            condition = self.conditions.get(params.get("Key"))
        if condition:
            params.update(condition)

    def upload_all(self, bucket, items):
        """``[(item, error)]`` for each upload, error None when it was stored."""
        with self.lock:
            self.conditions.update((item["key"], item["condition"]) for item in items)
        with TransferManager(self.client, self.config) as manager:
            futures = [
                (item, manager.upload(item["path"], bucket, item["key"], extra_args={"ChecksumAlgorithm": "SHA256"}))
                for item in items
            ]
            outcomes = []
            for item, future in futures:
                try:
                    future.result()
                    outcomes.append((item, None))
                except Exception as exc:  # pylint: disable=broad-except
                    outcomes.append((item, exc))
        return outcomes


def is_precondition_failure(exc):
    return isinstance(exc, ClientError) and error_code(exc) in ("PreconditionFailed", "412")
