#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: backup_copy
short_description: Copy managed AMIs and EBS snapshots to other regions and to a vault account, for disaster recovery
version_added: 0.2.0
description:
  - Copies the managed AMIs (made by M(opsvault.aws_backup.ami_backup)) and EBS snapshots (made by
    M(opsvault.aws_backup.ebs_snapshot)) of the account in O(regions) to each of O(destinations), another
    region of the account or a region of another account (a vault account) reached by assuming a role there.
  - Each copy is tagged in the copy call with the source's tags, its own C(DeleteOn) (the destination's
    O(destinations[].retention) from the source's creation, else the source's C(DeleteOn)) and its provenance
    C(SourceImageId) or C(SourceSnapshotId), C(SourceRegion) and C(SourceAccount). A source that already has a
    copy in a destination (found by those tags) is not copied there again, so reruns create nothing.
  - CopyImage carries a C(ClientToken) made from the source and the destination, so a request retried after a
    timeout or a 5xx returns the first copy. CopySnapshot has no token, and after such a failure the copy the
    request made is looked up by its provenance tags before the request is sent again.
  - "To another account: the source is shared with that account (the AMI's launch permission and its snapshots'
    create-volume permission, or the snapshot's), the copy is started from that account, encrypted with its
    O(destinations[].kms_key_id), and the share is removed as soon as every copy of the source in that account
    is complete: in the same run when the copy completes at once or with O(wait=true), else on the next run."
  - Before any change, each source and destination is checked, and each one that cannot be copied is named in
    RV(errors) with the reason, with nothing of it changed (the others are copied and the task fails at the end).
    A snapshot encrypted with the AWS managed key C(aws/ebs) cannot be shared with another account; an AMI with
    AWS Marketplace product codes cannot be copied to another account; the destination's KMS key must exist and
    be enabled.
  - At most 20 snapshot copies are in flight per destination region (AWS's limit); more wait for a slot, up to
    O(wait_timeout), and those still waiting then are listed in RV(skipped_resources) for the next run.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  destinations:
    description: Where to copy. Each entry is one region, of this account or of another one.
    type: list
    elements: dict
    required: true
    suboptions:
      region:
        description: The destination region.
        type: str
        required: true
      account_id:
        description:
          - Another account to copy to (a vault account). Omit it to copy within this account.
          - The module assumes O(destinations[].role_arn) there, or the role that O(destination_role_template) names.
        type: str
      role_arn:
        description: The role to assume in O(destinations[].account_id); default from O(destination_role_template).
        type: str
      kms_key_id:
        description:
          - The KMS key (id, ARN or C(alias/...)) of the destination that encrypts the copies. Required with
            O(destinations[].account_id).
          - Without it, a copy within the account keeps the source's encryption.
        type: str
      retention:
        description:
          - How long the copies live, counted from the source backup's creation (V(30d), V(6m), V(1y)).
          - Default is the source's own C(DeleteOn).
        type: str
  destination_role_template:
    description: The role assumed in a destination account without O(destinations[].role_arn); C({account_id}) is replaced.
    type: str
    default: "arn:aws:iam::{account_id}:role/OpsvaultBackupVault"
  resource_types:
    description: What to copy.
    type: list
    elements: str
    choices: [image, snapshot]
    default: [image, snapshot]
  wait:
    description:
      - Wait until the copies are complete, so that the shares with other accounts are removed in this run.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait=true), and at most for a free snapshot copy slot.
    type: int
    default: 3600
