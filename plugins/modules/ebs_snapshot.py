#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: ebs_snapshot
short_description: Snapshot EBS volumes, one by one or as crash-consistent sets per instance, in one or more regions
version_added: 0.1.0
description:
  - Finds the EBS volumes in O(regions) (by default every C(in-use) volume; narrowed by a volume tag,
    a tag on the instance they are attached to, or O(volume_ids)) and snapshots them.
  - With O(mode=volume), one CreateSnapshot per volume. With O(mode=instance), one CreateSnapshots per
    instance, a crash-consistent set of all its EBS volumes taken at the same moment.
  - Each snapshot is tagged in the create call with C(CreatedBy=opsvault.aws_backup), C(DeleteOn) (the UTC
    expiry date), C(BackupPolicy), C(Region), C(VolumeId), C(InstanceId), C(Device), a C(Description) label
    (also the snapshot's description) and the C(Name) of the volume or its instance, so that
    M(opsvault.aws_backup.snapshot_purge) can expire them safely.
  - Retention comes from the volume's O(retention_tag) tag, else the instance's, else O(retention).
  - A volume with a snapshot made by this module younger than O(min_interval) is left alone (with O(mode=instance),
    the whole instance), and so is a volume that already has as many pending snapshots as AWS allows
    (5, or 1 for C(st1) and C(sc1) volumes).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  mode:
    description:
      - V(volume) makes one snapshot per selected volume.
      - V(instance) makes one multi-volume snapshot set per instance that has a selected volume, covering all
        the instance's EBS volumes (without the root volume when O(exclude_boot_volume=true)).
        A set shares one C(DeleteOn), from the longest retention of the instance and its volumes.
        CreateSnapshots writes the same tags on every snapshot of the set, so the set's snapshots carry
        C(InstanceId) but no C(VolumeId) or C(Device) tag; the snapshot's own volume id names the volume.
    type: str
    default: volume
    choices: [volume, instance]
  exclude_boot_volume:
    description: With O(mode=instance), leave the root volume out of the set.
    type: bool
    default: false
  volume_ids:
    description: Only these volumes. Ids found in none of the regions are listed in RV(skipped_resources).
    type: list
    elements: str
    default: []
  tag_key:
    description: Only volumes that carry this tag.
    type: str
  tag_value:
    description:
      - With O(tag_key), only volumes whose tag has this value, for example V(ProductionDaily).
      - The C(BackupPolicy) tag of the snapshots is this value; without it, the value of the volume's O(tag_key)
        tag (V(Backup=Weekly) gives V(Weekly)), else O(instance_tag_value), else the value of the instance's
        O(instance_tag_key) tag, else V(default).
    type: str
  instance_tag_key:
    description: Only volumes attached to an instance that carries this tag.
    type: str
  instance_tag_value:
    description: With O(instance_tag_key), only instances whose tag has this value.
    type: str
  volume_states:
    description:
      - Volume states that are snapshotted; add V(available) to snapshot detached volumes too.
        Selected volumes in other states are listed in RV(skipped_resources).
      - With O(mode=instance), volumes attached to no instance are always listed there.
    type: list
    elements: str
    default: [in-use]
    choices: [in-use, available]
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeVolumes), C(ec2:DescribeInstances), C(ec2:DescribeSnapshots),
    C(ec2:CreateSnapshot) or C(ec2:CreateSnapshots), C(ec2:CreateTags) for tagging on create, and
    C(sts:GetCallerIdentity) (allowed to every principal) to check snapshot owners.
  - Supports check mode, which returns the plan in RV(snapshots) (each V(planned)) and makes no change.
  - CreateSnapshot and CreateSnapshots have no idempotency token, so a create that fails with a server error or
    a lost connection is looked up with DescribeSnapshots before it is sent again, and a retry never takes a
    second snapshot of a volume.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - opsvault.aws_backup.backup
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Snapshot every in-use volume in every region, kept two weeks
  opsvault.aws_backup.ebs_snapshot:
    regions: all
    retention: 14d

- name: Crash-consistent sets of the data volumes of instances tagged Backup=Database
  opsvault.aws_backup.ebs_snapshot:
    regions: [eu-west-1, us-east-1]
    mode: instance
    exclude_boot_volume: true
    instance_tag_key: Backup
    instance_tag_value: Database
    retention: 30d
  register: database_snapshots

- name: Show the new snapshots
  ansible.builtin.debug:
    msg: "{{ database_snapshots.snapshots | map(attribute='snapshot_id') }}"
"""

RETURN = r"""
snapshots:
  description: The snapshots created (in check mode, the ones that would be).
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot id (null in check mode).
      type: str
      sample: snap-0123456789abcdef0
    volume_id:
      description: The source volume.
      type: str
      sample: vol-0123456789abcdef0
    instance_id:
      description: The instance the volume is attached to (null for an unattached volume).
      type: str
      sample: i-0123456789abcdef0
    device:
      description: The volume's device name on the instance.
      type: str
      sample: /dev/sdf
    region:
      description: The region.
      type: str
      sample: eu-west-1
    delete_on:
      description: The expiry date written in the C(DeleteOn) tag.
      type: str
      sample: "2026-11-30"
    retention:
      description: The retention period used, normalised (V(3w) gives V(21 days)).
      type: str
      sample: 7 days
    mode:
      description: V(volume) or V(instance).
      type: str
      sample: volume
    state:
      description: The snapshot state (V(planned) in check mode).
      type: str
      sample: pending
    tags:
      description: The tags written on the snapshot.
      type: dict
skipped_resources:
  description: Selected volumes (or instances, with O(mode=instance)) left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "vol-0123456789abcdef0", "region": "eu-west-1", "reason": "volume is available; volume_states is in-use"}]
