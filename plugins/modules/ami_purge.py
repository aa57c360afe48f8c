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
    nothing of that source is purged in this run, and RV(kept) says why.
  - A snapshot is never deleted while another registered AMI (disabled ones included) uses it, nor when
    it is not owned by the account. Which AMIs use it is decided from one C(DescribeImages) per region,
    before anything is changed; its owner from C(DescribeSnapshots) of the snapshots the purge may delete
    (not all of the account's), a batch at a time, just before their deletes. A snapshot two expiring AMIs
    share is deleted once, after both are deregistered.
  - With O(adopt_legacy=true), AMIs that carry a C(DeleteOn) tag but no marker (made by older
    backup scripts) are purged by the same rules; their source instance is read from AWS's
    C(SourceInstanceId) or from an instance id in their name or description, and those of unknown
    source are treated as one source.
  - Regions are processed concurrently. A failing AMI, snapshot or region does not stop the others;
    the task fails at the end, listing every error in RV(errors). The snapshots of an AMI that could
    not be deregistered are left alone.
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  regions:
    description:
      - The regions to purge.
      - V(all) means every region enabled for the account.
      - Defaults to the task's O(region).
    type: list
    elements: str
  as_of:
    description:
      - Purge what has expired on this UTC date, V(YYYY-MM-DD), instead of today.
      - With check mode, previews what a purge on a future date will remove.
    type: str
  keep_min:
    description:
      - The newest available AMIs of each source instance that are kept, even when expired.
      - Must be at least V(1).
    type: int
    default: 1
  keep_last:
    description:
      - Count-based retention. When set, only the newest O(keep_last) available AMIs of each source instance
        are kept; older ones are deregistered even when their C(DeleteOn) date has not come.
      - Never keeps fewer than O(keep_min). Must be at least V(1).
    type: int
  adopt_legacy:
    description:
      - Also purge AMIs that carry a C(DeleteOn) tag but not the managed marker.
    type: bool
    default: false
  max_concurrency:
    description: The most AWS requests in flight at once, across all regions.
    type: int
    default: 16
notes:
  - Requires C(ec2:DescribeRegions), C(ec2:DescribeImages), C(ec2:DescribeSnapshots), C(ec2:DeregisterImage)
    and C(ec2:DeleteSnapshot).
  - Supports check mode, which returns the full plan in RV(deregistered) and RV(deleted_snapshots)
    and makes no change.
  - C(DeregisterImage) is called without C(DeleteAssociatedSnapshots); the snapshots are deleted one by one,
    so that the safety checks hold and each deletion is reported.
  - Throttled requests are retried with botocore's adaptive retry mode.
extends_documentation_fragment:
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
      description: The AMI state when it was described.
      type: str
      sample: available
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
kept:
  description:
    - Every managed (or adopted) AMI left registered, and every snapshot of a deregistered AMI left in place, each with the reason.
    - Items about a snapshot carry its C(snapshot_id) and the C(image_id) of the AMI it belonged to.
  returned: always
  type: list
  elements: dict
  sample:
    - {"image_id": "ami-0123456789abcdef0", "name": "web-1-i-0123456789abcdef0-20261123T010000Z", "region": "eu-west-1",
       "source_instance_id": "i-0123456789abcdef0", "reason": "one of the newest 1 available backup(s) of i-0123456789abcdef0 (keep_min)"}
    - {"snapshot_id": "snap-0123456789abcdef0", "image_id": "ami-0fedcba9876543210", "name": "web-1-old", "region": "eu-west-1",
       "reason": "also used by ami-0aaaabbbbccccdddd, which stays registered"}
errors:
  description: Every AMI, snapshot or region that failed, with the AWS error code and the action.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "ami-0123456789abcdef0", "region": "eu-west-1", "code": "UnauthorizedOperation",
            "message": "...", "action": "deregister_image"}]
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
"""

import datetime
import re
import threading

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import check_purge_counts
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_purge
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import snapshot_kept_reason
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import finish
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import regional_clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import target_regions

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_as_of(value, today):
    """``as_of`` as a date (today when unset); raises ValueError naming a value that is not YYYY-MM-DD."""
    if value is None:
        return today
    text = str(value).strip()
    try:
        if not _ISO_DATE.match(text):
            raise ValueError
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ValueError("as_of {0!r} is not a date: use YYYY-MM-DD, for example {1}".format(value, today.isoformat()))


def parse_options(module):
    params = module.params
    today = datetime.datetime.now(datetime.timezone.utc).date()
    try:
        check_purge_counts(params["keep_min"], params["keep_last"])
        if params["max_concurrency"] < 1:
            raise ValueError("max_concurrency must be at least 1, got {0}".format(params["max_concurrency"]))
        return {
            "as_of": parse_as_of(params["as_of"], today),
            "keep_min": params["keep_min"],
            "keep_last": params["keep_last"],
            "adopt_legacy": params["adopt_legacy"],
        }
    except ValueError as exc:
        module.fail_json(msg=str(exc))


def describe_region(client):
    """Every AMI the account owns in the region (disabled ones too: they still use their snapshots)."""
    return paginate(client, "describe_images", "Images", Owners=["self"], IncludeDisabled=True)


def batches_doubling(items, largest):
    """``items`` in consecutive batches of 1, 2, 4, ... items, none larger than ``largest``."""
    batches, start, size = [], 0, 1
    while start < len(items):
        batches.append(items[start : start + size])
        start += size
        size = min(size * 2, largest)
    return batches


class SnapshotOwners:
    """Whether the account owns each of one region's planned snapshots, described in batches when first needed.

    Only the snapshots the purge may delete are described, not all of the account's, and a batch
    at a time in the order the deletes come, so that the first deletes do not wait for the last
    description.  The first batch holds one snapshot and each next one twice as many, up to
    MAX_BATCH: the check before the first change is a single-snapshot call, and while the early
    batches are described, the deletes before them keep going.  Thread-safe: a batch is described
    once; a failed description is tried again by the next snapshot that needs it.
    """

    MAX_BATCH = 100  # values per DescribeSnapshots filter, well under EC2's limit

    def __init__(self, client, snapshot_ids, account_id):
        self.client = client
        self.account_id = account_id
        self.batches = batches_doubling(snapshot_ids, self.MAX_BATCH)
        self.batch_of = {snapshot_id: number for number, batch in enumerate(self.batches) for snapshot_id in batch}
        self.locks = [threading.Lock() for _batch in self.batches]
        self.described = set()
        self.owners = {}

    def owners_for(self, snapshot_id):
        """``{snapshot id: owner}`` of the batch holding ``snapshot_id``, described if it was not yet."""
        number = self.batch_of[snapshot_id]
        with self.locks[number]:
            if number not in self.described:
                snapshots = paginate(
                    self.client,
                    "describe_snapshots",
                    "Snapshots",
                    OwnerIds=["self"],
                    Filters=[{"Name": "snapshot-id", "Values": self.batches[number]}],
                )
                self.owners.update((snapshot["SnapshotId"], snapshot.get("OwnerId")) for snapshot in snapshots)
                self.described.add(number)
        return self.owners

    def kept_reason(self, snapshot_id):
        """Why the snapshot must stay because the account does not own it; None when it may go. May raise."""
        return snapshot_kept_reason(snapshot_id, self.owners_for(snapshot_id), self.account_id)


def snapshot_owners(client, plan):
    """The region's SnapshotOwners, its first batch described already, so that a missing permission
    or a failing DescribeSnapshots stops the region before anything in it changes."""
    owners = SnapshotOwners(client, [item["snapshot_id"] for item in plan["snapshots"]], plan["account_id"])
    if plan["snapshots"]:
        owners.owners_for(plan["snapshots"][0]["snapshot_id"])
    return owners


def account_of(images):
    """The account id: the owner of the images DescribeImages returned for Owners=self."""
    owners = {image.get("OwnerId") for image in images if image.get("OwnerId")}
    return owners.pop() if len(owners) == 1 else None


def plan_region(region, images, options):
    account_id = account_of(images)
    plan = plan_purge(
        region,
        images,
        account_id,
        options["as_of"],
        keep_min=options["keep_min"],
        keep_last=options["keep_last"],
        adopt_legacy=options["adopt_legacy"],
    )
    if images and account_id is None:
        plan["warnings"].append(
            "{0}: DescribeImages with Owners=self returned images of several owners; nothing purged there".format(
                region
            )
        )
    plan.update(region=region, account_id=account_id)
    return plan


def deregister_image(client, item):
    try:
        client.deregister_image(ImageId=item["image_id"])
    except is_boto3_error_code(["InvalidAMIID.Unavailable", "InvalidAMIID.NotFound"]):
        pass  # already deregistered, by a retried request or another run


def delete_snapshot(client, item):
    try:
        client.delete_snapshot(SnapshotId=item["snapshot_id"])
    except is_boto3_error_code("InvalidSnapshot.NotFound"):
        pass  # already deleted, by a retried request or another run


def snapshot_result(item):
    return {key: item[key] for key in ("snapshot_id", "image_id", "image_ids", "region")}


def kept_snapshot(item, reason):
    return {key: item[key] for key in ("snapshot_id", "image_id", "name", "region")} | {"reason": reason}


def preview(to_delete, owners, errors, kept):
    """Check mode: the planned snapshots the account owns, described like a real run would."""
    deleted = []
    for item in to_delete:
        try:
            reason = owners[item["region"]].kept_reason(item["snapshot_id"])
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(error_entry(item["snapshot_id"], item["region"], exc, "describe_snapshots"))
            continue
        if reason:
            kept.append(kept_snapshot(item, reason))
        else:
            deleted.append(snapshot_result(item))
    return deleted


def apply_plan(deregister_clients, delete_clients, owners, to_deregister, to_delete, max_concurrency, errors, kept):
    """Deregister each AMI, and delete each snapshot as soon as every expiring AMI that uses it is gone.

    Deleting in the same thread right after the deregistration keeps the DeregisterImage and
    DeleteSnapshot rate limits busy at once, instead of one phase after the other.  EC2 throttles
    each of the two APIs in its own bucket, while botocore's adaptive rate limiter is per client:
    each API gets its own clients, so that throttled deregistrations never slow the deletes down.
    A released snapshot the account does not own (``owners``, described as needed) stays in ``kept``.
    Returns (deregistered, deleted).
    """
    users_left = {(item["region"], item["snapshot_id"]): set(item["image_ids"]) for item in to_delete}
    snapshots_of = {}
    for item in to_delete:
        for image_id in item["image_ids"]:
            snapshots_of.setdefault((item["region"], image_id), []).append(item)
    lock = threading.Lock()

    def purge(image):
        deregister_image(deregister_clients[image["region"]], image)
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
                reason = owners[snapshot["region"]].kept_reason(snapshot["snapshot_id"])
                if not reason:
                    action = "delete_snapshot"
                    delete_snapshot(delete_clients[snapshot["region"]], snapshot)
                outcomes.append((snapshot, reason, action, None))
            except Exception as exc:  # pylint: disable=broad-except
                outcomes.append((snapshot, None, action, exc))
        return outcomes

    deregistered, deleted = [], []
    for image, outcomes, exc in run_concurrently(purge, to_deregister, max_concurrency, spread_by=by_region):
        if exc:
            errors.append(error_entry(image["image_id"], image["region"], exc, "deregister_image"))
            continue
        deregistered.append(image)
        for snapshot, reason, action, snapshot_exc in outcomes:
            if snapshot_exc:
                errors.append(error_entry(snapshot["snapshot_id"], snapshot["region"], snapshot_exc, action))
            elif reason:
                kept.append(kept_snapshot(snapshot, reason))
            else:
                deleted.append(snapshot_result(snapshot))

    for item in to_delete:
        blocking = sorted(users_left[(item["region"], item["snapshot_id"])])
        if blocking:
            kept.append(kept_snapshot(item, "not deleted: {0} could not be deregistered".format(", ".join(blocking))))
    return deregistered, deleted


def with_deleted_snapshot_ids(deregistered, deleted):
    """Each AMI's ``snapshot_ids``: those of its planned snapshots that were (or would be) deleted."""
    gone = {(item["region"], item["snapshot_id"]) for item in deleted}
    return [
        dict(image, snapshot_ids=[sid for sid in image["snapshot_ids"] if (image["region"], sid) in gone])
        for image in deregistered
    ]


