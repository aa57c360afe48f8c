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
  - The instances are described page by page, and the AMIs of each page are created while the next
    pages are described, in every region at once. A region whose describe fails part of the way keeps
    the AMIs already made and is reported in RV(errors), and the task fails.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  tag_key:
    description: The tag that selects an instance for backup.
    type: str
    default: Backup
  tag_value:
    description:
      - When set, only instances whose O(tag_key) tag has this value are selected, for example
        V(ProductionDaily).
      - The C(BackupPolicy) tag of the AMIs is this value; without it, the value of the instance's O(tag_key)
        tag (V(Backup=Weekly) gives V(Weekly)), or V(default) when that is empty.
    type: str
  instance_states:
    description: Instance states that are backed up. Selected instances in other states are listed in RV(skipped_resources).
    type: list
    elements: str
    default: [running]
    choices: [pending, running, stopping, stopped]
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
  wait:
    description: Wait until the new AMIs are C(available).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait=true).
    type: int
    default: 1800
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeInstances), C(ec2:DescribeImages), C(ec2:CreateImage)
    and C(ec2:CreateTags) for tagging on create.
  - Supports check mode, which returns the plan in RV(images) (each V(planned)) and makes no change.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - opsvault.aws_backup.backup
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
  description: Every instance or region that failed, with the step and the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "i-0123456789abcdef0", "region": "eu-west-1", "action": "create_image",
            "code": "UnauthorizedOperation", "message": "..."}]
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Created 2 AMI(s): web-1 (i-0123456789abcdef0) until 2026-11-30; ..."
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
"""

try:
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import check_name_template
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import image_for_plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import instance_for_plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import latest_backups
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_backups
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import growing_pages
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import pages
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_duration

ARGUMENT_SPEC = shared.argument_spec(
    shared.BACKUP,
    tag_key=dict(type="str", default="Backup", no_log=False),
    tag_value=dict(type="str"),
    instance_states=dict(type="list", elements="str", default=["running"], choices=list(shared.INSTANCE_STATES)),
    reboot_tag=dict(type="str", default="BackupReboot"),
    name_template=dict(type="str", default="{name}-{instance_id}-{timestamp}"),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=1800),
)


def parse_options(params, check_mode):
    for key in ("tag_key", "retention_tag", "reboot_tag"):
        shared.not_empty(key, params[key] or "")
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
        "min_interval": parse_duration(params["min_interval"], "min_interval"),
        "wait": params["wait"],
        "wait_timeout": shared.at_least("wait_timeout", params["wait_timeout"], 1),
    }


def image_result(item, image_id=None, state=PLANNED):
    """The planned item becomes its result (one dict per instance, not two, at 100,000 instances)."""
    item.update(image_id=image_id, state=state)
    return item


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


class AmiBackup(RegionalJob):
    action = "create_image"
    streamed = True

    def describe(self, region):
        """The region's managed AMIs, then its instances page by page: each page is planned and its
        AMIs created while the next pages are described (the instances are independent)."""
        client, options = self.clients[region], self.options
        answer = pages(
            client,
            "describe_images",
            Owners=["self"],
            Filters=[{"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]}],
        )
        # Only each instance's newest AMI matters to the plan; kept once for all the pages.
        described = (image_for_plan(image) for page in answer for image in page.get("Images", []))
        images = list(latest_backups(described).values())
        selector = "tag:" + options["tag_key"] if options["tag_value"] else "tag-key"
        selector_values = [options["tag_value"] or options["tag_key"]]
        for page in growing_pages(
            client, "describe_instances", Filters=[{"Name": selector, "Values": selector_values}]
        ):
            instances = [
                instance_for_plan(instance)
                for reservation in page.get("Reservations", [])
                for instance in reservation["Instances"]
            ]
            yield instances, images

    def plan_region(self, region, described):
        instances, images = described
        return plan_backups(region, instances, images, self.options, self.now)

    def resource_of(self, item):
        return item["instance_id"]

    def preview(self, item):
        return image_result(item)

    def apply(self, item):
        client = self.clients[item["region"]]
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
            existing = client.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [item["name"]]}])
            for image in existing["Images"]:
                if contract.tag_dict(image).get(contract.SOURCE_INSTANCE_KEY) == item["instance_id"]:
                    return image_result(item, image["ImageId"], image.get("State"))
            raise duplicate

    def described_planned_and_applied(self):
        images = super().described_planned_and_applied()
        if self.options["wait"] and images and not self.check_mode:
            self.wait_for(images)
        return images

    def wait_for(self, images):
        """Wait for the new AMIs region by region, updating their state; an AMI not available is an error."""
        pending = {}
        for image in images:
            pending.setdefault(image["region"], []).append(image)
        timeout = self.options["wait_timeout"]
        waits = run_concurrently(
            lambda r: wait_available(self.clients[r], pending[r], timeout), list(pending), self.max_concurrency
        )
        for region, not_ready, exc in waits:
            if exc:
                self.errors.append(error_entry(region, region, "wait", exc))
                continue
            for image in pending[region]:
                image["state"] = not_ready.get(image["image_id"], "available")
                if image["image_id"] in not_ready:
                    message = "AMI of {0} is {1} after waiting".format(image["instance_id"], image["state"])
                    self.errors.append(
                        error_entry(image["image_id"], region, "wait", code="ImageNotAvailable", message=message)
                    )

    def result_keys(self, done):
        return dict(changed=bool(done), images=done)

    def summarise(self, summary, result):
        summary.done(
            "created",
            "create",
            "AMI(s)",
            result["images"],
            lambda image: "{0} of {1} until {2}".format(
                image["image_id"] or image["name"], image["instance_id"], image["delete_on"]
            ),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    AmiBackup.for_module(module, options).run()


if __name__ == "__main__":
    main()
