#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: vault_guard
short_description: Lock the collection's backups against deletion until they expire, in one or more regions
version_added: 0.2.0
description:
  - Works on the backups that carry the managed marker C(CreatedBy=opsvault.aws_backup) (the AMIs and snapshots
    of M(opsvault.aws_backup.ami_backup) and M(opsvault.aws_backup.ebs_snapshot), and copies of them, which
    carry the same tags).
  - With O(lock_snapshots), locks each managed EBS snapshot (LockSnapshot) until the start (00:00 UTC) of its
    C(DeleteOn) day, when the purge may take it. A snapshot already locked until then or later is left alone;
    a shorter lock is extended. Snapshots whose C(DeleteOn) has come, or that have none, are not locked.
  - O(lock_mode=governance) (the default) keeps the snapshot from deletion, but a user with
    C(ec2:UnlockSnapshot) can still unlock it. O(lock_mode=compliance) cannot be undone once its
    O(cool_off_period) has passed, not even by the account's root user, and the snapshot is then kept and
    billed until the lock ends.
  - With O(protect_images), enables deregistration protection on each managed AMI that is not expired
    (EnableImageDeregistrationProtection), optionally with the 24-hour cooldown (O(deregistration_cooldown)).
    M(opsvault.aws_backup.ami_purge) removes it on expiry only with its C(remove_deregistration_protection) option.
  - With O(recycle_bin), keeps a Recycle Bin retention rule per resource type in each region, so that a
    deleted snapshot or deregistered AMI can be recovered for O(recycle_bin.retention_days). The rule is found
    again by its description, so a rerun creates no second rule.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  lock_snapshots:
    description: Lock each managed EBS snapshot until its C(DeleteOn).
    type: bool
    default: true
  lock_mode:
    description:
      - V(governance) locks that a user with the permission can remove, or V(compliance) locks that no one can
        remove after O(cool_off_period).
    type: str
    default: governance
    choices: [governance, compliance]
  cool_off_period:
    description:
      - With O(lock_mode=compliance), required. The hours (1 to 72) after locking in which a compliance lock can
        still be removed or shortened, or V(0) for a compliance lock that no one can remove from the start.
      - Refused with O(lock_mode=governance).
    type: int
  protect_images:
    description: Enable deregistration protection on each managed AMI that has not expired.
    type: bool
    default: true
  deregistration_cooldown:
    description:
      - Protect the AMIs with the 24-hour cooldown, so that an AMI stays protected for 24 hours after its
        protection is disabled.
    type: bool
    default: false
  recycle_bin:
    description:
      - A Recycle Bin retention rule per resource type in each region. Unset, no rule is made or changed.
      - A rule that is locked cannot be changed; a different O(recycle_bin.retention_days) is then reported in
        RV(skipped_resources).
    type: dict
    suboptions:
      retention_days:
        description: How long Recycle Bin keeps a deleted snapshot or deregistered AMI, 1 to 365 days.
        type: int
        required: true
      resource_types:
        description: The kinds of resources the rules keep.
        type: list
        elements: str
        choices: [EBS_SNAPSHOT, EC2_IMAGE]
        default: [EBS_SNAPSHOT, EC2_IMAGE]
      selection:
        description:
          - V(tag) keeps only resources tagged C(CreatedBy=opsvault.aws_backup); V(region) keeps every deleted
            resource of that kind in the region (a Region-level rule).
        type: str
        choices: [tag, region]
        default: tag
      lock:
        description:
          - Lock the rules, so that no one can change or delete them until an unlock and its delay have passed.
            AWS locks only Region-level rules, so this needs O(recycle_bin.selection=region).
        type: bool
        default: false
      unlock_delay_days:
        description: With O(recycle_bin.lock), the days (7 to 30) a rule stays locked after it is unlocked.
        type: int
        default: 7
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeSnapshots), C(ec2:DescribeLockedSnapshots) and C(ec2:LockSnapshot)
    (O(lock_snapshots)), C(ec2:DescribeImages) and C(ec2:EnableImageDeregistrationProtection) (O(protect_images)),
    C(rbin:ListRules), C(rbin:CreateRule), C(rbin:UpdateRule) and C(rbin:LockRule) (O(recycle_bin)),
    and C(sts:GetCallerIdentity).
  - Supports check mode, which returns the plan (each item V(planned)) and makes no change.
  - Idempotent; a rerun changes nothing and lists each backup already guarded in RV(skipped_resources).
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Lock the managed snapshots and protect the managed AMIs until they expire, everywhere
  opsvault.aws_backup.vault_guard:
    regions: all

