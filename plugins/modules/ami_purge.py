#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: ami_purge
short_description: Deregister expired AMI backups and delete their snapshots, safely
version_added: 0.1.0
description:
  - Finds the AMIs the account owns in O(regions) that carry the managed marker
    C(CreatedBy=opsvault.aws_backup) (written by M(opsvault.aws_backup.ami_backup)), deregisters
    those whose C(DeleteOn) date is on or before today (UTC), or O(as_of), and then deletes their snapshots.
  - The newest O(keep_min) available AMIs of each source instance are always kept.
  - When the newest AMI of a source instance is not C(available) (C(pending) or C(failed)),
    nothing of that source is purged in this run, and RV(skipped_resources) says why.
  - A snapshot is never deleted while another registered AMI (disabled ones included) uses it, nor when
    it is not owned by the account. Which AMIs use it is decided from one C(DescribeImages) per region,
    before anything is changed; its owner from C(DescribeSnapshots) of the snapshots the purge may delete
    (not all of the account's), a batch at a time, just before their deletes. A snapshot two expiring AMIs
    share is deleted once, after both are deregistered.
  - With O(adopt_legacy=true), AMIs that carry a C(DeleteOn) tag but no marker (made by older
    backup scripts) are purged by the same rules; their source instance is read from AWS's
    C(SourceInstanceId) or from an instance id in their name or description, and those of unknown
    source are treated as one source.
  - The snapshots of an AMI that could not be deregistered are left alone.
  - An expired AMI with deregistration protection (as M(opsvault.aws_backup.vault_guard) enables) stays registered,
    listed in RV(skipped_resources) with C(locked_until), unless O(remove_deregistration_protection=true). A snapshot
    locked against deletion stays until its lock ends, listed with C(locked_until), while its AMI is deregistered.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  remove_deregistration_protection:
    description:
      - Remove the deregistration protection of an expired AMI (DisableImageDeregistrationProtection) and then
        deregister it. An AMI protected with the 24-hour cooldown is unprotected in this run and deregistered by
        a run after the cooldown, since AWS refuses it until then.
      - Only AMIs the purge would deregister lose their protection; the others keep it.
    type: bool
    default: false
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeImages), C(ec2:DescribeSnapshots), C(ec2:DescribeLockedSnapshots),
    C(ec2:DisableImageDeregistrationProtection) (with O(remove_deregistration_protection)), C(ec2:DeregisterImage)
    and C(ec2:DeleteSnapshot).
  - Supports check mode, which returns the full plan in RV(deregistered) and RV(deleted_snapshots)
    (each V(planned)) and makes no change.
  - C(DeregisterImage) is called without C(DeleteAssociatedSnapshots); the snapshots are deleted one by one,
    so that the safety checks hold and each deletion is reported.
extends_documentation_fragment:
  - opsvault.aws_backup.regional
  - opsvault.aws_backup.assume_role
  - opsvault.aws_backup.purge
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Deregister expired AMI backups and delete their snapshots, in two regions
  opsvault.aws_backup.ami_purge:
    regions: [eu-west-1, us-east-1]

- name: Preview what a purge will remove at the end of the year, everywhere
  opsvault.aws_backup.ami_purge:
    regions: all
    as_of: "2026-12-31"
  check_mode: true
  register: preview

- name: Show the AMIs that would go
  ansible.builtin.debug:
    msg: "{{ preview.deregistered | map(attribute='image_id') }}"

- name: Keep the newest 7 backups of each instance, and adopt the old scripts' AMIs
  opsvault.aws_backup.ami_purge:
    regions: all
    keep_last: 7
    adopt_legacy: true
"""

RETURN = r"""
deregistered:
  description: The AMIs deregistered (in check mode, the ones that would be).
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The AMI id.
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
    source_instance_id:
      description: The instance the AMI was made from (null for a legacy AMI of unknown source).
      type: str
      sample: i-0123456789abcdef0
    delete_on:
      description: The AMI's C(DeleteOn) date (null when it had none).
      type: str
      sample: "2026-11-16"
    reason:
      description: Why it was deregistered.
      type: str
      sample: expired on 2026-11-16
    legacy:
      description: Whether the AMI lacked the managed marker (adopted with O(adopt_legacy)).
      type: bool
      sample: false
    state:
      description: V(deregistered), or V(planned) in check mode.
      type: str
      sample: deregistered
    snapshot_ids:
      description: The AMI's snapshots deleted with it (in check mode, that would be).
      type: list
      elements: str
      sample: [snap-0123456789abcdef0]
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
    image_id:
      description: The deregistered AMI it belonged to.
      type: str
      sample: ami-0123456789abcdef0
    image_ids:
      description: Every deregistered AMI that used it (more than one when they shared it).
      type: list
      elements: str
      sample: [ami-0123456789abcdef0]
    region:
      description: The region.
      type: str
      sample: eu-west-1
    state:
      description: V(deleted), or V(planned) in check mode.
      type: str
      sample: deleted
