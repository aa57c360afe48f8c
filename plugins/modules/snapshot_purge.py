#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: snapshot_purge
short_description: Delete or archive the EBS snapshots the account no longer needs, in one or more regions
version_added: 0.1.0
description:
  - Expired snapshots are the ones with the managed marker C(CreatedBy=opsvault.aws_backup) whose C(DeleteOn)
    date is on or before today (or O(as_of)), decided per volume by the purge rule below.
  - With O(stale), snapshots of volumes that no longer exist (V(volume_gone)) or that are attached to no running
    instance (V(unattached)) go too when they are older than O(stale_min_age), whatever their C(DeleteOn)
    and O(keep_min) say. Only the collection's own snapshots (and, with O(adopt_legacy), legacy ones) unless
    O(stale_include_unmanaged=true). Younger stale snapshots are listed in RV(skipped_resources) with their age.
    Copies (volume id C(vol-ffffffff)) are never stale.
  - Never touched, each listed in RV(skipped_resources) with the reason, a snapshot that a registered AMI uses
    (checked from one DescribeImages per region before any change), one owned by another account, one tagged
    with O(keep_tag), and one still C(pending).
  - With O(action=delete) or V(report), a snapshot locked against deletion (EBS snapshot lock, as
    M(opsvault.aws_backup.vault_guard) sets) is left alone until its lock ends, listed in RV(skipped_resources) with C(locked_until); the locks come from one
    DescribeLockedSnapshots per region, and a lock set after that is reported the same way, not as an error.
  - O(action=archive) moves the snapshots to the archive tier (ModifySnapshotTier) instead of deleting them;
    what AWS cannot archive (snapshots not C(completed), or already archived) is left alone with the reason.
    O(action=report) changes nothing and lists the plan in RV(purgeable).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  action:
    description: What to do with the snapshots the purge selects.
    type: str
    default: delete
    choices: [delete, archive, report]
  keep_tag:
    description:
      - A snapshot with this tag is never purged, unless the value is V(no), V(false), V(0), V(off) or empty.
    type: str
    default: Keep
  stale:
    description:
      - V(volume_gone) also purges snapshots whose source volume no longer exists.
      - V(unattached) also purges snapshots whose volume exists but is attached to no running instance.
      - V(none) purges expired snapshots only.
    type: str
    default: none
    choices: [none, volume_gone, unattached]
  stale_min_age:
    description:
      - With O(stale), only snapshots at least this old (on O(as_of)) are stale.
      - A number of days (V(30)), or a count with a unit, V(12h), V(30d), V(2w). Negative ages are refused.
    type: str
    default: "30"
  stale_include_unmanaged:
    description:
      - With O(stale), also purge stale snapshots this collection did not make (no C(CreatedBy) marker, for
        example an untagged snapshot of a deleted volume). This is the old scripts' clean-up of every snapshot whose
        volume is gone, or unattached. Such snapshots are reported with C(managed=false) and the reason says so.
      - The IAM policy for this needs C(ec2:DeleteSnapshot) (or C(ec2:ModifySnapshotTier)) without the marker
        condition; the iam_policy filter gives it only to a feature with this option set.
    type: bool
    default: false
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeSnapshots), C(ec2:DescribeLockedSnapshots) (to delete or report),
    C(ec2:DescribeImages), C(ec2:DescribeVolumes) and
    C(ec2:DescribeInstances) (with O(stale)), C(ec2:DeleteSnapshot) or C(ec2:ModifySnapshotTier), and
    C(sts:GetCallerIdentity) (allowed to every principal) to check snapshot owners.
  - Supports check mode, which returns the plan in RV(deleted_snapshots) or RV(archived_snapshots) (each
    V(planned)) and makes no change. O(action=report) may use a future O(as_of) outside check mode, as it changes nothing.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - opsvault.aws_backup.purge
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Delete expired snapshots everywhere, keeping the newest two of each volume
  opsvault.aws_backup.snapshot_purge:
    regions: all
    keep_min: 2

- name: Archive the snapshots of volumes deleted more than 90 days ago, including those older scripts made
  opsvault.aws_backup.snapshot_purge:
    regions: [eu-west-1]
    stale: volume_gone
    stale_min_age: 90
    stale_include_unmanaged: true
    action: archive

- name: Preview what the purge will do on the first of next month
  opsvault.aws_backup.snapshot_purge:
    action: report
    as_of: "2026-12-01"
  register: preview

