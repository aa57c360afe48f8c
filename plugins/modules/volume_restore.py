#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: volume_restore
short_description: Create EBS volumes from their newest completed snapshot backups
version_added: 0.2.0
description:
  - For each of O(volume_ids) (the C(VolumeId) tag of the snapshots made by M(opsvault.aws_backup.ebs_snapshot)),
    creates one volume from its newest C(completed) managed snapshot, or from the newest started on or before
    O(as_of). A pending or failed snapshot is never used; when the newest is not completed, the newest completed
    one before it is, and the result says so in RV(volumes[].note).
  - The volume is created in O(availability_zone), or in the zone of O(instance_id), to which it is then attached
    at O(device) (default, the C(Device) tag of the snapshot).
  - Each volume is tagged in the CreateVolume call with O(tags), C(RestoredBy=opsvault.aws_backup), C(VolumeId),
    C(SourceSnapshotId) and C(RestoreId). The ClientToken is derived from the snapshot and O(restore_id), so a
    retried call, or the task run again, never creates a second volume of a source.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  volume_ids:
    description: The source volumes to restore; a source with no completed managed snapshot fails the task, naming it.
    type: list
    elements: str
    required: true
  as_of:
    description: Restore from the newest completed snapshot started on or before this date (V(YYYY-MM-DD), UTC).
    type: str
  availability_zone:
    description: The zone for the new volumes. Required without O(instance_id); with it, it must be the instance's zone.
    type: str
  instance_id:
    description: Attach each new volume to this instance (created in its zone).
    type: str
  device:
    description: With O(instance_id), the device name; default, the C(Device) tag of the snapshot.
    type: str
  volume_type:
    description: The volume type; default, EC2's for a volume from a snapshot.
    type: str
    choices: [standard, gp2, gp3, io1, io2, sc1, st1]
  iops:
    description: The IOPS, for V(gp3), V(io1) and V(io2).
    type: int
  throughput:
    description: The throughput in MiB/s, for V(gp3).
    type: int
  kms_key_id:
    description: Encrypt the new volumes with this KMS key (id, alias or ARN).
    type: str
  tags:
    description: Tags for the new volumes.
    type: dict
    default: {}
  restore_id:
    description:
      - The request id the ClientTokens are derived from, also written in the C(RestoreId) tag.
      - Default, a hash of the options, so the same task run again finds its volumes. Set a new one to create again.
    type: str
  wait_timeout:
    description: With O(instance_id), seconds to wait for a new volume to be available before attaching it.
    type: int
    default: 300
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeSnapshots), C(ec2:DescribeVolumes), C(ec2:DescribeInstances) or
    C(ec2:DescribeAvailabilityZones), C(ec2:CreateVolume) (the policy of M(opsvault.aws_backup.iam_policy) allows it
    only with the C(RestoredBy) tag), C(ec2:CreateTags) for tagging on create, and C(ec2:AttachVolume) with O(instance_id).
  - Supports check mode, which returns the plan in RV(volumes) (each V(planned)) and creates nothing.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Restore the data volume of db-1 from its newest completed snapshot and attach it to the restored instance
  opsvault.aws_backup.volume_restore:
    volume_ids: [vol-0123456789abcdef0]
    instance_id: i-0fedcba9876543210
    device: /dev/sdf
    volume_type: gp3

- name: Restore two volumes as they were on 1 November, encrypted
  opsvault.aws_backup.volume_restore:
    volume_ids: [vol-0123456789abcdef0, vol-0abcdef0123456789]
    as_of: "2026-11-01"
    availability_zone: eu-west-1a
    kms_key_id: alias/restores
"""

RETURN = r"""
volumes:
  description: One item per source volume restored (in check mode, the plan), including volumes this O(restore_id) created before.
  returned: always
  type: list
  elements: dict
  contains:
    source_volume_id: {description: "The source volume", type: str, sample: vol-0123456789abcdef0}
    snapshot_id: {description: "The snapshot restored from", type: str, sample: snap-0123456789abcdef0}
    snapshot_started: {description: "When the snapshot was started", type: str}
    volume_id: {description: "The new volume (null in check mode)", type: str}
    state: {description: "Its state, V(planned) in check mode", type: str, sample: available}
    created: {description: "Whether this run created it", type: bool}
    availability_zone: {description: "The zone", type: str, sample: eu-west-1a}
    instance_id: {description: "The instance it is attached to, or null", type: str}
    device: {description: "The device it is attached at, or null", type: str}
    attached: {description: "Whether it is attached to O(instance_id)", type: bool}
    note: {description: "Why an older snapshot was used, or null", type: str}
    region: {description: "The region", type: str}
    client_token: {description: "The CreateVolume ClientToken", type: str}
    restore_id: {description: "The request id", type: str}
    tags: {description: "The tags written on the volume", type: dict}
