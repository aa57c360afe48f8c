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
  - Retention comes from the volume's C(Retention) tag, else the instance's, else O(retention).
  - A volume with a snapshot made by this module younger than O(min_interval) is left alone, and so is a volume
    that already has as many pending snapshots as AWS allows (5, or 1 for C(st1) and C(sc1) volumes).
  - Regions are processed concurrently, and a failing region or volume does not stop the others;
    the task fails at the end, listing every error in RV(errors).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  regions:
    description:
      - The regions to snapshot in.
      - V(all) means every region enabled for the account.
      - Defaults to the task's O(region).
    type: list
    elements: str
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
        It is written on the snapshots as the C(BackupPolicy) tag.
    type: str
  instance_tag_key:
    description: Only volumes attached to an instance that carries this tag.
    type: str
  instance_tag_value:
    description:
      - With O(instance_tag_key), only instances whose tag has this value. It is the C(BackupPolicy)
        when O(tag_value) is not set.
    type: str
  volume_states:
    description:
      - Volume states that are snapshotted (seed 004 takes C(in-use) volumes only).
        Selected volumes in other states are listed in RV(skipped_resources).
      - With O(mode=instance), volumes attached to no instance are always listed there.
    type: list
    elements: str
    default: [in-use]
    choices: [in-use, available]
  retention:
    description:
      - How long the snapshots are kept when neither the volume nor its instance has a valid O(retention_tag) tag.
      - A number of days (V(7)), or a count with a unit, V(30d), V(2w), V(6m), V(1y), V(+30 days), V(+6 months).
    type: str
    default: "7"
  retention_tag:
    description: The volume or instance tag that overrides O(retention). A bad value gives a warning naming the resource.
    type: str
    default: Retention
  copy_tags:
    description: Volume or instance tag keys copied onto the snapshots (the volume's value wins).
    type: list
    elements: str
    default: []
  extra_tags:
    description: More tags for the snapshots. The contract tags cannot be overridden.
    type: dict
    default: {}
  min_interval:
    description:
      - A volume with a snapshot made by this module (pending or completed) younger than this is skipped;
        with O(mode=instance), the whole instance is skipped.
      - Seconds, or a count with a unit, V(30m), V(1h), V(2d). V(0) disables the check.
    type: str
    default: 1h
  max_concurrency:
    description: The most AWS requests in flight at once, across all regions.
    type: int
    default: 16
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeVolumes), C(ec2:DescribeInstances), C(ec2:DescribeSnapshots),
    C(ec2:CreateSnapshot) or C(ec2:CreateSnapshots), C(ec2:CreateTags) for tagging on create, and
    C(sts:GetCallerIdentity) (allowed to every principal) to check snapshot owners.
  - Supports check mode, which returns the plan in RV(snapshots) and makes no change.
  - Throttled requests are retried with botocore's adaptive retry mode. CreateSnapshot and CreateSnapshots have no
    idempotency token, so a create that fails with a server error or a lost connection is looked up with
    DescribeSnapshots before it is sent again, and a retry never takes a second snapshot of a volume.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Snapshot every in-use volume in every region (seed 004)
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
      description: The retention period used.
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
  description: Every volume, instance or region that failed, with the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "vol-0123456789abcdef0", "region": "eu-west-1", "code": "UnauthorizedOperation", "message": "..."}]
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

import datetime
import random
import time

try:
    import botocore.config
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import MAX_ATTEMPTS
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import account_id_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import finish
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import target_regions
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_duration
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention


def parse_options(module):
    params = module.params
    try:
        for key in ("tag_key", "instance_tag_key", "retention_tag"):
            if params[key] is not None and not params[key].strip():
                raise ValueError("{0} must not be empty".format(key))
        for key, requires in (("tag_value", "tag_key"), ("instance_tag_value", "instance_tag_key")):
            if params[key] is not None and not params[requires]:
                raise ValueError("{0} needs {1}".format(key, requires))
        if params["max_concurrency"] < 1:
            raise ValueError("max_concurrency must be at least 1, got {0}".format(params["max_concurrency"]))
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
            "min_interval": parse_duration(params["min_interval"]),
        }
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def tag_filter(key, value):
    if value is None:
        return {"Name": "tag-key", "Values": [key]}
    return {"Name": "tag:" + key, "Values": [value]}


