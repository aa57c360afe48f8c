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
  - The index is checkpointed while the run goes, every 1000 completed files or 30 seconds, whichever comes
    first (less often when the index is so large that rewriting it would take more than a twentieth of the
    run), so a killed run, rerun, fetches only what is missing or changed. A file complete on disk that the
    index does not list yet (the object's size, and its LastModified as mtime) is adopted without a GET, after
    a check of the object's SHA256, SHA1 or CRC32 checksum when it has one (a HeadObject and a read of the
    file), and of its ETag with O(verify_existing); a file that fails the check is downloaded.
  - Verifies the MD5 of single-part objects against their ETag, the multipart ETag of multipart objects,
    and the object's additional checksum (SHA256, SHA1, CRC32; others through botocore) where S3 has one.
    A mismatch is an error for that key and the previous local copy is kept.
  - Never writes outside O(dest). Keys with C(..) or C(.) segments, empty segments, absolute paths, NUL
    characters or backslashes, and keys that need a path another key holds as a file are left alone and
    listed in RV(skipped_resources) with the reason. A key whose path passes through a symlink in O(dest) is not
    written (or deleted) and is an error. Keys ending in C(/) (folder markers) become directories.
  - The listing is read page by page and merged with the sorted index as it arrives, so memory does not
    grow with the bucket. Small objects are fetched with one GET each on a bounded thread pool; objects of
    O(multipart_threshold) bytes or more go through the S3 transfer manager in concurrent ranged GETs.
  - After a complete run (every object listed, none failed), records when it finished in
    C(.s3_mirror_last_run.json) in O(dest), which M(opsvault.aws_backup.backup_coverage) reads.
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
  max_changed:
    description:
      - Refuse to replace more than this many of the mirrored files in one run because their object changed,
        either a count (V(100)) or a percentage of the mirrored files (V(5%)), a guard against mirroring a bucket
        that ransomware or a bad deploy rewrote over the good local copy.
      - When set, the listing is read to its end first (the plan is kept in the temporary folder in O(dest)),
        so that a run past the limit writes nothing. It then fails naming the limit, with V(MaxChangedExceeded)
        in RV(errors), and every local file stays as it was. New objects and deletes do not count.
      - Unset means no limit.
    type: str
  keep_previous:
    description:
      - Keep the local files that a run replaces or deletes for this long, a number of seconds or a count with
        a unit (V(12h), V(7d), V(2w)), in C(.s3_mirror_previous/until-<UTC time>/) inside O(dest), under their
        own paths, so one bad night can be undone by moving them back.
      - Each run removes the folders whose time has passed, whatever this option says then.
      - The folder is never mirrored content, M(opsvault.aws_backup.s3_restore) never uploads it, and a replaced
        file is kept as a hard link where the filesystem allows it (no copy).
      - Unset means replaced and deleted files are not kept.
    type: str
  version_as_of:
    description:
      - Mirror the bucket as it was at this moment, an ISO 8601 date and time (V(2026-11-23T01:00:00Z), an offset,
        or none for UTC) or a date (its midnight UTC), from a versioned bucket, for example the night before an
        incident. Each key gets its newest version from then on or before; a key deleted then (a delete marker)
        or created later is left out (and, with O(delete=true), its local file is deleted as for a gone object).
      - Needs C(s3:GetBucketVersioning), C(s3:ListBucketVersions) and C(s3:GetObjectVersion). Versions are
        listed with ListObjectVersions and fetched by VersionId; the index records the version ids.
      - Fails naming the value, writing nothing, on a bucket whose versioning was never enabled, and when the
        moment is before the oldest version under O(prefix) (the bucket held nothing there then).
    type: str
  verify_existing:
    description:
      - Also check the files found complete on disk but not in the index against the object's ETag (the MD5 of a
        single-part object, the multipart ETag of others) before adopting them. Without it they are checked only
        against the object's additional checksum, when it has one.
    type: bool
    default: false
  list_concurrency:
    description:
      - The most listings in flight at once. The key space is split at the folders (common prefixes with the
        delimiter C(/)), and a folder is split again into its own folders, at any depth, while the listing knows
        fewer folders than O(list_concurrency); the folders ahead of the one being read are listed concurrently.
        The pages are still read in key order, so the plan is that of one listing. The folders ahead share a
        budget of 8 pages of up to 1,000 keys per O(list_concurrency) (under a megabyte each), so the memory the
        listing holds is bounded by O(list_concurrency), not by the bucket. A level with no folder (a flat
        bucket) is one listing, as is V(1).
      - O(version_as_of) runs list the versions in one listing.
    type: int
    default: 8
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
  - Requires C(s3:ListBucket) on the bucket and C(s3:GetObject) on its objects; O(version_as_of) needs
    C(s3:GetBucketVersioning), C(s3:ListBucketVersions) and C(s3:GetObjectVersion) instead.
  - Supports check mode, which lists what would be downloaded and deleted, and writes nothing. It counts the
    files it would adopt (RV(counts.adopted)) without reading them, and reports a run that O(max_changed) would
    refuse as an error.
  - When a key fails (a checksum mismatch, an access denied, a symlink in the way), every other key is
    still mirrored and the task then fails, naming the first errors in RV(msg) and listing them in RV(errors).
  - Throttled requests are retried with botocore's adaptive retry mode.
  - Directory buckets (S3 Express One Zone) are not supported, their listings are not sorted by key.
