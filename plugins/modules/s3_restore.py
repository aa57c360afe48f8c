#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: s3_restore
short_description: Upload a mirror made by s3_mirror back to an S3 bucket
version_added: 0.2.0
description:
  - Uploads the files of O(src), a folder made by M(opsvault.aws_backup.s3_mirror), to O(bucket) under
    O(prefix), each file to the key it was mirrored from. Only files that differ from what the bucket
    holds (missing, another size or another MD5) are uploaded.
  - Writes are conditional. A new key is written only if it still does not exist, a replaced key only if
    its ETag is still the one listed, so an object changed in the bucket after the listing is never
    overwritten; it is listed in RV(skipped_resources) instead.
  - Every upload carries a SHA-256 checksum that S3 verifies. Files larger than O(multipart_threshold)
    are uploaded in parts by the SDK's transfer manager.
  - The mirror's own files (its index, lock and temporary folder) are never uploaded.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  src:
    description: The mirror folder.
    type: path
    required: true
  bucket:
    description: The bucket to restore to. It must exist.
    type: str
    required: true
  prefix:
    description: The key prefix the mirror was made from (V(photos) and V(photos/) mean the same).
    type: str
    default: ""
  delete:
    description: Delete the objects under O(prefix) that have no file in O(src), once every upload succeeded.
    type: bool
    default: false
  max_delete:
    description:
      - With O(delete=true), refuse to delete more than this many objects (V(25)) or this share of the
        listed ones (V(10%)); nothing is deleted then.
    type: str
  max_concurrency:
    description: The most uploads in flight at once.
    type: int
    default: 16
  multipart_threshold:
    description: Files of at least this many bytes are uploaded in 8 MiB parts.
    type: int
    default: 8388608
notes:
  - Requires C(s3:ListBucket) on the bucket and C(s3:PutObject) on its keys under O(prefix) (which also
    covers the multipart upload calls), and C(s3:DeleteObject) with O(delete=true).
  - Supports check mode, which lists and compares but uploads and deletes nothing.
extends_documentation_fragment:
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Put the mirrored images back into their bucket
  opsvault.aws_backup.s3_restore:
    src: /srv/backup/myS3backup
    bucket: my-images
    prefix: uploads/
  register: restored

- name: Rebuild a new bucket from the mirror, deleting what the mirror does not hold
  opsvault.aws_backup.s3_restore:
    src: /srv/backup/myS3backup
    bucket: my-images-restored
    delete: true
    max_delete: "10%"
"""

RETURN = r"""
uploaded:
  description: The files uploaded (in check mode, those that would be), each with its key.
  returned: always
  type: list
  elements: dict
  contains:
    key: {description: The object key, type: str, sample: uploads/cat.jpg}
    size: {description: "Bytes", type: int}
    action: {description: "V(created) for a new key, V(replaced) for one that differed", type: str}
    state: {description: "V(uploaded), or V(planned) in check mode", type: str}
deleted:
  description: The keys deleted with O(delete=true) (in check mode, those that would be).
  returned: always
  type: list
  elements: str
unchanged:
  description: How many files the bucket already holds as they are.
  returned: always
  type: int
skipped_resources:
  description: Keys left alone with the reason, among them objects changed in the bucket after the listing.
  returned: always
  type: list
  elements: dict