def describe_region(client, options):
    """Volumes, instances, managed and pending snapshots of one region: four paginated, filtered calls."""
    volume_filters = []
    if options["mode"] == ebs.MODE_VOLUME:
        if options["tag_key"]:
            volume_filters.append(tag_filter(options["tag_key"], options["tag_value"]))
        if options["volume_ids"]:
            volume_filters.append({"Name": "volume-id", "Values": options["volume_ids"]})
    instance_filters = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    if options["instance_tag_key"]:
        instance_filters.append(tag_filter(options["instance_tag_key"], options["instance_tag_value"]))
    volumes = paginate(client, "describe_volumes", "Volumes", Filters=volume_filters)
    reservations = paginate(client, "describe_instances", "Reservations", Filters=instance_filters)
    instances = [instance for reservation in reservations for instance in reservation["Instances"]]
    managed = paginate(
        client,
        "describe_snapshots",
        "Snapshots",
        OwnerIds=["self"],
        Filters=[tag_filter(contract.MARKER_KEY, contract.MARKER_VALUE)],
    )
    pending = paginate(
        client,
        "describe_snapshots",
        "Snapshots",
        OwnerIds=["self"],
        Filters=[{"Name": "status", "Values": ["pending"]}],
    )
    return {"volumes": volumes, "instances": instances, "managed": managed, "pending": pending}


def snapshot_result(item, volume_id, device, snapshot_id=None, state="planned"):
    keys = ("mode", "region", "instance_id", "delete_on", "retention", "tags")
    return dict(
        {key: item[key] for key in keys}, volume_id=volume_id, device=device, snapshot_id=snapshot_id, state=state
    )


def planned_results(item):
    if item["mode"] == ebs.MODE_VOLUME:
        return [snapshot_result(item, item["volume_id"], item["device"])]
    return [snapshot_result(item, volume["volume_id"], volume["device"]) for volume in item["volumes"]]


def create_snapshots(client, item):
    """One CreateSnapshot (volume mode) or one CreateSnapshots (instance mode); tags written in the call."""
    tag_specifications = boto3_tag_specifications(item["tags"], ["snapshot"])
    if item["mode"] == ebs.MODE_VOLUME:
        response = client.create_snapshot(
            VolumeId=item["volume_id"], Description=item["description"], TagSpecifications=tag_specifications
        )
        return [snapshot_result(item, item["volume_id"], item["device"], response["SnapshotId"], response.get("State"))]
    response = client.create_snapshots(
        InstanceSpecification={"InstanceId": item["instance_id"], "ExcludeBootVolume": item["exclude_boot_volume"]},
        Description=item["description"],
        TagSpecifications=tag_specifications,
    )
    devices = {volume["volume_id"]: volume["device"] for volume in item["volumes"]}
    return [
        snapshot_result(
            item, info.get("VolumeId"), devices.get(info.get("VolumeId")), info["SnapshotId"], info.get("State")
        )
        for info in response.get("Snapshots", [])
    ]


# Throttled requests were not carried out: safe to send again.
THROTTLING_CODES = frozenset(
    (
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "EC2ThrottledException",
        "SnapshotCreationPerVolumeRateExceeded",
    )
)