errors:
  description: Every volume, instance or region that failed, with the step and the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "vol-0123456789abcdef0", "region": "eu-west-1", "action": "create_snapshot",
            "code": "UnauthorizedOperation", "message": "..."}]
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Created 2 snapshot(s): snap-0123456789abcdef0 of vol-0123456789abcdef0 until 2026-11-30; ..."
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_duration

ARGUMENT_SPEC = shared.argument_spec(
    shared.BACKUP,
    mode=dict(type="str", default="volume", choices=list(shared.EBS_SNAPSHOT_MODES)),
    exclude_boot_volume=dict(type="bool", default=False),
    volume_ids=dict(type="list", elements="str", default=[]),
    tag_key=dict(type="str", no_log=False),
    tag_value=dict(type="str"),
    instance_tag_key=dict(type="str", no_log=False),
    instance_tag_value=dict(type="str"),
    volume_states=dict(type="list", elements="str", default=["in-use"], choices=list(shared.VOLUME_STATES)),
)
INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]


def parse_options(params, check_mode):
    for key in ("tag_key", "instance_tag_key", "retention_tag"):
        shared.not_empty(key, params[key])
    for key, requires in (("tag_value", "tag_key"), ("instance_tag_value", "instance_tag_key")):
        if params[key] is not None and not params[requires]:
            raise ValueError("{0} needs {1}".format(key, requires))
    contract.check_extra_tags(params["extra_tags"])
    return {
        "mode": params["mode"],
        "exclude_boot_volume": params["exclude_boot_volume"],
        "volume_ids": list(dict.fromkeys(params["volume_ids"])),
        "tag_key": params["tag_key"],
        "tag_value": params["tag_value"],
        "instance_tag_key": params["instance_tag_key"],
        "instance_tag_value": params["instance_tag_value"],
        "volume_states": params["volume_states"],
        "retention": parse_retention(params["retention"]),
        "retention_tag": params["retention_tag"],
        "copy_tags": params["copy_tags"],
        "extra_tags": params["extra_tags"],
        "min_interval": parse_duration(params["min_interval"], "min_interval"),
    }


def describe_region(client, options):
    """Volumes, instances, managed and pending snapshots of one region: four paginated, filtered calls."""
    volume_filters = []
    if options["mode"] == ebs.MODE_VOLUME:
        if options["tag_key"]:
            volume_filters.append(ebs.tag_filter(options["tag_key"], options["tag_value"]))
        if options["volume_ids"]:
            volume_filters.append({"Name": "volume-id", "Values": options["volume_ids"]})
    instance_filters = [{"Name": "instance-state-name", "Values": INSTANCE_STATES}]
    if options["instance_tag_key"]:
        instance_filters.append(ebs.tag_filter(options["instance_tag_key"], options["instance_tag_value"]))
    volumes = paginate(client, "describe_volumes", "Volumes", Filters=volume_filters)
    reservations = paginate(client, "describe_instances", "Reservations", Filters=instance_filters)
    return {
        "volumes": volumes,
        "instances": [instance for reservation in reservations for instance in reservation["Instances"]],
        "managed": paginate(
            client,
            "describe_snapshots",
            "Snapshots",
            OwnerIds=["self"],
            Filters=[ebs.tag_filter(contract.MARKER_KEY, contract.MARKER_VALUE)],
        ),
        "pending": paginate(
            client,
            "describe_snapshots",
            "Snapshots",
            OwnerIds=["self"],
            Filters=[{"Name": "status", "Values": ["pending"]}],
        ),
    }


class EbsSnapshot(RegionalJob):
    action = "create_snapshot"
    needs_account_id = True

    def __init__(self, module, options, *args, **kwargs):
        super().__init__(module, options, *args, **kwargs)
        self.known, self.creators = {}, {}

    def describe(self, region):
        return describe_region(self.clients[region], self.options)

    def plan_region(self, region, described):
        self.known[region] = {snapshot["SnapshotId"] for snapshot in described["managed"]}
        region_plan = ebs.plan_snapshots(
            region,
            described["volumes"],
            described["instances"],
            described["managed"],
            described["pending"],
            self.options,
            self.now,
            self.account_id,
        )
        return dict(region_plan, volume_ids={volume["VolumeId"] for volume in described["volumes"]})

    def after_plan(self, plans):
        """Volume ids asked for that no region has (only when every region was described)."""
        if self.errors:
            return
        found = set().union(*[region_plan["volume_ids"] for region_plan in plans])
        for volume_id in self.options["volume_ids"]:
            if volume_id not in found:
                reason = "volume not found in {0}".format(", ".join(self.regions))
                self.skipped.append(skipped_entry(volume_id, None, reason))

    def resource_of(self, item):
        return item["volume_id"] if item["mode"] == ebs.MODE_VOLUME else item["instance_id"]

    def preview_all(self, todo):
        return [result for item in todo for result in ebs.planned_results(item)]

    def apply_all(self, todo):
        # The create calls go through clients that never retry by themselves: create_once decides.
        self.creators = (
            self.make_clients(sorted({item["region"] for item in todo}), total_max_attempts=1) if todo else {}
        )
        return super().apply_all(todo)

    def apply(self, item):
        region = item["region"]
        return ebs.create_once(self.creators[region], self.clients[region], item, self.known[region])

    def result_keys(self, done):
        return dict(changed=bool(done), snapshots=done)

    def summarise(self, summary, result):
        summary.done(
            "created",
            "create",
            "snapshot(s)",
            result["snapshots"],
            lambda item: "{0} of {1} until {2}".format(
                item["snapshot_id"] or "a snapshot", item["volume_id"], item["delete_on"]
            ),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    EbsSnapshot.for_module(module, options).run()


if __name__ == "__main__":
    main()