deregistration_protection_removed:
  description: The expired AMIs whose deregistration protection was removed (in check mode, would be).
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The AMI id.
      type: str
      sample: ami-0123456789abcdef0
    region:
      description: The region.
      type: str
      sample: eu-west-1
    deregistrable_after:
      description: When AWS allows the deregistration (the end of the 24-hour cooldown), null when deregistered in this run.
      type: str
      sample: "2026-12-02T03:00:00+00:00"
    state:
      description: V(unprotected), or V(planned) in check mode.
      type: str
      sample: unprotected
skipped_resources:
  description:
    - Every managed (or adopted) AMI left registered, and every snapshot of a deregistered AMI left in place, each with the reason.
    - Items about a snapshot carry its C(snapshot_id) and the C(image_id) of the AMI it belonged to.
  returned: always
  type: list
  elements: dict
  sample:
    - {"resource": "ami-0123456789abcdef0", "image_id": "ami-0123456789abcdef0", "name": "web-1-i-0123456789abcdef0-20261123T010000Z",
       "region": "eu-west-1", "source_instance_id": "i-0123456789abcdef0",
       "reason": "one of the newest 1 available backup(s) of i-0123456789abcdef0 (keep_min)"}
    - {"resource": "snap-0123456789abcdef0", "snapshot_id": "snap-0123456789abcdef0", "image_id": "ami-0fedcba9876543210",
       "name": "web-1-old", "region": "eu-west-1", "reason": "also used by ami-0aaaabbbbccccdddd, which stays registered"}
    - {"resource": "ami-0aaaabbbbccccdddd", "image_id": "ami-0aaaabbbbccccdddd", "name": "web-1-older", "region": "eu-west-1",
       "source_instance_id": "i-0123456789abcdef0", "locked_until": "protected",
       "reason": "expired on 2026-11-16; protected from deregistration (enabled), remove_deregistration_protection is false"}
errors:
  description: Every AMI, snapshot or region that failed, with the AWS error code and the action.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "ami-0123456789abcdef0", "region": "eu-west-1", "action": "deregister_image",
            "code": "UnauthorizedOperation", "message": "..."}]
regions:
  description: The regions the task ran in.
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
as_of:
  description: The date whose expired AMIs were purged.
  returned: always
  type: str
  sample: "2026-11-23"
msg:
  description: A summary to read in a job log, C(would) in check mode.
  returned: always
  type: str
  sample: "eu-west-1: Deregistered 3 AMI(s): ami-0123456789abcdef0 of i-0123456789abcdef0 (expired on 2026-11-16); ..."