def main():
    argument_spec = dict(
        regions=dict(type="list", elements="str"),
        as_of=dict(type="str"),
        keep_min=dict(type="int", default=1),
        keep_last=dict(type="int"),
        adopt_legacy=dict(type="bool", default=False),
        max_concurrency=dict(type="int", default=16),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    options = parse_options(module)
    max_concurrency = module.params["max_concurrency"]

    regions = target_regions(module)
    clients = regional_clients(module, "ec2", regions, max_concurrency)
    errors, warnings, plans = [], [], []
    for region, images, exc in run_concurrently(lambda r: describe_region(clients[r]), regions, max_concurrency):
        if exc:
            errors.append(error_entry(region, region, exc, "describe"))
        else:
            plans.append(plan_region(region, images, options))

    owners = {}
    for plan, region_owners, exc in run_concurrently(
        lambda plan: snapshot_owners(clients[plan["region"]], plan), plans, max_concurrency
    ):
        if exc:
            errors.append(error_entry(plan["region"], plan["region"], exc, "describe"))
        else:
            owners[plan["region"]] = region_owners
    plans = [plan for plan in plans if plan["region"] in owners]

    to_deregister = [item for plan in plans for item in plan["deregister"]]
    to_delete = [item for plan in plans for item in plan["snapshots"]]
    kept = [item for plan in plans for item in plan["kept"]]
    for plan in plans:
        warnings.extend(plan["warnings"])

    if module.check_mode:
        deregistered, deleted = to_deregister, preview(to_delete, owners, errors, kept)
    else:
        delete_clients = regional_clients(module, "ec2", regions, max_concurrency)
        deregistered, deleted = apply_plan(
            clients, delete_clients, owners, to_deregister, to_delete, max_concurrency, errors, kept
        )
    deregistered = with_deleted_snapshot_ids(deregistered, deleted)

    for warning in warnings:
        module.warn(warning)
    result = dict(
        changed=bool(deregistered or deleted),
        deregistered=deregistered,
        deleted_snapshots=deleted,
        kept=kept,
        errors=errors,
        regions=regions,
        as_of=options["as_of"].isoformat(),
    )
    finish(module, "purging", result)


if __name__ == "__main__":
    main()
