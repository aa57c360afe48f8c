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
  host_results:
    description:
      - Merge instead of describing. A folder, or V(s3://bucket/prefix/), holding the C(<host>.json) files that the
        P(opsvault.aws_backup.host_results#callback) callback wrote for each host of a run over the
        P(opsvault.aws_backup.accounts#inventory) inventory (several AWX job slices may write into the same place).
      - The merged report lists every host, failed ones first with the message of their failure (a role that could
        not be assumed, a region that could not be described), the coverage summed over the hosts whose
        coverage report ran, per account and per region, and the problems each host's report listed (at most its
        O(report_limit)). It goes to O(json_path), O(html_path) and O(markdown_path) like a single report.
      - No EC2 call is made; O(regions) is not used. An S3 location is read with C(s3:ListBucket) and
        C(s3:GetObject), with the module's credentials (and O(assume_role_arn) when given).
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

- name: One page for the whole organisation, from the host results of a run over the accounts inventory
  opsvault.aws_backup.backup_coverage:
    host_results: s3://backup-reports/coverage/2026-11-23/
    html_path: /var/lib/backup-reports/organisation.html
    json_path: /var/lib/backup-reports/organisation.json

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
  description:
    - The percentage of sources that are V(ok), overall, per region and per policy (null when no source).
    - With O(host_results), overall, per account and per region (C(accounts), C(regions)), each with its C(hosts)
      and C(failed_hosts).
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
    account_id:
      description: With O(host_results), the account of the host whose report listed the problem.
      type: str
      sample: "123456789012"
    host:
      description: With O(host_results), that host.
      type: str
      sample: 123456789012-eu-west-1
hosts:
  description: With O(host_results), every host of the files, failed ones first.
  returned: when O(host_results) is set
  type: list
  elements: dict
  contains:
    host:
      description: The inventory host, C(<account>-<region>) from the accounts inventory.
      type: str
      sample: 123456789012-eu-west-1
    account_id:
      description: Its account.
      type: str
      sample: "123456789012"
    region:
      description: Its region.
      type: str
      sample: eu-west-1
    status:
      description: V(failed) when a task failed on the host, else V(ok).
      type: str
      sample: failed
    message:
      description: The message of its first failed task (null when none failed).
      type: str
      sample: "Could not assume role arn:aws:iam::210987654321:role/OpsvaultBackup: An error occurred (AccessDenied) ..."
    actions:
      description: The modules that ran on it.
      type: list
      elements: str
      sample: [opsvault.aws_backup.backup_coverage]
    coverage:
      description: Its coverage (C(percent), C(ok), C(total)), null when its coverage report did not run.
      type: dict
      sample: {"percent": 100.0, "ok": 4, "total": 4}
    counts:
      description: Its counts of sources and backups per status, null when its coverage report did not run.
      type: dict
    problems_total:
      description: Its number of problems.
      type: int
      sample: 0
failed_hosts:
  description: With O(host_results), the hosts on which a task failed; they are in the report, named, not left out.
  returned: when O(host_results) is set
  type: list
  elements: str
  sample: [210987654321-eu-west-1]
problems_total:
  description: The number of problems, all of them (RV(problems) may hold fewer).
  returned: always
  type: int
  sample: 4
account:
  description: The account id (null with O(host_results)).
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
  description: The regions the report covers (with O(host_results), the regions of the hosts).
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

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info

from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage
from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage_report
from ansible_collections.opsvault.aws_backup.plugins.module_utils import host_results
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import Summary
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import finish
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
    host_results=dict(type="path"),
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
        host_results=_host_results_location(params["host_results"]),
    )


def _host_results_location(location):
    if location is None:
        return None
    if host_results.is_s3(location):
        host_results.parse_s3_url(location)
        return location
    path = os.path.abspath(location)
    if not os.path.isdir(path):
        raise ValueError("host_results {0!r} is not a directory (nor s3://bucket/prefix/)".format(location))
    return path


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
        keys.update(write_files(self.options["files"], coverage_report.RENDERERS, self.report, self.errors))
        return keys

    def summarise(self, summary, result):
        for line in coverage_report.msg_lines(self.report):
            summary.note(line)
        percent, fail_under = self.report["coverage"]["percent"], self.options["fail_under"]
        if fail_under is not None and percent is not None and percent < fail_under:
            summary.note("coverage {0}% is under fail_under {1}%".format(percent, fail_under))
            result["failed"] = True


def write_files(files, renderers, report, errors):
    """Each report file asked for; a file that cannot be written is an error, the others are still written."""
    written = {}
    for option, path in files.items():
        try:
            coverage_report.write_file(path, renderers[option](report))
            written[option] = path
        except OSError as exc:
            errors.append(error_entry(path, None, "write_" + option, code="OSError", message=str(exc)))
    return written


def read_host_results(module, location):
    if not host_results.is_s3(location):
        return host_results.read_folder(location)
    region = get_aws_connection_info(module)[0] or "us-east-1"
    try:
        return host_results.read_s3(client_for(module, "s3", region), location)
    except (BotoCoreError, ClientError) as exc:
        module.fail_json_aws(exc, msg="Could not read the host results under {0}".format(location))


def merge_host_results(module, options):
    """The organisation-wide report from the per-host files: no EC2 call."""
    location = options["host_results"]
    try:
        entries = read_host_results(module, location)
    except (OSError, ValueError) as exc:
        module.fail_json(msg="host_results {0}: {1}".format(location, exc))
    report = coverage_report.merge(entries, values.utc_now(), sources=[location])
    errors = []
    result = dict(
        changed=False,
        hosts=report["hosts"],
        failed_hosts=report["failed_hosts"],
        counts=report["counts"],
        coverage=report["coverage"],
        problems=report["problems"][: options["report_limit"]],
        problems_total=report["problems_total"],
        account=None,
        generated_at=report["generated_at"],
        skipped_resources=[],
        regions=sorted({row["region"] for row in report["hosts"] if row["region"]}),
    )
    result.update(write_files(options["files"], coverage_report.MERGED_RENDERERS, report, errors))
    summary = Summary(module.check_mode)
    if not entries:
        summary.note("no host results under {0}".format(location))
    for line in coverage_report.merged_msg_lines(report):
        summary.note(line)
    percent, fail_under = report["coverage"]["percent"], options["fail_under"]
    if fail_under is not None and percent is not None and percent < fail_under:
        summary.note("coverage {0}% is under fail_under {1}%".format(percent, fail_under))
        result["failed"] = True
    summary.errors(errors)
    result["errors"] = errors
    result["msg"] = "{0}: {1}".format(location, summary.text())
    finish(module, result)


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    if options["host_results"]:
        merge_host_results(module, options)
    BackupCoverage.for_module(module, options).run()


if __name__ == "__main__":
    main()
