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
    date is on or before today (or O(as_of)). The newest O(keep_min) completed snapshots of each volume are kept,
    and when the newest snapshot of a volume is not C(completed), nothing of that volume expires in this run.
  - With O(stale), snapshots of volumes that no longer exist (V(volume_gone)) or that are attached to no running
    instance (V(unattached)) are purged too, managed or not, when they are older than O(stale_min_age).
    O(keep_min) does not protect them. Copies (volume id C(vol-ffffffff)) are never stale.
  - Never touched, each listed in RV(kept) with the reason, a snapshot that a registered AMI uses (checked from
    one DescribeImages per region before any change), one owned by another account, one tagged with O(keep_tag),
    and one still C(pending).
  - O(action=archive) moves the snapshots to the archive tier (ModifySnapshotTier) instead of deleting them;
    what AWS cannot archive (snapshots not C(completed), or already archived) is kept with the reason.
    O(action=report) changes nothing and lists the plan in RV(purgeable).
  - Regions are processed concurrently, and a failing region or snapshot does not stop the others;
    the task fails at the end, listing every error in RV(errors).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  regions:
    description:
      - The regions to purge in.
      - V(all) means every region enabled for the account.
      - Defaults to the task's O(region).
    type: list
    elements: str
  action:
    description: What to do with the snapshots the purge selects.
    type: str
    default: delete
    choices: [delete, archive, report]
  as_of:
    description: The date (V(YYYY-MM-DD), UTC) expiry and ages are judged on, to preview a future purge. Defaults to today.
    type: str
  keep_min:
    description: The newest completed snapshots of each volume that never expire.
    type: int
    default: 1
  keep_tag:
    description:
      - A snapshot with this tag is never purged, unless the value is V(no), V(false), V(0), V(off) or empty.
    type: str
    default: Keep
  adopt_legacy:
    description: Also expire snapshots that have a C(DeleteOn) tag but not the managed marker (made by older scripts).
    type: bool
    default: false
  stale:
    description:
      - V(volume_gone) purges snapshots whose source volume no longer exists (seed 002).
      - V(unattached) purges snapshots whose volume exists but is attached to no running instance.
      - V(none) purges expired snapshots only.
    type: str
    default: none
    choices: [none, volume_gone, unattached]
  stale_min_age:
    description:
      - With O(stale), only snapshots at least this old are stale.
      - A number of days (V(30)), or a count with a unit, V(12h), V(30d), V(2w). Negative ages are refused.
    type: str
    default: "30"
  max_concurrency:
    description: The most AWS requests in flight at once, across all regions.
    type: int
    default: 16
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeSnapshots), C(ec2:DescribeImages), C(ec2:DescribeVolumes) and
    C(ec2:DescribeInstances) (with O(stale)), C(ec2:DeleteSnapshot) or C(ec2:ModifySnapshotTier), and
    C(sts:GetCallerIdentity) (allowed to every principal) to check snapshot owners.
  - Supports check mode, which returns the plan in RV(deleted) or RV(archived) and makes no change.
  - Throttled requests are retried with botocore's adaptive retry mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Delete expired snapshots everywhere, keeping the newest two of each volume
  opsvault.aws_backup.snapshot_purge:
    regions: all
    keep_min: 2

- name: Archive the snapshots of volumes deleted more than 90 days ago
  opsvault.aws_backup.snapshot_purge:
    regions: [eu-west-1]
    stale: volume_gone
    stale_min_age: 90
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
deleted:
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
    legacy:
      description: Whether the snapshot lacks the managed marker.
      type: bool
      sample: false
    reason:
      description: Why it was purged.
      type: str
      sample: expired on 2026-11-08
archived:
  description: The snapshots moved to the archive tier (in check mode, the ones that would be), as RV(deleted).
  returned: always
  type: list
  elements: dict
purgeable:
  description: Every snapshot the purge selects, with the reason, whatever O(action) is (the plan of V(report)).
  returned: always
  type: list
  elements: dict