- name: Compliance locks that can still be undone for 24 hours, and a locked Recycle Bin rule for 14 days
  opsvault.aws_backup.vault_guard:
    regions: [eu-west-1]
    lock_mode: compliance
    cool_off_period: 24
    recycle_bin:
      retention_days: 14
      selection: region
      lock: true
      unlock_delay_days: 7
"""

RETURN = r"""
locked_snapshots:
  description: The snapshots locked (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    snapshot_id:
      description: The snapshot.
      type: str
      sample: snap-0123456789abcdef0
    region:
      description: The region.
      type: str
      sample: eu-west-1
    delete_on:
      description: The snapshot's C(DeleteOn) tag.
      type: str
      sample: "2026-12-09"
    locked_until:
      description: When the lock ends (UTC), the start of the C(DeleteOn) day.
      type: str
      sample: "2026-12-09T00:00:00+00:00"
    lock_mode:
      description: V(governance) or V(compliance).
      type: str
      sample: governance
    cool_off_period:
      description: The compliance cooling-off period in hours, null for none.
      type: int
      sample: 24
    lock_state:
      description: The lock state AWS answered (V(governance), V(compliance-cooloff), V(compliance)); absent in check mode.
      type: str
      sample: governance
    previous_lock:
      description: The lock it replaced (its state and end), null when the snapshot was not locked.
      type: dict
      sample: {"state": "governance", "until": "2026-12-01T00:00:00+00:00"}
    state:
      description: V(locked), or V(planned) in check mode.
      type: str
      sample: locked
protected_images:
  description: The AMIs protected from deregistration (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The AMI.
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
    delete_on:
      description: The AMI's C(DeleteOn) tag.
      type: str
      sample: "2026-12-09"
    with_cooldown:
      description: Whether the protection has the 24-hour cooldown.
      type: bool
      sample: false
    previous_protection:
      description: The AMI's C(DeregistrationProtection) before.
      type: str
      sample: disabled
    state:
      description: V(protected), or V(planned) in check mode.
      type: str
      sample: protected
retention_rules:
  description: The Recycle Bin retention rules created, updated or locked (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    rule_id:
      description: The rule's identifier (null for a rule not created yet in check mode).
      type: str
      sample: 0123456789a
    region:
      description: The region.
      type: str
      sample: eu-west-1
    resource_type:
      description: V(EBS_SNAPSHOT) or V(EC2_IMAGE).
      type: str
      sample: EBS_SNAPSHOT
    retention_days:
      description: How long the rule keeps deleted resources.
      type: int
      sample: 14
    steps:
      description: What was done, in order (V(create), V(update), V(lock)).
      type: list
      elements: str
      sample: [create]
    lock_state:
      description: The rule's lock state after the change (null when never locked; absent in check mode).
      type: str
      sample: locked
    state:
      description: V(applied), or V(planned) in check mode.
      type: str
      sample: applied
skipped_resources:
  description: Every managed backup or rule left alone, with the reason (already locked until, expired, no DeleteOn...).
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "snapshot_id": "snap-0123456789abcdef0", "region": "eu-west-1",
            "reason": "already locked (governance) until 2026-12-09T00:00:00+00:00", "locked_until": "2026-12-09T00:00:00+00:00"}]
errors:
  description: Every backup, rule or region that failed, with the step and the AWS error code.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "snap-0123456789abcdef0", "region": "eu-west-1", "action": "snapshot_lock",
            "code": "UnauthorizedOperation", "message": "..."}]
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1]
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Locked 3 snapshot(s): snap-0123456789abcdef0 (governance until 2026-12-09T00:00:00+00:00); ..."
"""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import guard
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module

ARGUMENT_SPEC = shared.argument_spec(
    lock_snapshots=dict(type="bool", default=True),
    lock_mode=dict(type="str", default=guard.GOVERNANCE, choices=list(guard.LOCK_MODES)),
    cool_off_period=dict(type="int"),
    protect_images=dict(type="bool", default=True),
    deregistration_cooldown=dict(type="bool", default=False),
    recycle_bin=dict(
        type="dict",
        options=dict(
            retention_days=dict(type="int", required=True),
            resource_types=dict(
                type="list",
                elements="str",
                choices=list(guard.RECYCLE_BIN_RESOURCE_TYPES),
                default=list(guard.RECYCLE_BIN_RESOURCE_TYPES),
            ),
            selection=dict(type="str", choices=list(guard.RECYCLE_BIN_SELECTIONS), default="tag"),
            lock=dict(type="bool", default=False),
            unlock_delay_days=dict(type="int", default=7),
        ),
    ),
)
MANAGED_FILTER = [{"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]}]
APPLY_STEPS = {
    guard.KIND_SNAPSHOT_LOCK: ("ec2", guard.lock_snapshot),
    guard.KIND_IMAGE_PROTECTION: ("ec2", guard.protect_image),
    guard.KIND_RETENTION_RULE: ("rbin", guard.apply_retention_rule),
}


def parse_options(params, check_mode):
    return guard.check_options(params)


class VaultGuard(RegionalJob):
    needs_account_id = True

    def __init__(self, module, options, regions, clients, account_id=None):
        super().__init__(module, options, regions, clients, account_id)
        self.rbin_clients = {}
        if options["recycle_bin"]:
            self.rbin_clients = regional_clients(module, "rbin", regions, self.max_concurrency)

    def describe(self, region):
        client, options = self.clients[region], self.options
        described = {"snapshots": [], "locks": {}, "images": [], "rules": {}}
        if options["lock_snapshots"]:
            described["snapshots"] = paginate(
                client, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=MANAGED_FILTER
            )
            described["locks"] = guard.describe_snapshot_locks(client)
        if options["protect_images"]:
            described["images"] = paginate(client, "describe_images", "Images", Owners=["self"], Filters=MANAGED_FILTER)
        if options["recycle_bin"]:
            described["rules"] = guard.list_rules(self.rbin_clients[region], options["recycle_bin"]["resource_types"])
        return described

    def plan_region(self, region, described):
        options, todo, skipped = self.options, [], []
        if options["lock_snapshots"]:
            locks, left = guard.plan_snapshot_locks(
                region, described["snapshots"], described["locks"], options, self.now, self.account_id
            )
            todo, skipped = todo + locks, skipped + left
        if options["protect_images"]:
            protections, left = guard.plan_image_protection(
                region, described["images"], options, self.now, self.account_id
            )
            todo, skipped = todo + protections, skipped + left
        if options["recycle_bin"]:
            rules, left = guard.plan_retention_rules(region, described["rules"], options["recycle_bin"])
            todo, skipped = todo + rules, skipped + left
        return {"todo": todo, "skipped": skipped}

    def apply(self, item):
        service, step = APPLY_STEPS[item["kind"]]
        client = (self.rbin_clients if service == "rbin" else self.clients)[item["region"]]
        return step(client, item)

    def apply_all(self, todo):
        # Each error names its step: snapshot_lock, image_protection or retention_rule.
        done = []
        for kind in APPLY_STEPS:
            self.action = kind
            done.extend(super().apply_all([item for item in todo if item["kind"] == kind]))
        return done

    def result_keys(self, done):
        def of(kind):
            return [
                {key: value for key, value in item.items() if key not in ("kind", "resource")}
                for item in done
                if item["kind"] == kind
            ]

        return dict(
            changed=bool(done),
            locked_snapshots=of(guard.KIND_SNAPSHOT_LOCK),
            protected_images=of(guard.KIND_IMAGE_PROTECTION),
            retention_rules=of(guard.KIND_RETENTION_RULE),
        )

    def summarise(self, summary, result):
        summary.done(
            "locked",
            "lock",
            "snapshot(s)",
            result["locked_snapshots"],
            lambda item: "{snapshot_id} ({lock_mode} until {locked_until})".format(**item),
        )
        summary.done(
            "protected",
            "protect",
            "AMI(s) from deregistration",
            result["protected_images"],
            lambda item: "{image_id} (expires {delete_on})".format(**item),
        )
        summary.done(
            "applied",
            "apply",
            "Recycle Bin retention rule change(s)",
            result["retention_rules"],
            lambda item: "{0} {1} ({2} days): {3}".format(
                item["rule_id"] or "new rule", item["resource_type"], item["retention_days"], ", ".join(item["steps"])
            ),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    VaultGuard.for_module(module, options).run()


if __name__ == "__main__":
    main()
