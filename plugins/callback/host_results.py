# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: host_results
type: aggregate
short_description: Each host's results of the collection's modules, one JSON file per host
version_added: 0.2.0
description:
  - Writes C(<directory>/<host>.json) at the end of a run, with the results of every task of the
    opsvault.aws_backup modules on that host and every failed task, so that the hosts of the
    P(opsvault.aws_backup.accounts#inventory) inventory, run by several forks or AWX job slices, leave
    one file each to merge into an organisation-wide report.
  - "Each file holds C(host), C(account_id), C(region) (the host's C(aws_account_id) and C(aws_region)),
    C(failed) (whether any task failed on the host) and C(tasks): C(task), C(action), C(failed), C(result)."
  - Files are written whole (a temporary file, then a rename), so a reader never sees half of one.
requirements:
  - enabled with C(callbacks_enabled = opsvault.aws_backup.host_results) or C(ANSIBLE_CALLBACKS_ENABLED)
options:
  directory:
    description: The folder the files go to (created when missing).
    type: path
    required: true
    env:
      - name: OPSVAULT_RESULTS_DIR
    ini:
      - section: opsvault_host_results
        key: directory
"""

import json
import os
import tempfile

from ansible.plugins.callback import CallbackBase

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
        directory = self.get_option("directory")
        os.makedirs(directory, exist_ok=True)
        for name, entry in self._hosts.items():
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=".{0}.".format(name))
            with os.fdopen(handle, "w") as out:
                json.dump(entry, out, indent=1, sort_keys=True, default=str)
            os.replace(temporary, os.path.join(directory, "{0}.json".format(name)))