notes:
  - "Requires, in the source account: C(ec2:DescribeRegions), C(ec2:DescribeImages), C(ec2:DescribeSnapshots),
    and for copies within the account C(ec2:CopyImage), C(ec2:CopySnapshot) and C(ec2:CreateTags) on create; for
    other accounts C(ec2:ModifyImageAttribute), C(ec2:ModifySnapshotAttribute), C(kms:DescribeKey) and
    C(sts:AssumeRole) on the vault role."
  - "Requires, in a destination account (the vault role): C(ec2:DescribeImages), C(ec2:DescribeSnapshots),
    C(ec2:CopyImage), C(ec2:CopySnapshot), C(ec2:CreateTags) on create, C(kms:DescribeKey), and the KMS grants
    that encrypting with its key and reading the source's key need."
  - Supports check mode, which returns the plan in RV(copies) and RV(unshared) (each V(planned)) and makes no change.
  - The purges treat copies as backups of their own source and origin, expiring them by their own C(DeleteOn).
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Copy the day's backups to a second region, kept 30 days there
  opsvault.aws_backup.backup_copy:
    regions: [eu-west-1]
    destinations:
      - region: eu-central-1
        retention: 30d

- name: Copy every backup to the vault account, encrypted with its key, kept a year
  opsvault.aws_backup.backup_copy:
    regions: all
    destinations:
      - region: eu-west-1
        account_id: "210987654321"
        kms_key_id: alias/backup-vault
        retention: 1y
    wait: true
  register: copied

- name: Show the copies
  ansible.builtin.debug:
    msg: "{{ copied.copies | map(attribute='copy_id') }}"
"""

RETURN = r"""
copies:
  description: The copies started (in check mode, the ones that would be).
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(image) or V(snapshot).
      type: str
      sample: image
    source_id:
      description: The source AMI or snapshot.
      type: str
      sample: ami-0123456789abcdef0
    source_region:
      description: The source's region.
      type: str
      sample: eu-west-1
    source_account:
      description: The source's account.
      type: str
      sample: "123456789012"
    copy_id:
      description: The copy's id (null in check mode).
      type: str
      sample: ami-0fedcba9876543210
    region:
      description: The destination region.
      type: str
      sample: eu-central-1
    account_id:
      description: The destination account.
      type: str
      sample: "210987654321"
    kms_key_id:
      description: The key that encrypts the copy (null when the copy keeps the source's encryption).
      type: str
      sample: alias/backup-vault
    delete_on:
      description: The copy's C(DeleteOn).
      type: str
      sample: "2027-11-23"
    state:
      description: The copy's state (V(pending), V(available), V(completed)), V(planned) in check mode.
      type: str
      sample: pending
    shared:
      description: Whether the source was shared with the destination account for this copy.
      type: bool
      sample: true
    tags:
      description: The tags written on the copy.
      type: dict
unshared:
  description: The sources whose share with a destination account was removed, their copies there being complete.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "image", "source_id": "ami-0123456789abcdef0", "region": "eu-west-1", "account_id": "210987654321",
            "snapshot_ids": ["snap-0123456789abcdef0"], "state": "unshared"}]
skipped_resources:
  description: Sources left alone (copied already, pending, expired, waiting for a copy slot), each with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "ami-0123456789abcdef0", "region": "eu-central-1", "copy_id": "ami-0fedcba9876543210",
            "source_region": "eu-west-1", "reason": "copied already to eu-central-1 (123456789012) as ami-0fedcba9876543210 (available)"}]
errors:
  description: Every source, destination or region that failed, the preflight checks included, with the step and the code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "region": "eu-west-1", "action": "preflight", "code": "CannotCopyToAccount",
            "message": "snapshot snap-0123456789abcdef0 is encrypted with the AWS managed key ... (aws/ebs) ..."}]
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Copied 2 AMI(s): ami-0123456789abcdef0 to eu-central-1 (123456789012) until 2026-12-23; ..."
regions:
  description: The source regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1]
