#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_coverage
short_description: Report what is not protected, every source and every backup with one status, in one or more regions
version_added: 0.2.0
description:
  - Reads instances, volumes, AMIs and snapshots once per region and changes nothing (C(changed) is always false).
  - Every source (the instances and volumes that carry O(tag_key), or all of them with O(scope=all)) gets one
    status, worst first, V(missing) (no backup at all), V(last_failed) (the newest backup failed),
    V(pending_too_long) (the newest backup is still pending after O(pending_limit)), V(stale) (the newest
    successful backup is older than the RPO, O(rpo) or the source's O(rpo_tag) tag), V(not_restore_tested)
    (with O(require_restore_test)), or V(ok). Backups of every maker count, the collection's, Data Lifecycle
    Manager's and AWS Backup's.
  - Every backup (each AMI, and each snapshot that no registered AMI uses) gets one status, worst first,
    V(shared_public) (anyone may launch it or create volumes from it), V(expired_not_purged) (past C(DeleteOn)
    and the purge rule would remove it), V(orphan) (its source is gone; RV(problems[].purge_reason) says whether
    O(keep_min) keeps it), V(unmanaged) (made by DLM C(aws:dlm:*), AWS Backup C(aws:backup:*) or something
    else, in RV(problems[].maker)), or V(ok).
  - The full report goes to O(json_path), O(html_path) and O(markdown_path); the result holds the counts and the
    first O(report_limit) problems.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  scope:
    description: V(tagged) reports the instances and volumes that carry O(tag_key); V(all) reports every one.
    type: str
    default: tagged
    choices: [tagged, all]
  tag_key:
    description: The tag that selects an instance or a volume for backup; its value is the policy in the report.
    type: str
    default: Backup
  tag_value:
    description: With O(scope=tagged), only sources whose O(tag_key) tag has this value.
    type: str
  rpo:
    description:
      - The recovery point objective, the oldest a source's newest successful backup may be.
      - A number of days (V(1)), or a count with a unit, V(26h), V(1d), V(1w).
    type: str
    default: 1d
  rpo_tag:
    description: A source with this tag uses its value as its RPO; a bad value is a warning and O(rpo) applies.
    type: str
    default: BackupRPO
  pending_limit:
    description: How long the newest backup may stay pending before the source is V(pending_too_long), as O(rpo).
    type: str
    default: 6h
  require_restore_test:
    description:
      - Also require a passed restore test, a C(LastRestoreTest) tag reading C(<when>:passed) (for example
        V(2026-11-20T03:00:00Z:passed)) on the source or one of its backups within O(restore_test_max_age).
    type: bool
    default: false
  restore_test_max_age:
    description: With O(require_restore_test), how old the last passed restore test may be, as O(rpo).
    type: str
    default: 30d
  keep_min:
    description: The newest ready backups of each source the purge keeps (to tell whether an orphan stays).
    type: int
    default: 1
  report_limit:
    description: The most problems listed in RV(problems); the files hold all of them.
    type: int
    default: 50
  fail_under:
    description:
      - Fail the task when the coverage (the percentage of sources that are V(ok)) is below this, after the files
        are written, so that a notification carries the failure. Between 0 and 100.
      - With no source at all the coverage is null, reported as C(no sources selected), and the task does not fail.
    type: float
  mirror_dests:
    description:
      - The O(opsvault.aws_backup.s3_mirror#module:dest) directories of S3 mirrors on this host, each reported as a
        source, V(ok) when its last complete run finished within O(rpo), V(stale) when earlier, V(missing) when
        none is recorded (M(opsvault.aws_backup.s3_mirror) records it in dest after every complete run).
    type: list
    elements: path
    default: []
  json_path:
    description: Write the full report here as JSON (a versioned document with every source and backup).
    type: path
  html_path:
    description: Write the report here as one self-contained HTML page (no external assets), worst first.
    type: path
  markdown_path:
    description: Write the report here as Markdown.
    type: path
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeInstances), C(ec2:DescribeVolumes), C(ec2:DescribeImages),
    C(ec2:DescribeSnapshots), and C(sts:GetCallerIdentity) (allowed to every principal).
  - The calls per region do not grow with the number of resources, apart from pages; public sharing is read from
    the C(Public) field of DescribeImages and from one DescribeSnapshots with C(RestorableByUserIds=all), never
    from one attribute call per backup.
  - The files are written in check mode too (they are the report); nothing in AWS is changed in any mode.
  - A status for copies in a disaster-recovery region or account (C(no_dr_copy)) comes with the copy module.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Report the coverage of every region, failing under 95 percent
  opsvault.aws_backup.backup_coverage:
    regions: all
    rpo: 26h
    json_path: /var/lib/backup-reports/coverage.json
    html_path: /var/lib/backup-reports/coverage.html
    markdown_path: /var/lib/backup-reports/coverage.md
    fail_under: 95
  register: coverage

- name: Show the sources that are not protected
  ansible.builtin.debug:
    msg: "{{ coverage.problems | selectattr('kind', 'in', ['instance', 'volume']) | map(attribute='resource') }}"
"""

RETURN = r"""
counts:
  description: The number of sources and of backups in each status (every status, zeros included).
  returned: always
  type: dict
  sample: {"sources": {"missing": 1, "last_failed": 0, "pending_too_long": 0, "stale": 2,
           "not_restore_tested": 0, "ok": 40}, "backups": {"shared_public": 0, "expired_not_purged": 3,
           "orphan": 1, "unmanaged": 12, "ok": 300}}
coverage:
  description: The percentage of sources that are V(ok), overall, per region and per policy (null when no source).
  returned: always
  type: dict
  sample: {"percent": 93.0, "ok": 40, "total": 43, "regions": {"eu-west-1": {"percent": 93.0, "ok": 40, "total": 43}},
           "policies": {"default": {"percent": 93.0, "ok": 40, "total": 43}}}
problems:
  description:
    - The sources, then the backups, whose status is not V(ok), worst first, at most O(report_limit).
    - The JSON file holds every source and every backup in the same shape, under C(sources) and C(backups).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(instance), V(volume) or V(s3_mirror) for a source; V(image) or V(snapshot) for a backup.
      type: str
      sample: instance
    resource:
      description: The instance, volume, AMI or snapshot id, or the mirror's dest.
      type: str
      sample: i-0123456789abcdef0
    region:
      description: The region (V(local) for a mirror).
      type: str
      sample: eu-west-1
    name:
      description: The C(Name) tag (the bucket and prefix of a mirror).
      type: str
      sample: web
    status:
      description: The one status of the item.
      type: str
      sample: stale
    reason:
      description: Why, in words.
      type: str
      sample: the newest successful backup, ami-0123456789abcdef0, is 3 days old (RPO 1 day)
    policy:
      description: A source's policy, the value of its O(tag_key) tag (V(default) when empty).
      type: str
      sample: default
    rpo_seconds:
      description: A source's RPO.
      type: int
      sample: 86400
    newest_backup:
      description: A source's newest backup, of any state.
      type: str
      sample: ami-0123456789abcdef0
    newest_ok_backup:
      description: A source's newest successful backup.
      type: str
      sample: ami-0123456789abcdef0
    newest_ok_age_seconds:
      description: Its age; null when there is none.
      type: int
      sample: 259200
    source:
      description: A backup's source instance or volume (null when unknown, as for copies).
      type: str
      sample: i-0123456789abcdef0
    maker:
      description: Who made a backup, V(opsvault.aws_backup), V(dlm), V(aws_backup) or V(other).
      type: str
      sample: dlm
    maker_detail:
      description: The DLM policy id, or the AWS Backup source resource.
      type: str
      sample: policy-0123456789abcdef0
    purge:
      description: For a backup the collection made, whether the purge rule would remove it today.
      type: bool
      sample: false
    purge_reason:
      description: The purge rule's reason, for example that O(keep_min) keeps it.
      type: str
      sample: one of the newest 1 ready backup(s) of i-0123456789abcdef0 (keep_min)
problems_total:
  description: The number of problems, all of them (RV(problems) may hold fewer).
  returned: always
  type: int
  sample: 4
account:
  description: The account id.
  returned: always
  type: str
  sample: "123456789012"
generated_at:
  description: When the report was made (UTC).
  returned: always
  type: str
  sample: "2026-11-23T06:00:00+00:00"
json_path:
  description: The JSON file written, when O(json_path) is set.
  returned: when O(json_path) is set
  type: str
html_path:
  description: The HTML file written, when O(html_path) is set.
  returned: when O(html_path) is set
  type: str
markdown_path:
  description: The Markdown file written, when O(markdown_path) is set.
  returned: when O(markdown_path) is set
  type: str
skipped_resources:
  description: Always empty; every resource described gets a status.
  returned: always
  type: list
  elements: dict
errors:
  description: Every region that could not be described, with the AWS error code, or a file that could not be written.
  returned: always
  type: list
  elements: dict
regions:
  description: The regions the report covers.
  returned: always
  type: list
  elements: str
msg:
  description: The coverage and the first problems of each status, to read in a job log.
  returned: always
  type: str
  sample: "eu-west-1: Coverage 93.0% (40 of 43 sources ok). 1 missing source(s): i-0123456789abcdef0 (eu-west-1): no backup at all."
"""

import os

from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage
from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage_report
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_index import read_last_run

ARGUMENT_SPEC = shared.argument_spec(
    scope=dict(type="str", default=coverage.SCOPE_TAGGED, choices=list(coverage.SCOPES)),
    tag_key=dict(type="str", default="Backup", no_log=False),
    tag_value=dict(type="str"),
    rpo=dict(type="str", default="1d"),
    rpo_tag=dict(type="str", default="BackupRPO", no_log=False),
    pending_limit=dict(type="str", default="6h"),
    require_restore_test=dict(type="bool", default=False),
    restore_test_max_age=dict(type="str", default="30d"),
    keep_min=dict(type="int", default=1),
    report_limit=dict(type="int", default=50),
    fail_under=dict(type="float"),
    mirror_dests=dict(type="list", elements="path", default=[]),
    json_path=dict(type="path"),
    html_path=dict(type="path"),
    markdown_path=dict(type="path"),
)
LIVE_INSTANCE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]


def _positive_age(params, option):
    age = values.parse_age(params[option], option)
    if not age:
        raise ValueError("{0} must be more than zero, got {1!r}".format(option, params[option]))
    return age


def check_writable(option, path):
    """Refuse, naming the option and the path, a report file that cannot be written."""
    if path is None:
        return None
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ValueError("{0} {1!r} is a directory; give a file name".format(option, path))
    if not os.path.isdir(directory):
        raise ValueError("{0} {1!r} cannot be written: directory {2} does not exist".format(option, path, directory))
    if not os.access(directory, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ValueError("{0} {1!r} cannot be written: permission denied".format(option, path))
    return path


def parse_options(params, check_mode):
    for key in ("tag_key", "rpo_tag"):
        shared.not_empty(key, params[key])
    purge_rule.check_counts(params["keep_min"])
    shared.at_least("report_limit", params["report_limit"], 0)
    fail_under = params["fail_under"]
    if fail_under is not None and not 0 <= fail_under <= 100:
        raise ValueError("fail_under must be a percentage between 0 and 100, got {0}".format(fail_under))
    return dict(
        scope=params["scope"],
        tag_key=params["tag_key"],
        tag_value=params["tag_value"],
        rpo=_positive_age(params, "rpo"),
        rpo_tag=params["rpo_tag"],
        pending_limit=_positive_age(params, "pending_limit"),
        require_restore_test=params["require_restore_test"],
        restore_test_max_age=_positive_age(params, "restore_test_max_age"),
        keep_min=params["keep_min"],
        report_limit=params["report_limit"],
        fail_under=fail_under,
        mirror_dests=[os.path.realpath(dest) for dest in params["mirror_dests"]],
        files={key: check_writable(key, params[key]) for key in coverage_report.RENDERERS if params[key]},
    )


def describe_region(client, options):
    """Five paginated calls per region, whatever the number of resources."""
    instance_filters = [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]
    reservations = paginate(client, "describe_instances", "Reservations", Filters=instance_filters)
    public = paginate(client, "describe_snapshots", "Snapshots", OwnerIds=["self"], RestorableByUserIds=["all"])
    return {
        "instances": [instance for reservation in reservations for instance in reservation["Instances"]],
        "volumes": paginate(client, "describe_volumes", "Volumes"),
        "images": paginate(client, "describe_images", "Images", Owners=["self"]),
        "snapshots": paginate(client, "describe_snapshots", "Snapshots", OwnerIds=["self"]),
        "public_snapshot_ids": [snapshot["SnapshotId"] for snapshot in public],
    }


def _option_summary(options):
    summary = {key: value for key, value in options.items() if key != "files"}
    for key in ("rpo", "pending_limit", "restore_test_max_age"):
        summary[key + "_seconds"] = int(summary.pop(key).total_seconds())
    return summary


class BackupCoverage(RegionalJob):
    needs_account_id = True
    action = "report"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sources, self.backups, self.report = [], [], None

    def describe(self, region):
        return describe_region(self.clients[region], self.options)

    def plan_region(self, region, described):
        found = coverage.classify_region(region, described, self.options, self.now, self.account_id)
        return dict(found, todo=[])

    def after_plan(self, plans):
        for region_plan in plans:
            self.sources.extend(region_plan["sources"])
            self.backups.extend(region_plan["backups"])
        for dest in self.options["mirror_dests"]:
            record, problem = read_last_run(dest)
            self.sources.append(coverage.classify_mirror(dest, record, problem, self.options["rpo"], self.now))

    def result_keys(self, done):
        self.report = coverage_report.build(
            self.sources,
            self.backups,
            self.regions,
            self.account_id,
            self.now,
            _option_summary(self.options),
            self.errors,
        )
        found = coverage_report.problems(self.report)
        keys = dict(
            changed=False,
            counts=self.report["counts"],
            coverage=self.report["coverage"],
            problems=found[: self.options["report_limit"]],
            problems_total=len(found),
            account=self.account_id,
            generated_at=self.report["generated_at"],
        )
        for option, path in self.options["files"].items():
            try:
                coverage_report.write_file(path, coverage_report.RENDERERS[option](self.report))
                keys[option] = path
            except OSError as exc:
                self.errors.append(error_entry(path, None, "write_" + option, code="OSError", message=str(exc)))
        return keys

    def summarise(self, summary, result):
        for line in coverage_report.msg_lines(self.report):
            summary.note(line)
        percent, fail_under = self.report["coverage"]["percent"], self.options["fail_under"]
        if fail_under is not None and percent is not None and percent < fail_under:
            summary.note("coverage {0}% is under fail_under {1}%".format(percent, fail_under))
            result["failed"] = True


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    BackupCoverage.for_module(module, options).run()


if __name__ == "__main__":
    main()