- name: Show the snapshots it would purge
  ansible.builtin.debug:
    msg: "{{ preview.purgeable | map(attribute='snapshot_id') }}"
"""

RETURN = r"""
deleted_snapshots:
  description: The snapshots deleted (in check mode, the ones that would be).
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id.
      type: str
      sample: snap-0123456789abcdef0
    volume_id:
      description: The source volume.
      type: str
      sample: vol-0123456789abcdef0
    region:
      description: The region.
      type: str
      sample: eu-west-1
    start_time:
      description: When the snapshot was started (UTC).
      type: str
      sample: "2026-11-01T01:00:00+00:00"
    delete_on:
      description: The C(DeleteOn) tag, if any.
      type: str
      sample: "2026-11-08"
    managed:
      description: Whether the snapshot carries the managed marker (made by this collection).
      type: bool
      sample: true
    legacy:
      description: The opposite of RV(deleted_snapshots[].managed).
      type: bool
      sample: false
    reason:
      description: Why it was purged.
      type: str
      sample: expired on 2026-11-08
    state:
      description: V(deleted), V(archived), or V(planned) in check mode.
      type: str
      sample: deleted
archived_snapshots:
  description: The snapshots moved to the archive tier (in check mode, the ones that would be), as RV(deleted_snapshots).
  returned: always
  type: list
  elements: dict
purgeable:
  description: Every snapshot the purge selects, with the reason, whatever O(action) is (the plan of V(report)).
  returned: always
  type: list
  elements: dict
skipped_resources:
  description: The snapshots considered and left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "snapshot_id": "snap-0123456789abcdef0", "region": "eu-west-1",
            "volume_id": "vol-0123456789abcdef0", "state": "completed", "reason": "used by registered AMI ami-0123456789abcdef0"},
           {"resource": "snap-0fedcba9876543210", "snapshot_id": "snap-0fedcba9876543210", "region": "eu-west-1",
            "volume_id": "vol-0123456789abcdef0", "reason": "expired on 2026-11-08; locked (governance) until 2026-12-01T00:00:00+00:00",
            "locked_until": "2026-12-01T00:00:00+00:00"}]
errors:
  description: Every snapshot or region that failed, with the step and the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "region": "eu-west-1", "action": "delete_snapshot",
            "code": "InvalidSnapshot.InUse", "message": "..."}]
as_of:
  description: The date expiry and ages were judged on.
  returned: always
  type: str
  sample: "2026-11-23"
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Deleted 2 snapshot(s): snap-0123456789abcdef0 of vol-0123456789abcdef0 (expired on 2026-11-08); ..."
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils import guard
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED

ARGUMENT_SPEC = shared.argument_spec(
    shared.PURGE,
    action=dict(type="str", default="delete", choices=list(shared.SNAPSHOT_PURGE_ACTIONS)),
    keep_tag=dict(type="str", default="Keep", no_log=False),
    stale=dict(type="str", default="none", choices=list(shared.STALE_MODES)),
    stale_min_age=dict(type="str", default="30"),
    stale_include_unmanaged=dict(type="bool", default=False),
)
DONE_STATES = {ebs.ACTION_DELETE: "deleted", ebs.ACTION_ARCHIVE: "archived"}


def parse_options(params, check_mode, today=None):
    today = today or values.utc_now().date()
    purge_rule.check_counts(params["keep_min"], params["keep_last"])
    if not params["keep_tag"] or not params["keep_tag"].strip():
        raise ValueError("keep_tag must not be empty")
    as_of = values.parse_as_of(params["as_of"], today)
    # A report changes nothing: it may look at any date.
    values.check_as_of(as_of, today, check_mode or params["action"] == ebs.ACTION_REPORT, params["allow_future_as_of"])
    return {
        "action": params["action"],
        "as_of": as_of,
        "keep_min": params["keep_min"],
        "keep_last": params["keep_last"],
        "keep_tag": params["keep_tag"],
        "adopt_legacy": params["adopt_legacy"],
        "stale": params["stale"],
        "stale_min_age": values.parse_age(params["stale_min_age"], "stale_min_age"),
        "stale_include_unmanaged": params["stale_include_unmanaged"],
    }