"""

import time

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import copies
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_config
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import role_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import tag_filter
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry

ARGUMENT_SPEC = dict(
    destinations=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            region=dict(type="str", required=True),
            account_id=dict(type="str"),
            role_arn=dict(type="str"),
            kms_key_id=dict(type="str", no_log=False),
            retention=dict(type="str"),
        ),
    ),
    destination_role_template=dict(type="str", default=copies.DEFAULT_ROLE_TEMPLATE),
    resource_types=dict(
        type="list", elements="str", choices=list(copies.RESOURCE_TYPES), default=list(copies.RESOURCE_TYPES)
    ),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=3600),
)


def parse_options(params, check_mode):
    if not params["resource_types"]:
        raise ValueError("resource_types must name image, snapshot or both")
    destinations = [
        {key: value for key, value in entry.items() if value is not None} for entry in params["destinations"]
    ]
    return {
        "destinations": copies.parse_destinations(destinations, params["destination_role_template"]),
        "resource_types": params["resource_types"],
        "wait": params["wait"],
        "wait_timeout": shared.at_least("wait_timeout", params["wait_timeout"], 1),
    }


def _managed(client, operation, key, **params):
    params["Filters"] = params.get("Filters", []) + [tag_filter(contract.MARKER_KEY, contract.MARKER_VALUE)]
    return paginate(client, operation, key, **params)


def _key_problem(client, key_id):
    """Why the destination's key cannot encrypt the copies (DescribeKey), None when it can."""
    try:
        return copies.key_problem(client.describe_key(KeyId=key_id)["KeyMetadata"])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "NotFoundException":
            return "does not exist (NotFoundException)"
        raise


