#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: ami_backup
short_description: Create tag-driven AMI backups of EC2 instances in one or more regions
version_added: 0.1.0
description:
  - Finds the instances that carry a selector tag (O(tag_key), optionally with the value
    O(tag_value)) in O(regions) and creates one AMI of each.
  - Each AMI and its snapshots are tagged in the CreateImage call with C(CreatedBy=opsvault.aws_backup),
    C(DeleteOn) (the UTC expiry date), C(BackupPolicy), C(SourceInstanceId), C(Region) and the
    instance's C(Name), so that M(opsvault.aws_backup.ami_purge) can expire them safely.
  - Retention comes from the instance's C(Retention) tag when it has a valid one, else from O(retention).
  - An instance that already has a managed AMI newer than O(min_interval) is left alone, so
    reruns and retries never create a second backup.
  - Regions are processed concurrently, and a failing region or instance does not stop the others;
    the task fails at the end, listing every error in RV(errors).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  regions:
    description:
      - The regions to back up.
      - V(all) means every region enabled for the account.
      - Defaults to the task's O(region).
    type: list
    elements: str
  tag_key:
    description: The tag that selects an instance for backup.
    type: str
    default: Backup
  tag_value:
    description:
      - When set, only instances whose O(tag_key) tag has this value are selected, for example
        V(ProductionDaily). It is written on the AMIs as the C(BackupPolicy) tag.
    type: str
  instance_states:
    description: Instance states that are backed up. Selected instances in other states are listed in RV(skipped_resources).
    type: list
    elements: str
    default: [running]
    choices: [pending, running, stopping, stopped]
  retention:
    description:
      - How long the AMIs are kept when the instance has no valid O(retention_tag) tag.
      - A number of days (V(7)), or a count with a unit, V(30d), V(2w), V(6m), V(1y), V(+30 days), V(+6 months).
        Months and years follow the calendar.
    type: str
    default: "7"
  retention_tag:
    description: The instance tag that overrides O(retention). A bad value gives a warning and O(retention) is used.
    type: str
    default: Retention
  reboot_tag:
    description:
      - The instance tag that asks for a reboot during imaging (a filesystem-consistent image).
        V(yes), V(true) or V(1) reboot the instance; anything else does not.
    type: str
    default: BackupReboot
  name_template:
    description:
      - The AMI name, with the fields C({name}) (the C(Name) tag, empty when untagged), C({instance_id}),
        C({policy}), C({region}), C({timestamp}) (UTC, V(20261123T010000Z)) and C({date}).
      - It must contain C({instance_id}) and C({timestamp}). The result is reduced to the characters AWS allows.
    type: str
    default: "{name}-{instance_id}-{timestamp}"
  copy_tags:
    description: Instance tag keys copied onto the AMIs and their snapshots.
    type: list
    elements: str
    default: []
  extra_tags:
    description: More tags for the AMIs and their snapshots. The contract tags cannot be overridden.
    type: dict
    default: {}
  min_interval:
    description:
      - An instance with a managed AMI (pending or available) younger than this is skipped.
      - Seconds, or a count with a unit, V(30m), V(1h), V(2d). V(0) disables the check.
    type: str
    default: 1h
  wait:
    description: Wait until the new AMIs are C(available).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait=true).
    type: int
    default: 1800
  max_concurrency:
    description: The most AWS requests in flight at once, across all regions.
    type: int
    default: 16
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeInstances), C(ec2:DescribeImages), C(ec2:CreateImage)
    and C(ec2:CreateTags) for tagging on create.
  - Supports check mode, which returns the plan in RV(images) and makes no change.
  - Throttled requests are retried with botocore's adaptive retry mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Back up every running instance tagged Backup, in two regions
  opsvault.aws_backup.ami_backup:
    regions: [eu-west-1, us-east-1]