def snapshot_filters(options):
    """Server-side: only managed snapshots, unless legacy or unmanaged stale ones are in scope."""
    if options["stale"] != ebs.STALE_NONE and options["stale_include_unmanaged"]:
        return []
    if options["adopt_legacy"]:
        return [{"Name": "tag-key", "Values": [contract.DELETE_ON_KEY]}]
    return [{"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]}]


def describe_region(client, options):
    """Snapshots, the AMIs that may use them, and (for stale) volumes and running instances of one region."""
    data = {
        "snapshots": paginate(
            client, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=snapshot_filters(options)
        ),
        "images": paginate(client, "describe_images", "Images", Owners=["self"]),
        "volumes": [],
        "running": set(),
        "locks": {},
    }
    if options["stale"] != ebs.STALE_NONE:
        data["volumes"] = paginate(client, "describe_volumes", "Volumes")
    if options["stale"] == ebs.STALE_UNATTACHED:
        reservations = paginate(
            client,
            "describe_instances",
            "Reservations",
            Filters=[{"Name": "instance-state-name", "Values": ["running"]}],
        )
        data["running"] = {
            instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]
        }
    if options["action"] != ebs.ACTION_ARCHIVE:
        data["locks"] = guard.describe_snapshot_locks(client)
    return data


def apply(client, item, action):
    if action == ebs.ACTION_ARCHIVE:
        client.modify_snapshot_tier(SnapshotId=item["snapshot_id"], StorageTier="archive")
        return item
    try:
        client.delete_snapshot(SnapshotId=item["snapshot_id"])
    except is_boto3_error_code("InvalidSnapshot.NotFound"):
        pass  # already deleted, by a retried request or another run
    return item


def public_item(item, state=None):
    public = {key: value for key, value in item.items() if key not in ("state", "storage_tier")}
    if state:
        public["state"] = state
    return public


class SnapshotPurge(RegionalJob):
    needs_account_id = True

    def __init__(self, module, options, *args, **kwargs):
        super().__init__(module, options, *args, **kwargs)
        self.action = options["action"] + "_snapshot"
        self.purgeable = []

    def describe(self, region):
        return describe_region(self.clients[region], self.options)

    def plan_region(self, region, described):
        region_plan = ebs.plan_snapshot_purge(
            region,
            described["snapshots"],
            described["images"],
            described["volumes"],
            described["running"],
            self.options,
            self.now,
            self.account_id,
        )
        purgeable, held = guard.hold_locked_snapshots(
            region, region_plan["todo"], described["locks"], self.now, details=("volume_id", "state")
        )
        region_plan = dict(region_plan, todo=purgeable, skipped=region_plan["skipped"] + held)
        if self.options["action"] == ebs.ACTION_REPORT:
            region_plan = dict(region_plan, todo=[])
        return dict(region_plan, purgeable=purgeable)

    def after_plan(self, plans):
        self.purgeable = [public_item(item) for region_plan in plans for item in region_plan["purgeable"]]

    def resource_of(self, item):
        return item["snapshot_id"]

    def preview(self, item):
        return public_item(item, PLANNED)

    def apply(self, item):
        client = self.clients[item["region"]]
        try:
            return public_item(apply(client, item, self.options["action"]), DONE_STATES[self.options["action"]])
        except ClientError as exc:
            lock = None
            if self.action == "delete_snapshot":
                lock = guard.refused_for_lock(client, item["snapshot_id"], exc, self.now)
            if lock is None:
                raise
            self.skipped.append(
                guard.locked_snapshot_entry(
                    item["snapshot_id"], item["region"], lock, volume_id=item["volume_id"], state=item["state"]
                )
            )
            return []

    def result_keys(self, done):
        action = self.options["action"]
        return dict(
            changed=bool(done),
            deleted_snapshots=done if action == ebs.ACTION_DELETE else [],
            archived_snapshots=done if action == ebs.ACTION_ARCHIVE else [],
            purgeable=self.purgeable,
            as_of=self.options["as_of"].isoformat(),
        )

    def summarise(self, summary, result):
        def describe(item):
            return "{snapshot_id} of {volume_id} ({reason})".format(**item)

        summary.done("deleted", "delete", "snapshot(s)", result["deleted_snapshots"], describe)
        summary.done("archived", "archive", "snapshot(s)", result["archived_snapshots"], describe)
        if self.options["action"] == ebs.ACTION_REPORT:
            summary.done(
                "reported", "report", "purgeable snapshot(s) as of " + result["as_of"], result["purgeable"], describe
            )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    SnapshotPurge.for_module(module, options).run()


if __name__ == "__main__":
    main()