class BackupCopy(RegionalJob):
    action = "copy"
    needs_account_id = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unshare_todo, self.after_copy, self.copied_shares = [], [], []
        self.unshared = []
        self.destinations = [
            dict(destination, account_id=destination["account_id"] or self.account_id)
            for destination in self.options["destinations"]
        ]
        self.cross_accounts = sorted({d["account_id"] for d in self.destinations if d["account_id"] != self.account_id})
        self.dest_clients = {}
        self.copy_clients = {}
        self.kms_clients = {}
        for destination in self.destinations:
            key = (destination["region"], destination["account_id"])
            self.dest_clients[key], self.copy_clients[key], self.kms_clients[key] = self._destination_clients(
                destination
            )
        self.source_kms = self.make_kms(self.regions) if self.cross_accounts else {}
        self.slots = {}

    def _clients(self, service, regions, role, **retries):
        config = client_config(self.max_concurrency, **retries)
        if role is None:
            return regional_clients(self.module, service, regions, self.max_concurrency, **retries)
        return role_clients(self.module, service, regions, role, config)

    def _destination_clients(self, destination):
        role = None
        if destination["account_id"] != self.account_id:
            role = {
                "role_arn": destination["role_arn"],
                "external_id": None,
                "session_name": self.module.params["role_session_name"] or "opsvault-aws-backup",
            }
        region = [destination["region"]]
        return (
            self._clients("ec2", region, role)[destination["region"]],
            self._clients("ec2", region, role, total_max_attempts=1)[destination["region"]],
            self._clients("kms", region, role)[destination["region"]] if destination["kms_key_id"] else None,
        )

    def make_kms(self, regions):
        return regional_clients(self.module, "kms", regions, self.max_concurrency)

    # ------------------------------------------------------------ describe and plan

    def describe(self, region):
        client = self.clients[region]
        images = _managed(client, "describe_images", "Images", Owners=["self"])
        snapshots = [
            snapshot
            for snapshot in _managed(client, "describe_snapshots", "Snapshots", OwnerIds=["self"])
            if snapshot.get("OwnerId") in (None, self.account_id)
        ]
        sources = copies.copy_sources(images, snapshots, self.options["resource_types"])
        by_id = {snapshot["SnapshotId"]: snapshot for snapshot in snapshots}
        missing = sorted({s for image in images for s in copies.image_snapshot_ids(image) if s not in by_id})
        if missing and self.cross_accounts:
            found = paginate(
                client,
                "describe_snapshots",
                "Snapshots",
                OwnerIds=["self"],
                Filters=[{"Name": "snapshot-id", "Values": missing}],
            )
            by_id.update((snapshot["SnapshotId"], snapshot) for snapshot in found)
        shared_with, source_keys = {}, {}
        for account in self.cross_accounts:
            shared_images = paginate(client, "describe_images", "Images", Owners=["self"], ExecutableUsers=[account])
            shared_snapshots = paginate(
                client, "describe_snapshots", "Snapshots", OwnerIds=["self"], RestorableByUserIds=[account]
            )
            shared_with[account] = {
                "images": {image["ImageId"] for image in shared_images},
                "snapshots": {
                    snapshot["SnapshotId"]
                    for snapshot in shared_snapshots
                    if snapshot.get("OwnerId") in (None, self.account_id)
                },
            }
        if self.cross_accounts:
            for key_id in copies.source_key_ids(sources, by_id):
                source_keys[key_id] = self.source_kms[region].describe_key(KeyId=key_id)["KeyMetadata"]
        return sources, by_id, shared_with, source_keys

    def describe_destination(self, destination):
        key = (destination["region"], destination["account_id"])
        client = self.dest_clients[key]
        images = _managed(
            client,
            "describe_images",
            "Images",
            Owners=["self"],
            Filters=[{"Name": "tag-key", "Values": [contract.SOURCE_IMAGE_KEY]}],
        )
        snapshots = _managed(
            client,
            "describe_snapshots",
            "Snapshots",
            OwnerIds=["self"],
            Filters=[{"Name": "tag-key", "Values": [contract.SOURCE_SNAPSHOT_KEY]}],
        )
        in_flight = paginate(
            client,
            "describe_snapshots",
            "Snapshots",
            OwnerIds=["self"],
            Filters=[
                {"Name": "status", "Values": ["pending"]},
                {"Name": "volume-id", "Values": [copies.COPIED_SNAPSHOT_VOLUME_ID]},
            ],
        )
        problem = _key_problem(self.kms_clients[key], destination["kms_key_id"]) if destination["kms_key_id"] else None
        return {
            "copies": copies.existing_copies(images, snapshots),
            "key_problem": problem,
            "in_flight": copies.pending_copy_ids(in_flight),
        }

    def describe_and_plan(self):
        described = {}
        for destination, data, exc in run_concurrently(
            self.describe_destination, self.destinations, self.max_concurrency
        ):
            key = (destination["region"], destination["account_id"])
            if exc:
                self.errors.append(error_entry(copies.destination_label(*key), destination["region"], "describe", exc))
                data = {"copies": {}, "key_problem": None, "in_flight": [], "unavailable": True}
            described[key] = data
        self.described = described
        deadline = time.monotonic() + self.options["wait_timeout"]
        self.slots = {
            key: copies.CopySlots(self.dest_clients[key], data["in_flight"], deadline=deadline)
            for key, data in described.items()
        }
        plans = []
        for region, data, exc in run_concurrently(self.describe, self.regions, self.max_concurrency):
            if exc:
                self.errors.append(error_entry(region, region, "describe", exc))
                continue
            sources, by_id, shared_with, source_keys = data
            region_plan = copies.plan_copies(
                region,
                self.account_id,
                sources,
                by_id,
                self.destinations,
                described,
                shared_with,
                source_keys,
                self.now.date(),
            )
            plans.append(plan(region=region, **region_plan))
        return plans

    def plan_region(self, region, described):
        raise NotImplementedError("backup_copy plans in describe_and_plan")

    def after_plan(self, plans):
        for region_plan in plans:
            self.errors.extend(region_plan["failures"])
            self.unshare_todo.extend(region_plan["unshare"])
            self.after_copy.extend(region_plan["after_copy"])

    # ------------------------------------------------------------ apply

    def resource_of(self, item):
        return item["source_id"]

    def preview_all(self, todo):
        self.unshared = [copies.unshare_result(item) for item in self.unshare_todo]
        return [copies.copy_result(item, shared=bool(item["share_image"] or item["share_snapshots"])) for item in todo]

    def apply(self, item):
        key = (item["region"], item["account_id"])
        slots = self.slots[key] if item["kind"] == copies.SNAPSHOT else None
        if slots is not None:
            try:
                slots.take()
            except copies.QueueTimeout:
                return skipped_entry(
                    item["source_id"],
                    item["region"],
                    "waiting for a snapshot copy slot in {0}: {1} copies in flight there (AWS's limit) after "
                    "wait_timeout; the next run copies it".format(copies.destination_label(*key), slots.limit),
                    source_region=item["source_region"],
                    queued=True,
                )
        try:
            shared_now = copies.share(self.clients[item["source_region"]], item) if item["cross_account"] else False
            if item["kind"] == copies.IMAGE:
                copy_id, state = copies.copy_image(self.dest_clients[key], item), "pending"
            else:
                copy_id, state = copies.copy_snapshot_once(self.copy_clients[key], self.dest_clients[key], item)
        except Exception:
            if slots is not None:
                slots.release()
            raise
        if slots is not None:
            slots.started(copy_id, state)
        return copies.copy_result(item, copy_id, state, shared=shared_now)

    def apply_all(self, todo):
        done = []
        for value in super().apply_all(todo):
            if value.get("queued"):
                self.skipped.append({k: v for k, v in value.items() if k != "queued"})
            else:
                done.append(value)
        if done:
            self.update_states(done)
        ready = {
            (c["source_id"], c["account_id"], c["region"]) for c in done if c["state"] in ("available", "completed")
        }
        unshare = list(self.unshare_todo)
        for candidate in self.after_copy:
            if all(
                (candidate["source_id"], candidate["account_id"], region) in ready for region in candidate["waiting"]
            ):
                unshare.append(candidate)
        for item, _value, exc in run_concurrently(
            lambda item: copies.unshare(self.clients[item["region"]], item),
            unshare,
            self.max_concurrency,
            spread_by=by_region,
        ):
            if exc:
                self.errors.append(error_entry(item["source_id"], item["region"], "unshare", exc))
            else:
                self.unshared.append(copies.unshare_result(item, "unshared"))
        return done

    def update_states(self, done):
        """The copies' states now (after waiting for them with O(wait)), one Describe per destination and kind."""
        groups = {}
        for copy in done:
            groups.setdefault((copy["region"], copy["account_id"], copy["kind"]), []).append(copy)

        def states(group_key):
            region, account, kind = group_key
            timeout = self.options["wait_timeout"] if self.options["wait"] else None
            ids = [copy["copy_id"] for copy in groups[group_key]]
            return copies.copy_states(self.dest_clients[(region, account)], kind, ids, timeout)

        for group_key, found, exc in run_concurrently(states, list(groups), self.max_concurrency):
            if exc:
                self.errors.append(error_entry(group_key[0], group_key[0], "describe", exc))
                continue
            for copy in groups[group_key]:
                copy["state"] = found.get(copy["copy_id"], copy["state"])

    def result_keys(self, done):
        return dict(changed=bool(done or self.unshared), copies=done, unshared=self.unshared)

    def summarise(self, summary, result):
        def describe(copy):
            return "{0} to {1} until {2}".format(
                copy["copy_id"] or copy["source_id"],
                copies.destination_label(copy["region"], copy["account_id"]),
                copy["delete_on"],
            )

        for kind, noun in ((copies.IMAGE, "AMI(s)"), (copies.SNAPSHOT, "snapshot(s)")):
            summary.done("copied", "copy", noun, [c for c in result["copies"] if c["kind"] == kind], describe)
        summary.done(
            "removed the share of",
            "remove the share of",
            "source(s)",
            result["unshared"],
            lambda item: "{0} with {1}".format(item["source_id"], item["account_id"]),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    BackupCopy.for_module(module, options).run()


if __name__ == "__main__":
    main()