kept:
  description: The snapshots considered and left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"snapshot_id": "snap-0123456789abcdef0", "volume_id": "vol-0123456789abcdef0", "region": "eu-west-1",
            "state": "completed", "reason": "used by registered AMI ami-0123456789abcdef0"}]
errors:
  description: Every snapshot or region that failed, with the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "region": "eu-west-1", "code": "InvalidSnapshot.InUse", "message": "..."}]
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

import datetime

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import account_id_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import finish
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import target_regions


def parse_options(module, today):
    params = module.params
    try:
        if params["keep_min"] < 0:
            raise ValueError("keep_min must not be negative, got {0}".format(params["keep_min"]))
        if params["max_concurrency"] < 1:
            raise ValueError("max_concurrency must be at least 1, got {0}".format(params["max_concurrency"]))
        if not params["keep_tag"] or not params["keep_tag"].strip():
            raise ValueError("keep_tag must not be empty")
        try:
            as_of = ebs.parse_as_of(params["as_of"], today)
        except ValueError as exc:
            raise ValueError("as_of {0}".format(exc))
        return {
            "action": params["action"],
            "as_of": as_of,
            "keep_min": params["keep_min"],
            "keep_tag": params["keep_tag"],
            "adopt_legacy": params["adopt_legacy"],
            "stale": params["stale"],
            "stale_min_age": ebs.parse_age(params["stale_min_age"], "stale_min_age"),
        }
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def snapshot_filters(options):
    """Server-side: only managed snapshots, unless legacy or stale ones are in scope."""
    if options["stale"] != ebs.STALE_NONE:
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


def public_item(item):
    return {key: value for key, value in item.items() if key not in ("state", "storage_tier")}


def main():
    argument_spec = dict(
        regions=dict(type="list", elements="str"),
        action=dict(type="str", default="delete", choices=["delete", "archive", "report"]),
        as_of=dict(type="str"),
        keep_min=dict(type="int", default=1),
        keep_tag=dict(type="str", default="Keep", no_log=False),
        adopt_legacy=dict(type="bool", default=False),
        stale=dict(type="str", default="none", choices=list(ebs.STALE_MODES)),
        stale_min_age=dict(type="str", default="30"),
        max_concurrency=dict(type="int", default=16),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    options = parse_options(module, now.date())
    max_concurrency = module.params["max_concurrency"]

    regions = target_regions(module)
    account_id = account_id_of(module, regions[0])
    clients = regional_clients(module, "ec2", regions, max_concurrency)
    errors, warnings, plans = [], [], []
    for region, data, exc in run_concurrently(lambda r: describe_region(clients[r], options), regions, max_concurrency):
        if exc:
            errors.append(error_entry(region, region, exc, "describe"))
            continue
        plans.append(
            ebs.plan_snapshot_purge(
                region,
                data["snapshots"],
                data["images"],
                data["volumes"],
                data["running"],
                options,
                options["as_of"],
                now,
                account_id,
            )
        )

    purgeable = [item for plan in plans for item in plan["purge"]]
    kept = [item for plan in plans for item in plan["kept"]]
    for plan in plans:
        warnings.extend(plan["warnings"])

    done = []
    if options["action"] == ebs.ACTION_REPORT:
        pass
    elif module.check_mode:
        done = purgeable
    else:
        outcomes = run_concurrently(
            lambda item: apply(clients[item["region"]], item, options["action"]),
            purgeable,
            max_concurrency,
            spread_by=by_region,
        )
        for item, value, exc in outcomes:
            if exc:
                errors.append(error_entry(item["snapshot_id"], item["region"], exc, options["action"] + "_snapshot"))
            else:
                done.append(item)

    for warning in warnings:
        module.warn(warning)
    done = [public_item(item) for item in done]
    result = dict(
        changed=bool(done),
        deleted=done if options["action"] == ebs.ACTION_DELETE else [],
        archived=done if options["action"] == ebs.ACTION_ARCHIVE else [],
        purgeable=[public_item(item) for item in purgeable],
        kept=kept,
        errors=errors,
        regions=regions,
    )
    finish(module, "purging snapshots", result)


if __name__ == "__main__":
    main()
