# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: host_results
type: aggregate
short_description: Each host's results of the collection's modules, one JSON file per host, in a folder or on S3
version_added: 0.2.0
description:
  - Writes C(<directory>/<host>.json), or the object C(<prefix><host>.json) under O(s3_url), at the end of a run, with the results of every task of the
    opsvault.aws_backup modules on that host and every failed task, so that the hosts of the
    P(opsvault.aws_backup.accounts#inventory) inventory, run by several forks or AWX job slices, leave
    one file each to merge into an organisation-wide report.
  - "Each file holds C(host), C(account_id), C(region) (the host's C(aws_account_id) and C(aws_region)),
    C(failed) (whether any task failed on the host) and C(tasks): C(task), C(action), C(failed), C(result)."
  - Files are written whole (a temporary file, then a rename; an S3 PUT replaces an object whole), so a reader
    never sees half of one.
  - P(opsvault.aws_backup.backup_coverage#module) with O(opsvault.aws_backup.backup_coverage#module:host_results)
    merges the files of every host, from the folder or the S3 prefix, into one report.
  - Set O(directory), O(s3_url) or both; with neither, the run warns and writes nothing.
requirements:
  - enabled with C(callbacks_enabled = opsvault.aws_backup.host_results) or C(ANSIBLE_CALLBACKS_ENABLED)
  - boto3, for O(s3_url)
options:
  directory:
    description: The folder the files go to (created when missing).
    type: path
    env:
      - name: OPSVAULT_RESULTS_DIR
    ini:
      - section: opsvault_host_results
        key: directory
  s3_url:
    description:
      - V(s3://bucket/prefix/), the S3 prefix the files go to, one object C(<prefix><host>.json) per host.
      - The controller's own AWS credentials and settings write them, as boto3 finds them (C(AWS_ACCESS_KEY_ID),
        C(AWS_PROFILE), C(AWS_REGION), C(AWS_ENDPOINT_URL), an instance profile); the identity needs
        C(s3:PutObject) on the prefix, not the role of each host.
    type: str
    env:
      - name: OPSVAULT_RESULTS_S3_URL
    ini:
      - section: opsvault_host_results
        key: s3_url
"""

import json
import os

try:
    import boto3
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    boto3 = None

from ansible.plugins.callback import CallbackBase

from ansible_collections.opsvault.aws_backup.plugins.module_utils import host_results

COLLECTION = "opsvault.aws_backup."


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "opsvault.aws_backup.host_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hosts = {}

    def _record(self, result, failed):
        task = result.task
        action = task.resolved_action or task.action
        if not (failed or str(action).startswith(COLLECTION)):
            return
        host = result.host
        entry = self._hosts.setdefault(
            host.get_name(),
            dict(
                host=host.get_name(),
                account_id=host.vars.get("aws_account_id"),
                region=host.vars.get("aws_region"),
                failed=False,
                tasks=[],
            ),
        )
        entry["failed"] = entry["failed"] or failed
        payload = json.loads(self._dump_results(result.result, indent=None))
        entry["tasks"].append(dict(task=task.get_name(), action=action, failed=failed, result=payload))

    def v2_runner_on_ok(self, result):
        self._record(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, not ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._record(result, True)

    def v2_playbook_on_stats(self, stats):
        entries = list(self._hosts.values())
        directory, s3_url = self.get_option("directory"), self.get_option("s3_url")
        if not (directory or s3_url):
            self._display.warning("host_results: set directory or s3_url; no host results written")
            return
        if directory:
            try:
                host_results.write_folder(directory, entries)
            except OSError as exc:
                self._display.error(
                    "host_results: could not write the results of {0} host(s) to {1}: {2}".format(
                        len(entries), directory, exc
                    )
                )
        if s3_url:
            if boto3 is None:
                self._display.error("host_results: s3_url needs boto3; no host results written to {0}".format(s3_url))
                return
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            try:
                host_results.write_s3(boto3.client("s3", region_name=region), s3_url, entries)
            except (BotoCoreError, ClientError, ValueError) as exc:
                self._display.error(
                    "host_results: could not write the results of {0} host(s) to {1}: {2}".format(
                        len(entries), s3_url, exc
                    )
                )