def outcome_unknown(exc):
    """A 5xx, a timeout or a dropped connection: AWS may have taken the snapshot before the failure."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 and error_code(exc) not in THROTTLING_CODES
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def taken_in_this_run(client, item, known_ids):
    """The snapshots an attempt that failed on the way back did take: managed, same label, unseen before this run."""
    if item["mode"] == ebs.MODE_VOLUME:
        source = {"Name": "volume-id", "Values": [item["volume_id"]]}
    else:
        source = {"Name": "tag:" + contract.INSTANCE_KEY, "Values": [item["instance_id"]]}
    found = paginate(
        client,
        "describe_snapshots",
        "Snapshots",
        OwnerIds=["self"],
        Filters=[source, tag_filter(contract.MARKER_KEY, contract.MARKER_VALUE)],
    )
    return [
        snapshot
        for snapshot in found
        if snapshot["SnapshotId"] not in known_ids
        and contract.tag_dict(snapshot).get(ebs.DESCRIPTION_KEY) == item["description"]
    ]


def adopted_results(item, taken):
    devices = {volume["volume_id"]: volume["device"] for volume in item.get("volumes", [])}
    devices.setdefault(item.get("volume_id"), item.get("device"))
    return [
        snapshot_result(
            item,
            snapshot.get("VolumeId"),
            devices.get(snapshot.get("VolumeId")),
            snapshot["SnapshotId"],
            snapshot.get("State"),
        )
        for snapshot in sorted(taken, key=lambda snapshot: snapshot.get("VolumeId") or "")
    ]


def create_once(create_client, describe_client, item, known_ids, attempts=MAX_ATTEMPTS, sleep=time.sleep):
    """Create an item's snapshot(s) without ever taking two: CreateSnapshot(s) has no idempotency token.

    ``create_client`` does not retry by itself. Throttled calls are sent again after a backoff; after a 5xx
    or a lost connection, the snapshots that attempt took are looked up (after the backoff, for EC2's
    eventual consistency) and adopted before any new attempt.
    """
    for attempt in range(1, attempts + 1):
        try:
            return create_snapshots(create_client, item)
        except (BotoCoreError, ClientError) as exc:
            unknown = outcome_unknown(exc)
            if not unknown and error_code(exc) not in THROTTLING_CODES:
                raise
            sleep(min(20.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
            if unknown:
                taken = taken_in_this_run(describe_client, item, known_ids)
                if taken:
                    return adopted_results(item, taken)
            if attempt == attempts:
                raise


def create_clients(module, regions, max_concurrency):
    """Clients for the create calls: no automatic retry (create_once decides), adaptive rate limiting kept."""
    config = botocore.config.Config(
        retries={"mode": "adaptive", "total_max_attempts": 1}, max_pool_connections=max(10, max_concurrency)
    )
    return clients_for(module, "ec2", config, regions)


def item_resource(item):
    return item["volume_id"] if item["mode"] == ebs.MODE_VOLUME else item["instance_id"]


def missing_volume_ids(options, described):
    found = {volume["VolumeId"] for region_data in described for volume in region_data["volumes"]}
    return [volume_id for volume_id in options["volume_ids"] if volume_id not in found]


def main():
    argument_spec = dict(
        regions=dict(type="list", elements="str"),
        mode=dict(type="str", default="volume", choices=["volume", "instance"]),
        exclude_boot_volume=dict(type="bool", default=False),
        volume_ids=dict(type="list", elements="str", default=[]),
        tag_key=dict(type="str", no_log=False),
        tag_value=dict(type="str"),
        instance_tag_key=dict(type="str", no_log=False),
        instance_tag_value=dict(type="str"),
        volume_states=dict(type="list", elements="str", default=["in-use"], choices=["in-use", "available"]),
        retention=dict(type="str", default="7"),
        retention_tag=dict(type="str", default="Retention"),
        copy_tags=dict(type="list", elements="str", default=[]),
        extra_tags=dict(type="dict", default={}),
        min_interval=dict(type="str", default="1h"),
        max_concurrency=dict(type="int", default=16),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = parse_options(module)
    max_concurrency = module.params["max_concurrency"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    regions = target_regions(module)
    account_id = account_id_of(module, regions[0])
    clients = regional_clients(module, "ec2", regions, max_concurrency)
    errors, warnings, plans, described, known = [], [], [], [], {}
    for region, data, exc in run_concurrently(lambda r: describe_region(clients[r], options), regions, max_concurrency):
        if exc:
            errors.append(error_entry(region, region, exc, "describe"))
            continue
        described.append(data)
        known[region] = {snapshot["SnapshotId"] for snapshot in data["managed"]}
        plans.append(
            ebs.plan_snapshots(
                region, data["volumes"], data["instances"], data["managed"], data["pending"], options, now, account_id
            )
        )

    to_create = [item for plan in plans for item in plan["create"]]
    skipped = [item for plan in plans for item in plan["skipped"]]
    for plan in plans:
        warnings.extend(plan["warnings"])
    if not errors:
        for volume_id in missing_volume_ids(options, described):
            skipped.append(
                {"resource": volume_id, "region": None, "reason": "volume not found in {0}".format(", ".join(regions))}
            )

    snapshots = []
    if module.check_mode:
        for item in to_create:
            snapshots.extend(planned_results(item))
    else:
        creators = create_clients(module, sorted({item["region"] for item in to_create}), max_concurrency)
        outcomes = run_concurrently(
            lambda item: create_once(creators[item["region"]], clients[item["region"]], item, known[item["region"]]),
            to_create,
            max_concurrency,
            spread_by=by_region,
        )
        for item, created, exc in outcomes:
            if exc:
                errors.append(error_entry(item_resource(item), item["region"], exc, "create_snapshot"))
            else:
                snapshots.extend(created)

    for warning in warnings:
        module.warn(warning)
    result = dict(
        changed=bool(snapshots),
        snapshots=snapshots,
        skipped_resources=skipped,
        errors=errors,
        regions=regions,
    )
    finish(module, "snapshotting", result)


if __name__ == "__main__":
    main()