errors:
  description: Every key or step that failed, with the error code.
  returned: always
  type: list
  elements: dict
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
"""

import os


from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_restore
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_config
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import aws_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import at_least
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import finish
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import Summary
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import listed_objects
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import normalize_prefix
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import open_listing
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import delete_limit_exceeded
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_plan import parse_max_delete

ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    bucket=dict(type="str", required=True),
    prefix=dict(type="str", default=""),
    delete=dict(type="bool", default=False),
    max_delete=dict(type="str"),
    max_concurrency=dict(type="int", default=16),
    multipart_threshold=dict(type="int", default=8 * 1024 * 1024),
)


def parse_options(params, check_mode):
    if not os.path.isdir(params["src"]):
        raise ValueError("src {0!r} is not a folder".format(params["src"]))
    return {
        "src": params["src"],
        "bucket": params["bucket"],
        "prefix": normalize_prefix(params["prefix"]),
        "delete": params["delete"],
        "max_delete": parse_max_delete(params["max_delete"]),
        "max_concurrency": at_least("max_concurrency", params["max_concurrency"], 1),
        "multipart_threshold": at_least("multipart_threshold", params["multipart_threshold"], 5 * 1024 * 1024),
    }


def restore(client, options, check_mode, region):
    """The result keys of one run: list, compare, upload conditionally, delete within max_delete."""
    bucket, errors, skipped = options["bucket"], [], []
    objects = list(listed_objects(open_listing(client, bucket, options["prefix"])))
    files, odd = s3_restore.local_files(options["src"])
    plan = s3_restore.plan_restore(files, objects, options["prefix"])
    for name, reason in odd + plan["skipped"]:
        skipped.append(skipped_entry(name, region, reason))

    def uploaded(item, state):
        action = "created" if "IfNoneMatch" in item["condition"] else "replaced"
        return {"key": item["key"], "size": item["size"], "action": action, "state": state}

    done = []
    if check_mode:
        done = [uploaded(item, PLANNED) for item in plan["upload"]]
    elif plan["upload"]:
        uploads = s3_restore.ConditionalUploads(client, options["max_concurrency"], options["multipart_threshold"])
        for item, exc in uploads.upload_all(bucket, plan["upload"]):
            if exc is None:
                done.append(uploaded(item, "uploaded"))
            elif s3_restore.is_precondition_failure(exc):
                skipped.append(skipped_entry(item["key"], region, s3_restore.CHANGED_SINCE_LISTING))
            else:
                errors.append(error_entry(item["key"], region, "upload", exc))

    deleted = []
    orphans = [obj.key for obj in plan["orphans"]]
    refusal = delete_limit_exceeded(len(orphans), len(objects), options["max_delete"]) if options["delete"] else None
    if refusal:
        errors.append(error_entry(bucket, region, "delete", code="MaxDeleteExceeded", message=refusal))
    elif options["delete"] and errors:
        reason = "not deleted: {0} upload(s) failed".format(len(errors))
        skipped.extend(skipped_entry(key, region, reason) for key in orphans)
    elif options["delete"]:
        for key in orphans:
            try:
                if not check_mode:
                    client.delete_object(Bucket=bucket, Key=key)
                deleted.append(key)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(error_entry(key, region, "delete", exc))
    else:
        skipped.extend(skipped_entry(key, region, "no file in src; delete is false") for key in orphans)
    return dict(
        changed=bool(done or deleted),
        uploaded=done,
        deleted=deleted,
        unchanged=len(plan["unchanged"]),
        skipped_resources=skipped,
        errors=errors,
    )


def main():
    module, options = aws_module(ARGUMENT_SPEC, parse_options)
    [(region, client)] = clients_for(module, "s3", client_config(options["max_concurrency"] + 4)).items()
    target = "s3://{0}/{1}".format(options["bucket"], options["prefix"])
    try:
        result = restore(client, options, module.check_mode, region)
    except MirrorError as exc:
        error = error_entry(exc.resource, region, exc.action, code=exc.code, message=str(exc))
        finish(
            module,
            dict(
                changed=False, uploaded=[], deleted=[], unchanged=0, skipped_resources=[], errors=[error], msg=str(exc)
            ),
        )
    summary = Summary(module.check_mode)
    summary.done("uploaded", "upload", "file(s)", result["uploaded"], lambda item: "{key} ({action})".format(**item))
    summary.done("deleted", "delete", "object(s)", result["deleted"], str)
    summary.skipped(result["skipped_resources"])
    summary.errors(result["errors"])
    result["msg"] = "{0} to {1}: {2} ({3} unchanged)".format(
        options["src"], target, summary.text(), result["unchanged"]
    )
    finish(module, result)


if __name__ == "__main__":
    main()
