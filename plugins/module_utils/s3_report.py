# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What an S3 mirror run reports, in the collection's result vocabulary: complete counts, and lists
capped at ``report_limit`` entries so that a run of a million keys returns a small result."""

import os

from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import Summary
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import PREVIOUS_DIR_NAME

COUNTS = (
    "listed",
    "downloaded",
    "adopted",
    "unchanged",
    "directories",
    "excluded",
    "skipped",
    "deleted",
    "orphaned",
    "kept_previous",
    "errors",
)


class Report:
    def __init__(self, limit, region, check_mode=False):
        self.limit = limit
        self.region = region
        self.check_mode = check_mode
        self.counts = dict.fromkeys(COUNTS, 0)
        self.bytes = dict(downloaded=0, listed=0)
        self.lists = dict(downloaded_keys=[], skipped_resources=[], deleted_files=[], orphaned_files=[], errors=[])
        self.warnings = []
        self.notes = []

    def add(self, count, list_name=None, item=None):
        self.counts[count] += 1
        if list_name and len(self.lists[list_name]) < self.limit:
            self.lists[list_name].append(item)

    def listed(self, obj):
        self.counts["listed"] += 1
        self.bytes["listed"] += obj.size

    def downloaded(self, obj, reason):
        self.bytes["downloaded"] += obj.size
        item = {"key": obj.key, "size": obj.size, "reason": reason}
        if self.check_mode:
            item["state"] = PLANNED
        self.add("downloaded", "downloaded_keys", item)

    def skipped(self, key, reason):
        self.add("skipped", "skipped_resources", skipped_entry(key, self.region, reason))

    def error(self, resource, action, exc):
        self.add("errors", "errors", error_entry(resource, self.region, action, exc))

    @property
    def changed(self):
        return bool(self.counts["downloaded"] or self.counts["deleted"] or self.counts["directories"])

    def result(self):
        return dict(
            changed=self.changed,
            counts=self.counts,
            bytes=self.bytes,
            regions=[self.region],
            **self.lists,
        )

    def summary(self, source, dest):
        """The ``msg``: ``s3://bucket/prefix -> dest:``, then a line per action with its first keys."""
        counts, lists = self.counts, self.lists
        summary = Summary(self.check_mode)

        def below_dest(path):
            return os.path.relpath(path, dest)

        summary.done(
            "downloaded",
            "download",
            "object(s)",
            lists["downloaded_keys"],
            lambda item: "{key} ({reason})".format(**item),
            counts["downloaded"],
        )
        summary.done("created", "create", "directory(ies)", [], str, counts["directories"])
        summary.done("deleted", "delete", "file(s)", lists["deleted_files"], below_dest, counts["deleted"])
        summary.done(
            "kept", "keep", "file(s) whose object is gone", lists["orphaned_files"], below_dest, counts["orphaned"]
        )
        if counts["kept_previous"]:
            summary.note(
                "{0} replaced or deleted file(s) {1} in {2} (keep_previous)".format(
                    counts["kept_previous"], "would be kept" if self.check_mode else "kept", PREVIOUS_DIR_NAME
                )
            )
        summary.skipped(lists["skipped_resources"], "key(s)", counts["skipped"])
        summary.note(
            "{0} listed ({1} bytes), {2} unchanged, {3} excluded".format(
                counts["listed"], self.bytes["listed"], counts["unchanged"], counts["excluded"]
            )
        )
        if counts["adopted"]:
            summary.note(
                "{0} file(s) found complete on disk {1} without a download".format(
                    counts["adopted"], "would be recorded" if self.check_mode else "recorded"
                )
            )
        for note in self.notes:
            summary.note(note)
        summary.errors(lists["errors"], counts["errors"])
        return "{0} -> {1}: {2}".format(source, dest, summary.text())