extends_documentation_fragment:
  - opsvault.aws_backup.assume_role
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

- name: Nightly mirror that stops when a tenth of the files would be overwritten, keeping replaced files a week
  opsvault.aws_backup.s3_mirror:
    bucket: my-images
    dest: /srv/backup/images
    delete: true
    max_changed: 10%
    keep_previous: 7d

- name: The bucket as it was before the incident, from its versions, into another directory
  opsvault.aws_backup.s3_mirror:
    bucket: my-images
    dest: /srv/restore/images-2026-11-23
    version_as_of: "2026-11-23T01:00:00Z"

- name: Show what happened
  ansible.builtin.debug:
    msg: "{{ mirror.msg }}"
"""

RETURN = r"""
msg:
  description:
    - What the run did, for a person reading the job log. A line per action with its count and first keys,
      C(would) in check mode, and the first errors.
  returned: always
  type: str
  sample: "s3://my-images/ -> /home/user/myS3backup: Downloaded 20 object(s): 2026/11/cat.jpg (changed); ...
    (and 17 more). 2004 listed (104857600 bytes), 1984 unchanged, 0 excluded."
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
    adopted:
      description: Files found complete on disk (as a killed run leaves them) and recorded without a download.
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
      description: Keys left alone because of their name, listed in RV(skipped_resources).
      type: int
    deleted:
      description: Local files deleted because their object is gone.
      type: int
    orphaned:
      description: Local files whose object is gone that were kept.
      type: int
    kept_previous:
      description: Replaced or deleted local files kept in C(.s3_mirror_previous) (O(keep_previous)).
      type: int
    errors:
      description: Keys or steps that failed, listed in RV(errors).
      type: int
  sample: {"listed": 2004, "downloaded": 20, "adopted": 0, "unchanged": 1984, "directories": 0, "excluded": 0,
           "skipped": 0, "deleted": 0, "orphaned": 0, "kept_previous": 0, "errors": 0}
bytes:
  description: Bytes downloaded, and bytes of the objects listed.
  returned: always
  type: dict
  sample: {"downloaded": 20480, "listed": 104857600}
downloaded_keys:
  description:
    - The first O(report_limit) objects downloaded, with the reason (V(new), V(changed), V(missing locally),
      V(local copy differs)).
    - In check mode, the objects that would be, each with C(state=planned).
  returned: always
  type: list
  elements: dict
  sample: [{"key": "2026/11/cat.jpg", "size": 1024, "reason": "changed"}]
