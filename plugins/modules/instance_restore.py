#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: instance_restore
short_description: Launch EC2 instances from their newest available AMI backups
version_added: 0.2.0
description:
  - For each selected source instance, launches one instance from its newest C(available) AMI made by
    M(opsvault.aws_backup.ami_backup), or from the newest one created on or before O(as_of). A pending or
    failed AMI is never used; when the newest AMI is not available, the newest available one before it is,
    and the result says so in RV(instances[].note).
  - Sources are O(instance_ids) (which may be gone, since their AMIs carry C(SourceInstanceId)), the AMIs
    O(image_ids), or else the instances that carry the backup selector tag O(tag_key).
  - Each launch has IMDSv2 required, every EBS volume deleted on termination, no public IP unless
    O(assign_public_ip=true), no key pair unless O(key_name) is set, and is tagged in the RunInstances call
    with O(tags), C(RestoredBy=opsvault.aws_backup), C(SourceInstanceId), C(SourceImageId) and C(RestoreId).
  - The RunInstances ClientToken is derived from the AMI and O(restore_id), so a retried call, or the task
    run again, never launches a second instance of a source.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  instance_ids:
    description: The source instances to restore. A source with no available AMI fails the task, naming it.
    type: list
    elements: str
    default: []
  image_ids:
    description:
      - The AMIs to restore from, one per source, instead of each source's newest. With O(instance_ids),
        each must be a backup of one of them.
    type: list
    elements: str
    default: []
  tag_key:
    description:
      - Without O(instance_ids) and O(image_ids), the sources are the instances with this tag (the backup
        selection). Those without an available AMI are listed in RV(skipped_resources).
    type: str
    default: Backup
  tag_value:
    description: With O(tag_key), only instances whose tag has this value.
    type: str
  as_of:
    description: Restore from the newest available AMI created on or before this date (V(YYYY-MM-DD), UTC).
    type: str
  subnet_id:
    description:
      - The subnet to launch in; it sets the VPC and availability zone. It must be in the region restored to.
      - One of O(subnet_id) and O(networks) is required.
    type: str
  security_group_ids:
    description: With O(subnet_id), the security groups; the VPC's default group when empty.
    type: list
    elements: str
    default: []
  networks:
    description:
      - 'For several regions, the subnet and security groups per region, for example
        V({"eu-west-1": {"subnet_id": "subnet-1", "security_group_ids": ["sg-1"]}}).'
    type: dict
  instance_type:
    description: The instance type; default, the source's.
    type: str
  key_name:
    description: An EC2 key pair for the new instances. None by default.
    type: str
  iam_instance_profile:
    description: The name or ARN of an IAM instance profile for the new instances.
    type: str
  assign_public_ip:
    description: Give the new instances a public IP address.
    type: bool
    default: false
  tags:
    description: Tags for the new instances and their volumes.
    type: dict
    default: {}
  restore_id:
    description:
      - The request id the ClientTokens are derived from, also written in the C(RestoreId) tag.
      - Default, a hash of the options, so the same task run again finds its instances instead of launching
        more. Set a new one to launch again from the same AMIs, for example a drill's run id.
    type: str
  wait:
    description: Wait until the new instances pass their status checks, and return the recovery time.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait=true); an instance not ok by then is an error.
    type: int
    default: 900
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeImages), C(ec2:DescribeInstances), C(ec2:DescribeSubnets),
    C(ec2:DescribeSecurityGroups), C(ec2:RunInstances) (the policy of M(opsvault.aws_backup.iam_policy) allows it
    only with the C(RestoredBy) tag), C(ec2:CreateTags) for tagging on create, C(ec2:DescribeInstanceStatus) with
    O(wait=true), and C(iam:PassRole) with O(iam_instance_profile).
  - Supports check mode, which returns the plan in RV(instances) (each V(planned)) and launches nothing.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Restore web-1 from its newest available AMI into the recovery subnet
  opsvault.aws_backup.instance_restore:
    instance_ids: [i-0123456789abcdef0]
    subnet_id: subnet-0123456789abcdef0
    security_group_ids: [sg-0123456789abcdef0]
    wait: true
  register: restored

- name: Restore every instance tagged Backup=ProductionDaily as it was on 1 November
  opsvault.aws_backup.instance_restore:
    tag_value: ProductionDaily
    as_of: "2026-11-01"
    subnet_id: subnet-0123456789abcdef0
    instance_type: t3.small

- name: Show the recovery time of each instance
  ansible.builtin.debug:
    msg: "{{ restored.instances | map(attribute='recovery_seconds') }}"
"""

RETURN = r"""
instances:
  description: One item per source restored (in check mode, the plan), including instances this O(restore_id) launched before.
  returned: always
  type: list
  elements: dict
  contains:
    source_instance_id: {description: "The source instance", type: str, sample: i-0123456789abcdef0}
    image_id: {description: "The AMI launched from", type: str, sample: ami-0123456789abcdef0}
    image_created: {description: When the AMI was made, type: str, sample: "2026-11-23T01:00:00.000Z"}
    instance_id: {description: "The new instance (null in check mode)", type: str, sample: i-0fedcba9876543210}
    state: {description: "Its state, V(planned) in check mode", type: str, sample: running}
    launched: {description: "Whether this run launched it (false when an earlier run with this O(restore_id) did)", type: bool}
    instance_type: {description: The instance type, type: str, sample: t3.micro}
    subnet_id: {description: "The subnet", type: str}
    security_group_ids: {description: The security groups asked for, type: list, elements: str}
    private_ip_address: {description: "The private IP address", type: str}
    region: {description: "The region", type: str, sample: eu-west-1}
    note: {description: "Why an older AMI was used (the newest was pending or failed), or null", type: str}
    client_token: {description: "The RunInstances ClientToken", type: str}
    restore_id: {description: "The request id", type: str}
    recovery_seconds: {description: "With O(wait=true), seconds from launch to both status checks ok", type: float}
    tags: {description: "The tags written on the instance and its volumes", type: dict}