- name: Daily backups of instances tagged Backup=ProductionDaily, everywhere, kept 30 days
  opsvault.aws_backup.ami_backup:
    regions: all
    tag_value: ProductionDaily
    retention: 30d
    copy_tags: [Environment, Owner]
  register: backup

- name: Show the new AMIs
  ansible.builtin.debug:
    msg: "{{ backup.images | map(attribute='image_id') }}"
"""

RETURN = r"""
images:
  description: The AMIs created (in check mode, the ones that would be).
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The AMI id (null in check mode).
      type: str
      sample: ami-0123456789abcdef0
    name:
      description: The AMI name.
      type: str
      sample: web-1-i-0123456789abcdef0-20261123T010000Z
    region:
      description: The region.
      type: str
      sample: eu-west-1
    instance_id:
      description: The source instance.
      type: str
      sample: i-0123456789abcdef0
    delete_on:
      description: The expiry date written in the C(DeleteOn) tag.
      type: str
      sample: "2026-11-30"
    retention:
      description: The retention period used.
      type: str
      sample: 7 days
    reboot:
      description: Whether the instance was rebooted for the image.
      type: bool
      sample: false
    state:
      description: The AMI state (V(planned) in check mode).
      type: str
      sample: pending
    tags:
      description: The tags written on the AMI and its snapshots.
      type: dict
skipped_resources:
  description: Selected instances left alone, each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "i-0123456789abcdef0", "region": "eu-west-1", "reason": "instance is stopped; instance_states is running"}]
errors:
  description: Every instance or region that failed, with the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "i-0123456789abcdef0", "region": "eu-west-1", "code": "UnauthorizedOperation", "message": "..."}]
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

import datetime

try:
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import check_name_template
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_backups
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import by_region
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
        if not params["tag_key"] or not params["tag_key"].strip():
            raise ValueError("tag_key must not be empty")
        if params["max_concurrency"] < 1:
            raise ValueError("max_concurrency must be at least 1, got {0}".format(params["max_concurrency"]))
        check_name_template(params["name_template"])
        contract.check_extra_tags(params["extra_tags"])
        return {
            "tag_key": params["tag_key"],
            "tag_value": params["tag_value"],
            "instance_states": params["instance_states"],
            "retention": parse_retention(params["retention"]),
            "retention_tag": params["retention_tag"],
            "reboot_tag": params["reboot_tag"],
            "name_template": params["name_template"],
            "copy_tags": params["copy_tags"],
            "extra_tags": params["extra_tags"],
            "min_interval": parse_duration(params["min_interval"]),
        }
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def describe_region(client, options):
    selector = "tag:" + options["tag_key"] if options["tag_value"] else "tag-key"
    selector_values = [options["tag_value"] or options["tag_key"]]
    reservations = paginate(
        client, "describe_instances", "Reservations", Filters=[{"Name": selector, "Values": selector_values}]
    )
    instances = [instance for reservation in reservations for instance in reservation["Instances"]]
    images = paginate(
        client,
        "describe_images",
        "Images",
        Owners=["self"],
        Filters=[{"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]}],
    )
    return instances, images


def image_result(item, image_id=None, state="planned"):
    keys = ("name", "region", "instance_id", "delete_on", "retention", "reboot", "tags")
    return dict({key: item[key] for key in keys}, image_id=image_id, state=state)


def create_image(client, item):
    description = "opsvault.aws_backup of {0} ({1})".format(item["instance_id"], item["tags"][contract.POLICY_KEY])
    try:
        response = client.create_image(
            InstanceId=item["instance_id"],
            Name=item["name"],
            Description=description,
            NoReboot=not item["reboot"],
            TagSpecifications=boto3_tag_specifications(item["tags"], ["image", "snapshot"]),
        )
        return image_result(item, response["ImageId"], "pending")
    except is_boto3_error_code("InvalidAMIName.Duplicate") as duplicate:
        # A retried CreateImage whose first attempt went through: the name is unique per run.
        existing = client.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [item["name"]]}])[
            "Images"
        ]
        for image in existing:
            if contract.tag_dict(image).get(contract.SOURCE_INSTANCE_KEY) == item["instance_id"]:
                return image_result(item, image["ImageId"], image.get("State"))
        raise duplicate