"""

import threading

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.opsvault.aws_backup.plugins.module_utils import guard

from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import SnapshotOwners
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import account_of
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_purge
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import regional_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry

ARGUMENT_SPEC = shared.argument_spec(shared.PURGE, remove_deregistration_protection=dict(type="bool", default=False))


def parse_options(params, check_mode):
    today = values.utc_now().date()
    purge_rule.check_counts(params["keep_min"], params["keep_last"])
    as_of = values.parse_as_of(params["as_of"], today)
    values.check_as_of(as_of, today, check_mode, params["allow_future_as_of"])
    return {
        "as_of": as_of,
        "keep_min": params["keep_min"],
        "keep_last": params["keep_last"],
        "adopt_legacy": params["adopt_legacy"],
        "remove_deregistration_protection": params["remove_deregistration_protection"],
    }


def deregister_image(client, item):
    if item.get("remove_protection"):
        client.disable_image_deregistration_protection(ImageId=item["image_id"])
    try:
        client.deregister_image(ImageId=item["image_id"])
    except is_boto3_error_code(["InvalidAMIID.Unavailable", "InvalidAMIID.NotFound"]):
        pass  # already deregistered, by a retried request or another run


def delete_snapshot(client, item):
    try:
        client.delete_snapshot(SnapshotId=item["snapshot_id"])
    except is_boto3_error_code("InvalidSnapshot.NotFound"):
        pass  # already deleted, by a retried request or another run


def snapshot_result(item, state):
    return dict({key: item[key] for key in ("snapshot_id", "image_id", "image_ids", "region")}, state=state)


def unprotected_result(item, state, deregistrable_after=None):
    return {
        "image_id": item["image_id"],
        "region": item["region"],
        "deregistrable_after": item.get("deregistrable_after", deregistrable_after),
        "state": state,
    }


def skipped_snapshot(item, reason):
    return skipped_entry(
        item["snapshot_id"],
        item["region"],
        reason,
        snapshot_id=item["snapshot_id"],
        image_id=item["image_id"],
        name=item["name"],
    )


class AmiPurge(RegionalJob):
    action = "deregister_image"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.owners, self.to_delete, self.deleted = {}, [], []
        self.locks, self.unprotect, self.unprotected = {}, [], []

    def describe(self, region):
        """Every AMI the account owns in the region (disabled ones too: they still use their snapshots),
        and the region's snapshot locks."""
        images = paginate(self.clients[region], "describe_images", "Images", Owners=["self"], IncludeDisabled=True)
        self.locks[region] = guard.describe_snapshot_locks(self.clients[region])
        return images

    def plan_region(self, region, described):
        account_id = account_of(described)
        options = self.options
        region_plan = plan_purge(
            region,
            described,
            account_id,
            options["as_of"],
            options["keep_min"],
            options["keep_last"],
            options["adopt_legacy"],
        )
        region_plan = guard.hold_protected_images(
            region,
            region_plan,
            {image["ImageId"]: image for image in described},
            options["remove_deregistration_protection"],
            self.now,
        )
        snapshots, held = guard.hold_locked_snapshots(
            region, region_plan["snapshots"], self.locks[region], self.now, details=("image_id", "name")
        )
        region_plan = dict(region_plan, snapshots=snapshots, skipped=region_plan["skipped"] + held)
        if described and account_id is None:
            region_plan["warnings"].append(
                "{0}: DescribeImages with Owners=self returned images of several owners; nothing purged there".format(
                    region
                )
            )
        return dict(region_plan, account_id=account_id)

    def check_region(self, region_plan):
        """The region's snapshot owners, the first batch described already, so that a missing permission
        or a failing DescribeSnapshots stops the region before anything in it changes."""
        region = region_plan["region"]
        snapshots = region_plan["snapshots"]
        owners = SnapshotOwners(
            self.clients[region], [item["snapshot_id"] for item in snapshots], region_plan["account_id"]
        )
        if snapshots:
            owners.owners_for(snapshots[0]["snapshot_id"])
        self.owners[region] = owners

    def after_plan(self, plans):
        self.to_delete = [item for region_plan in plans if region_plan["todo"] for item in region_plan["snapshots"]]
        self.unprotect = [item for region_plan in plans for item in region_plan["unprotect"]]

    def resource_of(self, item):
        return item["image_id"]

    def preview_all(self, todo):
        """The planned AMIs, and the planned snapshots the account owns, described like a real run would."""
        for item in self.to_delete:
            try:
                reason = self.owners[item["region"]].kept_reason(item["snapshot_id"])
            except Exception as exc:  # pylint: disable=broad-except
                self.errors.append(error_entry(item["snapshot_id"], item["region"], "describe_snapshots", exc))
                continue
            if reason:
                self.skipped.append(skipped_snapshot(item, reason))
            else:
                self.deleted.append(snapshot_result(item, PLANNED))
        self.unprotected = [unprotected_result(item, PLANNED) for item in self.unprotect]
        self.unprotected += [unprotected_result(item, PLANNED) for item in todo if item.get("remove_protection")]
        return [dict(item, state=PLANNED) for item in todo]

    def apply_all(self, todo):
        """Deregister each AMI, and delete each snapshot as soon as every expiring AMI that uses it is gone.

        Deleting in the same thread right after the deregistration keeps the DeregisterImage and
        DeleteSnapshot rate limits busy at once, instead of one phase after the other.  EC2 throttles
        each of the two APIs in its own bucket, while botocore's adaptive rate limiter is per client:
        each API gets its own clients, so that throttled deregistrations never slow the deletes down.
        """
        delete_clients = self.make_clients(self.regions)
        users_left = {(item["region"], item["snapshot_id"]): set(item["image_ids"]) for item in self.to_delete}
        snapshots_of = {}
        for item in self.to_delete:
            for image_id in item["image_ids"]:
                snapshots_of.setdefault((item["region"], image_id), []).append(item)
        lock = threading.Lock()

        def purge(image):
            deregister_image(self.clients[image["region"]], image)
            released = []
            with lock:
                for snapshot in snapshots_of.get((image["region"], image["image_id"]), []):
                    users = users_left[(snapshot["region"], snapshot["snapshot_id"])]
                    users.discard(image["image_id"])
                    if not users:
                        released.append(snapshot)
            outcomes = []
            for snapshot in released:
                action = "describe_snapshots"
                try:
                    reason = self.owners[snapshot["region"]].kept_reason(snapshot["snapshot_id"])
                    if not reason:
                        action = "delete_snapshot"
                        delete_snapshot(delete_clients[snapshot["region"]], snapshot)
                    outcomes.append((snapshot, reason, action, None))
                except Exception as exc:  # pylint: disable=broad-except
                    outcomes.append((snapshot, None, action, exc))
            return outcomes

        self.unprotect_cooling_down()
        deregistered = []
        for image, outcomes, exc in run_concurrently(purge, todo, self.max_concurrency, spread_by=by_region):
            if exc and guard.is_protected_error(exc):
                self.skipped.append(
                    skipped_entry(
                        image["image_id"],
                        image["region"],
                        "{0}; AWS refused the deregistration: {1}".format(image["reason"], error_code(exc)),
                        image_id=image["image_id"],
                        name=image["name"],
                        locked_until=guard.PROTECTED,
                    )
                )
                continue
            if exc:
                self.errors.append(error_entry(image["image_id"], image["region"], self.action, exc))
                continue
            deregistered.append(dict(image, state="deregistered"))
            if image.get("remove_protection"):
                self.unprotected.append(unprotected_result(image, "unprotected"))
            for snapshot, reason, action, snapshot_exc in outcomes:
                lock = None
                if snapshot_exc and action == "delete_snapshot":
                    client = delete_clients[snapshot["region"]]
                    lock = guard.refused_for_lock(client, snapshot["snapshot_id"], snapshot_exc, self.now)
                if lock is not None:
                    self.skipped.append(
                        guard.locked_snapshot_entry(
                            snapshot["snapshot_id"],
                            snapshot["region"],
                            lock,
                            image_id=snapshot["image_id"],
                            name=snapshot["name"],
                        )
                    )
                elif snapshot_exc:
                    self.errors.append(error_entry(snapshot["snapshot_id"], snapshot["region"], action, snapshot_exc))
                elif reason:
                    self.skipped.append(skipped_snapshot(snapshot, reason))
                else:
                    self.deleted.append(snapshot_result(snapshot, "deleted"))

        for item in self.to_delete:
            blocking = sorted(users_left[(item["region"], item["snapshot_id"])])
            if blocking:
                self.skipped.append(
                    skipped_snapshot(item, "not deleted: {0} could not be deregistered".format(", ".join(blocking)))
                )
        return deregistered

    def unprotect_cooling_down(self):
        """Remove the protection of the expired AMIs protected with the cooldown: the 24 hours start now."""
        for item in self.unprotect:
            try:
                self.clients[item["region"]].disable_image_deregistration_protection(ImageId=item["image_id"])
            except Exception as exc:  # pylint: disable=broad-except
                self.errors.append(
                    error_entry(item["image_id"], item["region"], "disable_deregistration_protection", exc)
                )
                continue
            self.unprotected.append(unprotected_result(item, "unprotected"))

    def result_keys(self, done):
        gone = {(item["region"], item["snapshot_id"]) for item in self.deleted}
        deregistered = [
            dict(image, snapshot_ids=[sid for sid in image["snapshot_ids"] if (image["region"], sid) in gone])
            for image in done
        ]
        return dict(
            changed=bool(deregistered or self.deleted or self.unprotected),
            deregistered=deregistered,
            deregistration_protection_removed=self.unprotected,
            deleted_snapshots=self.deleted,
            as_of=self.options["as_of"].isoformat(),
        )

    def summarise(self, summary, result):
        summary.done(
            "deregistered",
            "deregister",
            "AMI(s)",
            result["deregistered"],
            lambda image: "{0} of {1} ({2})".format(
                image["image_id"], image["source_instance_id"] or "unknown source", image["reason"]
            ),
        )
        summary.done(
            "deleted",
            "delete",
            "snapshot(s)",
            result["deleted_snapshots"],
            lambda snapshot: "{0} of {1}".format(snapshot["snapshot_id"], snapshot["image_id"]),
        )
        summary.done(
            "removed",
            "remove",
            "deregistration protection(s)",
            result["deregistration_protection_removed"],
            lambda item: item["image_id"]
            + (" (deregistrable after {0})".format(item["deregistrable_after"]) if item["deregistrable_after"] else ""),
        )


def main():
    module, options = regional_module(ARGUMENT_SPEC, parse_options)
    AmiPurge.for_module(module, options).run()


if __name__ == "__main__":
    main()