skipped_resources:
  description: The first O(report_limit) keys left alone, each with its bucket's region and the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "../etc/passwd", "region": "eu-west-1", "reason": "key has a '..' path segment"}]
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
  description:
    - The first O(report_limit) failures. C(resource) is the key, or the bucket or O(dest) for a step of the
      whole run; C(action) is the step (V(list), V(download), V(mkdir), V(delete), V(write index),
      V(prepare dest), V(remove previous)); C(code) is the AWS error code or the mirror's own (V(ChecksumMismatch),
      V(SizeMismatch), V(ObjectChanged), V(UnsafePath), V(MaxDeleteExceeded), V(MaxChangedExceeded),
      V(BucketNotVersioned), V(VersionAsOfTooEarly)).
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "2026/11/cat.jpg", "region": "eu-west-1", "action": "download",
            "code": "ChecksumMismatch", "message": "MD5 of the data differs from the ETag"}]
regions:
  description: The region of the bucket's client (the module's O(region)).
  returned: always
  type: list
  elements: str
  sample: [eu-west-1]
dest:
  description: The local directory, resolved.
  returned: always
  type: str
  sample: /home/user/myS3backup
"""

import os


from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_config
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import aws_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import at_least
from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import not_empty
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import finish
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import normalize_prefix
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import parse_file_limit
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import parse_max_delete
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_transfer import Mirror
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_duration
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_moment

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest multipart part


ARGUMENT_SPEC = dict(
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
    dest=dict(type="path", required=True),
    include=dict(type="list", elements="str", default=[]),
    exclude=dict(type="list", elements="str", default=[]),
    delete=dict(type="bool", default=False),
    max_delete=dict(type="str"),
    max_changed=dict(type="str"),
    keep_previous=dict(type="str"),
    version_as_of=dict(type="str"),
    verify_existing=dict(type="bool", default=False),
    list_concurrency=dict(type="int", default=8),
    max_concurrency=dict(type="int", default=32),
    multipart_threshold=dict(type="int", default=8 * 1024 * 1024),
    fsync=dict(type="bool", default=True),
    report_limit=dict(type="int", default=100),
)


def parse_options(params, check_mode=False):
    """The engine's options from the module's; raises ValueError naming the option and the value."""
    not_empty("bucket", params["bucket"])
    at_least("max_concurrency", params["max_concurrency"], 1)
    at_least("list_concurrency", params["list_concurrency"], 1)
    at_least("multipart_threshold", params["multipart_threshold"], MIN_PART_SIZE)
    at_least("report_limit", params["report_limit"], 0)
    return dict(
        bucket=params["bucket"].strip(),
        prefix=normalize_prefix(params["prefix"]),
        dest=os.path.realpath(params["dest"]),
        include=params["include"],
        exclude=params["exclude"],
        delete=params["delete"],
        max_delete=parse_max_delete(params["max_delete"]),
        max_changed=parse_file_limit(params["max_changed"], "max_changed"),
        keep_previous=_keep_previous(params["keep_previous"]),
        version_as_of=_version_as_of(params["version_as_of"]),
        verify_existing=params["verify_existing"],
        list_concurrency=params["list_concurrency"],
        max_concurrency=params["max_concurrency"],
        multipart_threshold=params["multipart_threshold"],
        fsync=params["fsync"],
        report_limit=params["report_limit"],
    )


def _keep_previous(value):
    if value is None or str(value).strip() == "":
        return None
    duration = parse_duration(value, "keep_previous")
    if not duration:
        raise ValueError("keep_previous must be longer than 0 seconds, got {0!r}".format(value))
    return duration


def _version_as_of(value):
    if value is None or str(value).strip() == "":
        return None
    return parse_moment(value, "version_as_of")


def main():
    module, options = aws_module(ARGUMENT_SPEC, parse_options)
    # The small-object pool and the transfer manager each keep max_concurrency requests in flight.
    config = client_config(2 * options["max_concurrency"] + options["list_concurrency"] + 4)
    [client] = clients_for(module, "s3", config, text_timestamps=True).values()
    job = Mirror(client, options, module.check_mode)
    try:
        job.run()
        msg = None
    except MirrorError as exc:
        job.report.error(exc.resource, exc.action, exc)
        msg = str(exc)
    for warning in job.report.warnings:
        module.warn(warning)
    source = "s3://{0}/{1}".format(options["bucket"], options["prefix"])
    result = dict(job.report.result(), dest=options["dest"], msg=msg or job.report.summary(source, options["dest"]))
    finish(module, result)


if __name__ == "__main__":
    main()