def wait_available(client, images, timeout):
    """Wait for one region's new AMIs; returns ``{image_id: state}`` for those that did not make it."""
    ids = [image["image_id"] for image in images]
    delay = 15
    try:
        client.get_waiter("image_available").wait(
            ImageIds=ids, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, timeout // delay)}
        )
        return {}
    except WaiterError:
        described = client.describe_images(ImageIds=ids)["Images"]
        return {image["ImageId"]: image["State"] for image in described if image["State"] != "available"}


def wait_for_images(clients, images, timeout, max_concurrency):
    """Wait for the new AMIs region by region, updating their state; returns errors for those not available."""
    pending = {}
    for image in images:
        pending.setdefault(image["region"], []).append(image)
    errors = []
    waits = run_concurrently(lambda r: wait_available(clients[r], pending[r], timeout), list(pending), max_concurrency)
    for region, not_ready, exc in waits:
        if exc:
            errors.append(error_entry(region, region, exc, "wait"))
            continue
        for image in pending[region]:
            image["state"] = not_ready.get(image["image_id"], "available")
            if image["image_id"] in not_ready:
                errors.append(
                    {
                        "resource": image["image_id"],
                        "region": region,
                        "code": "ImageNotAvailable",
                        "message": "AMI of {0} is {1} after waiting".format(image["instance_id"], image["state"]),
                    }
                )
    return errors


def main():
    argument_spec = dict(
        regions=dict(type="list", elements="str"),
        tag_key=dict(type="str", default="Backup", no_log=False),
        tag_value=dict(type="str"),
        instance_states=dict(
            type="list", elements="str", default=["running"], choices=["pending", "running", "stopping", "stopped"]
        ),
        retention=dict(type="str", default="7"),
        retention_tag=dict(type="str", default="Retention"),
        reboot_tag=dict(type="str", default="BackupReboot"),
        name_template=dict(type="str", default="{name}-{instance_id}-{timestamp}"),
        copy_tags=dict(type="list", elements="str", default=[]),
        extra_tags=dict(type="dict", default={}),
        min_interval=dict(type="str", default="1h"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=1800),
        max_concurrency=dict(type="int", default=16),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = parse_options(module)
    max_concurrency = module.params["max_concurrency"]
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)

    regions = target_regions(module)
    clients = regional_clients(module, "ec2", regions, max_concurrency)
    errors, warnings, plans = [], [], []
    for region, described, exc in run_concurrently(
        lambda r: describe_region(clients[r], options), regions, max_concurrency
    ):
        if exc:
            errors.append(error_entry(region, region, exc, "describe"))
        else:
            plans.append(plan_backups(region, described[0], described[1], options, now))

    to_create = [item for plan in plans for item in plan["create"]]
    skipped = [item for plan in plans for item in plan["skipped"]]
    for plan in plans:
        warnings.extend(plan["warnings"])

    if module.check_mode:
        images = [image_result(item) for item in to_create]
    else:
        images = []
        outcomes = run_concurrently(
            lambda item: create_image(clients[item["region"]], item), to_create, max_concurrency, spread_by=by_region
        )
        for item, image, exc in outcomes:
            if exc:
                errors.append(error_entry(item["instance_id"], item["region"], exc, "create_image"))
            else:
                images.append(image)
        if module.params["wait"] and images:
            errors.extend(wait_for_images(clients, images, module.params["wait_timeout"], max_concurrency))

    for warning in warnings:
        module.warn(warning)
    result = dict(
        changed=bool(images),
        images=images,
        skipped_resources=skipped,
        errors=errors,
        regions=regions,
    )
    finish(module, "backing up", result)


if __name__ == "__main__":
    main()