skipped_resources:
  description: Sources selected by tag that have no available AMI, each with the reason.
  returned: always
  type: list
  elements: dict
errors:
  description: Every source or region that failed (no available AMI of a source asked for, a subnet not in the region...), with the step and the error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "i-0123456789abcdef0", "region": "eu-west-1", "action": "choose_image", "code": "NoAvailableBackup", "message": "..."}]
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

import time

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import restore
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_as_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import utc_now

ARGUMENT_SPEC = shared.argument_spec(
    instance_ids=dict(type="list", elements="str", default=[]),
    image_ids=dict(type="list", elements="str", default=[]),
    tag_key=dict(type="str", default="Backup", no_log=False),
    tag_value=dict(type="str"),
    as_of=dict(type="str"),
    subnet_id=dict(type="str"),
    security_group_ids=dict(type="list", elements="str", default=[]),
    networks=dict(type="dict"),
    instance_type=dict(type="str"),
    key_name=dict(type="str", no_log=False),
    iam_instance_profile=dict(type="str"),
    assign_public_ip=dict(type="bool", default=False),
    tags=dict(type="dict", default={}),
    restore_id=dict(type="str"),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=900),
)


def parse_options(params, check_mode):
    shared.not_empty("tag_key", params["tag_key"])
    shared.not_empty("restore_id", params["restore_id"])
    contract.check_extra_tags(params["tags"], "tags", contract.RESTORE_RESERVED_KEYS)
    networks, network = restore.parse_networks(params["subnet_id"], params["security_group_ids"], params["networks"])
    as_of = parse_as_of(params["as_of"], utc_now().date()) if params["as_of"] else None
    options = {
        "instance_ids": list(dict.fromkeys(params["instance_ids"])),
        "image_ids": list(dict.fromkeys(params["image_ids"])),
        "tag_key": params["tag_key"],
        "tag_value": params["tag_value"],
        "as_of": as_of,
        "networks": networks,
        "network": network,
        "instance_type": params["instance_type"],
        "key_name": params["key_name"],
        "iam_instance_profile": params["iam_instance_profile"],
        "assign_public_ip": params["assign_public_ip"],
        "tags": params["tags"],
        "wait": params["wait"],
        "wait_timeout": shared.at_least("wait_timeout", params["wait_timeout"], 1),
    }
    settings = {key: value for key, value in options.items() if key not in ("wait", "wait_timeout")}
    options["restore_id"] = params["restore_id"] or restore.request_id(settings)
    return options


class InstanceRestore(RegionalJob):
    action = "run_instances"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.existing, self.found, self.bad_input, self.started = [], set(), [], {}

    def network_of(self, region):
        if self.options["networks"] is None:
            return self.options["network"]
        return self.options["networks"].get(region)

    def describe(self, region):
        return restore.describe_instance_restores(self.clients[region], self.options)

    def plan_region(self, region, described):
        images, instances, restored = described
        region_plan = restore.plan_instance_restores(
            region, images, instances, restored, self.network_of(region), self.options
        )
        self.errors.extend(region_plan["errors"])
        self.existing.extend(region_plan["existing"])
        self.found.update(region_plan["found"])
        self.bad_input.extend(region_plan["bad_input"])
        return region_plan

    def check_region(self, region_plan):
        """The region's subnet and security groups exist there (read-only, also in check mode)."""
        region = region_plan["region"]
        restore.check_network(self.clients[region], region, self.network_of(region))

    def after_plan(self, plans):
        """Ids no region knows and AMIs that cannot be used fail the task before anything is launched."""
        refused = list(self.bad_input)
        if not any(error["action"] == "describe" for error in self.errors):
            refused += restore.unknown_inputs(self.options, self.found, self.regions)
        if refused:
            self.module.fail_json(msg="; ".join(refused), errors=self.errors, regions=self.regions)

    def resource_of(self, item):
        return item["source_instance_id"]

    def preview(self, item):
        return restore.instance_result(item)

    def apply(self, item):
        started = time.monotonic()
        result = restore.launch(self.clients[item["region"]], item)
        self.started[result["instance_id"]] = (item["region"], started)
        return result

    def apply_all(self, todo):
        instances = super().apply_all(todo)
        if self.options["wait"] and instances:
            self.wait_for(instances)
        return instances

    def wait_for(self, instances):
        recovered, errors = restore.wait_all_status_ok(
            self.clients, self.started, self.options["wait_timeout"], self.max_concurrency
        )
        self.errors.extend(errors)
        self.errors.extend(restore.recovery_errors(instances, recovered, self.options["wait_timeout"]))

    def result_keys(self, done):
        return dict(changed=bool(done), instances=self.existing + done)

    def summarise(self, summary, result):
        launched = [item for item in result["instances"] if item["launched"] or item["state"] == "planned"]
        summary.done(
            "launched",
            "launch",
            "instance(s)",
            launched,
            lambda item: "{0}from {1} of {2}".format(
                item["instance_id"] + " " if item["instance_id"] else "", item["image_id"], item["source_instance_id"]
            ),
        )
        earlier = [item for item in result["instances"] if item not in launched]
        summary.done(
            "found",
            "find",
            "instance(s) this restore_id launched before",
            earlier,
            lambda item: "{0} of {1}".format(item["instance_id"], item["source_instance_id"]),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    InstanceRestore.for_module(module, options).run()


if __name__ == "__main__":
    main()