skipped_resources:
  description: Resources left alone, each with the reason.
  returned: always
  type: list
  elements: dict
errors:
  description: Every source or region that failed, with the step and the error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "vol-0123456789abcdef0", "region": "eu-west-1", "action": "create_volume", "code": "NoAvailableBackup", "message": "..."}]
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import restore
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_as_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import utc_now

ARGUMENT_SPEC = shared.argument_spec(
    volume_ids=dict(type="list", elements="str", required=True),
    as_of=dict(type="str"),
    availability_zone=dict(type="str"),
    instance_id=dict(type="str"),
    device=dict(type="str"),
    volume_type=dict(type="str", choices=["standard", "gp2", "gp3", "io1", "io2", "sc1", "st1"]),
    iops=dict(type="int"),
    throughput=dict(type="int"),
    kms_key_id=dict(type="str", no_log=False),
    tags=dict(type="dict", default={}),
    restore_id=dict(type="str"),
    wait_timeout=dict(type="int", default=300),
)


def parse_options(params, check_mode):
    if not params["volume_ids"]:
        raise ValueError("volume_ids must name at least one volume")
    if not params["availability_zone"] and not params["instance_id"]:
        raise ValueError("set availability_zone or instance_id: the zone the volumes are created in")
    if params["device"] and not params["instance_id"]:
        raise ValueError("device {0!r} needs instance_id".format(params["device"]))
    shared.not_empty("restore_id", params["restore_id"])
    contract.check_extra_tags(params["tags"], "tags", contract.RESTORE_RESERVED_KEYS)
    options = {
        "volume_ids": list(dict.fromkeys(params["volume_ids"])),
        "as_of": parse_as_of(params["as_of"], utc_now().date()) if params["as_of"] else None,
        "availability_zone": params["availability_zone"],
        "instance_id": params["instance_id"],
        "device": params["device"],
        "volume_type": params["volume_type"],
        "iops": params["iops"],
        "throughput": params["throughput"],
        "kms_key_id": params["kms_key_id"],
        "tags": params["tags"],
    }
    options["restore_id"] = params["restore_id"] or restore.request_id(options)
    options["wait_timeout"] = shared.at_least("wait_timeout", params["wait_timeout"], 1)
    return options


class VolumeRestore(RegionalJob):
    action = "create_volume"
    needs_account_id = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.existing, self.found = [], set()

    def describe(self, region):
        return restore.describe_volume_restores(self.clients[region], region, self.options, self.account_id)

    def plan_region(self, region, described):
        snapshots, restored, target = described
        region_plan = restore.plan_volume_restores(region, snapshots, restored, target, self.options)
        self.errors.extend(region_plan["errors"])
        self.existing.extend(region_plan["existing"])
        self.found.update(region_plan["found"])
        return region_plan

    def after_plan(self, plans):
        if any(error["action"] == "describe" for error in self.errors):
            return
        for volume_id in self.options["volume_ids"]:
            if volume_id not in self.found:
                message = "volume_ids: {0} has no managed snapshot in {1}".format(volume_id, ", ".join(self.regions))
                self.errors.append(error_entry(volume_id, None, "describe", code=restore.NO_BACKUP, message=message))

    def resource_of(self, item):
        return item["source_volume_id"]

    def preview(self, item):
        return restore.volume_result(item)

    def apply(self, item):
        client = self.clients[item["region"]]
        created = item["request"] is not None
        volume_id = client.create_volume(**item["request"])["VolumeId"] if created else item["volume_id"]
        if item["instance_id"]:
            delay = 2
            client.get_waiter("volume_available").wait(
                VolumeIds=[volume_id],
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, self.options["wait_timeout"] // delay)},
            )
            client.attach_volume(VolumeId=volume_id, InstanceId=item["instance_id"], Device=item["device"])
        [volume] = client.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        return restore.volume_result(item, volume, created=created)

    def result_keys(self, done):
        return dict(changed=bool(done), volumes=self.existing + done)

    def summarise(self, summary, result):
        summary.done(
            "restored",
            "restore",
            "volume(s)",
            [item for item in result["volumes"] if item not in self.existing],
            lambda item: "{0}from {1} of {2}{3}".format(
                item["volume_id"] + " " if item["volume_id"] else "",
                item["snapshot_id"],
                item["source_volume_id"],
                " at {0} of {1}".format(item["device"], item["instance_id"]) if item["instance_id"] else "",
            ),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    VolumeRestore.for_module(module, options).run()


if __name__ == "__main__":
    main()
