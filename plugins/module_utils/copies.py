# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Disaster-recovery copies of managed AMIs and EBS snapshots in other regions and accounts: the
destinations read and checked, the plan (what to copy where, what is copied already, what may not
be copied and why, which shares to remove) as plain functions, and the copy calls that never
make two copies of one source in one destination.

A copy carries the source's tags, its own ``DeleteOn`` and its provenance (``SourceImageId`` or
``SourceSnapshotId``, ``SourceRegion``, ``SourceAccount``); a rerun finds it by them and copies
nothing again.  AWS's rules checked before any change:

* a snapshot encrypted with an AWS managed key (``aws/ebs``) cannot be shared with another account;
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-modifying-snapshot-permissions.html
* an AMI with AWS Marketplace product codes cannot be copied to another account;
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/CopyingAMIs.html
* the destination's KMS key must exist and be enabled;
* at most 20 snapshot copies per destination region are in flight at once (more wait for a slot).
  https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
"""

import hashlib
import re
import threading
import time

try:
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared_options
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import image_snapshot_ids
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import MAX_ATTEMPTS
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import COPIED_SNAPSHOT_VOLUME_ID
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import is_ebs_backup
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import make_without_doubles
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import tag_filter
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

IMAGE = "image"
SNAPSHOT = "snapshot"
RESOURCE_TYPES = (IMAGE, SNAPSHOT)
# "Each account can have up to twenty concurrent snapshot copy requests to a single destination Region."
SNAPSHOT_COPY_LIMIT = 20
DEFAULT_ROLE_TEMPLATE = "arn:aws:iam::{account_id}:role/OpsvaultBackupVault"
PREFLIGHT = "preflight"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_DESTINATION_KEYS = ("region", "account_id", "role_arn", "kms_key_id", "retention")
# Tags about the source's own life, not about what it holds: not carried over to its copies.
_NOT_COPIED = ("LastRestoreTest",)
_READY = {IMAGE: "available", SNAPSHOT: "completed"}
_SOURCE_KEY = {IMAGE: contract.SOURCE_IMAGE_KEY, SNAPSHOT: contract.SOURCE_SNAPSHOT_KEY}
_NOUN = {IMAGE: "AMI", SNAPSHOT: "snapshot"}


# ---------------------------------------------------------------- options


def parse_destinations(value, role_template=DEFAULT_ROLE_TEMPLATE):
    """The ``destinations`` option read and checked; raises ValueError naming the entry, the field and the value.

    Each entry: ``region`` (required), ``account_id`` (another account, reached through ``role_arn`` or
    the role template; it needs ``kms_key_id``), ``kms_key_id``, ``retention`` (a period; default: the
    source's DeleteOn).
    """
    if not value:
        raise ValueError("destinations must list at least one destination (a region, optionally an account_id)")
    if "{account_id}" not in role_template:
        raise ValueError("destination_role_template must contain {{account_id}}, got {0!r}".format(role_template))
    parsed, seen = [], set()
    for index, entry in enumerate(value):
        name = "destinations[{0}]".format(index)
        if not isinstance(entry, dict):
            raise ValueError("{0} must be a dict with a region, got {1!r}".format(name, entry))
        unknown = sorted(set(entry) - set(_DESTINATION_KEYS))
        if unknown:
            raise ValueError(
                "{0} has unknown key(s) {1}; keys: {2}".format(name, ", ".join(unknown), ", ".join(_DESTINATION_KEYS))
            )
        region = entry.get("region")
        if not isinstance(region, str) or not _REGION.match(region):
            raise ValueError("{0}.region must be a region name such as eu-west-1, got {1!r}".format(name, region))
        account_id = entry.get("account_id")
        if account_id is not None:
            account_id = str(account_id)
            if not _ACCOUNT.match(account_id):
                raise ValueError("{0}.account_id must be a 12-digit account id, got {1!r}".format(name, account_id))
        kms_key_id = entry.get("kms_key_id") or None
        if account_id and not kms_key_id:
            raise ValueError(
                "{0} copies to account {1}: it needs kms_key_id, a key of that account in {2} that encrypts the "
                "copies".format(name, account_id, region)
            )
        role_arn = entry.get("role_arn") or None
        if role_arn and not account_id:
            raise ValueError("{0}.role_arn {1!r} needs account_id".format(name, role_arn))
        if account_id and not role_arn:
            role_arn = role_template.format(account_id=account_id)
        shared_options.role_arn(name + ".role_arn", role_arn)
        if role_arn and role_arn.split(":")[4] != account_id:
            raise ValueError("{0}.role_arn {1!r} is not a role of account {2}".format(name, role_arn, account_id))
        retention = entry.get("retention")
        if retention is not None:
            try:
                retention = parse_retention(retention)
            except ValueError as exc:
                raise ValueError("{0}.{1}".format(name, exc))
        key = (region, account_id)
        if key in seen:
            raise ValueError(
                "{0} repeats region {1}{2}".format(name, region, " account " + account_id if account_id else "")
            )
        seen.add(key)
        parsed.append(
            {
                "region": region,
                "account_id": account_id,
                "role_arn": role_arn,
                "kms_key_id": kms_key_id,
                "retention": retention,
            }
        )
    return parsed


def destination_label(region, account_id):
    return "{0} ({1})".format(region, account_id)


# ---------------------------------------------------------------- the sources


def source_kind(resource):
    return IMAGE if "ImageId" in resource else SNAPSHOT


def source_id(resource):
    return resource.get("ImageId") or resource["SnapshotId"]


def is_copy(tags):
    return contract.SOURCE_IMAGE_KEY in tags or contract.SOURCE_SNAPSHOT_KEY in tags


def copy_sources(images, snapshots, resource_types):
    """The managed backups made in place (not copies): AMIs, and EBS snapshots that are not an AMI's."""
    sources = []
    if IMAGE in resource_types:
        sources += [image for image in images if _is_source(contract.tag_dict(image))]
    if SNAPSHOT in resource_types:
        sources += [
            snapshot
            for snapshot in snapshots
            if _is_source(contract.tag_dict(snapshot)) and is_ebs_backup(contract.tag_dict(snapshot))
        ]
    return sorted(sources, key=source_id)


def _is_source(tags):
    return contract.is_managed(tags) and not is_copy(tags)


def _created(resource):
    return parse_timestamp(resource.get("CreationDate") or resource.get("StartTime"))


def copy_tags(source, kind, region, account_id, delete_on):
    """The tags of a copy: the source's (not ``aws:`` ones, which only AWS writes), its own DeleteOn, its provenance."""
    tags = {
        key: value
        for key, value in contract.tag_dict(source).items()
        if not key.startswith("aws:") and key not in _NOT_COPIED
    }
    tags.update(
        {
            _SOURCE_KEY[kind]: source_id(source),
            contract.SOURCE_REGION_KEY: region,
            contract.SOURCE_ACCOUNT_KEY: account_id,
            contract.MARKER_KEY: contract.MARKER_VALUE,
            contract.DELETE_ON_KEY: delete_on.isoformat(),
        }
    )
    tags.setdefault(contract.POLICY_KEY, contract.DEFAULT_POLICY)
    return tags


def client_token(kind, source, source_region, source_account, destination_region, destination_account):
    """CopyImage's ClientToken: one per source and destination, so a retried copy is the same copy.
    https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html (64 ASCII characters at most)
    """
    text = "/".join((kind, source_account, source_region, source, destination_account, destination_region))
    return "opsvault-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:48]


def existing_copies(images, snapshots):
    """``{(kind, source id, source region, source account): copy}``: the managed copies in one destination."""
    found = {}
    for resource in list(images) + list(snapshots):
        tags = contract.tag_dict(resource)
        kind = source_kind(resource)
        source = tags.get(_SOURCE_KEY[kind])
        if not source or not contract.is_managed(tags):
            continue
        key = (kind, source, tags.get(contract.SOURCE_REGION_KEY), tags.get(contract.SOURCE_ACCOUNT_KEY))
        previous = found.get(key)
        if previous is None or _state_rank(resource) > _state_rank(previous):
            found[key] = resource
    return found


def _state_rank(resource):
    state = resource.get("State")
    return 2 if state in _READY.values() else 1 if state == "pending" else 0


def copy_state(resource):
    """``ready``, ``pending`` or ``failed`` for a copy as DescribeImages/DescribeSnapshots show it."""
    state = resource.get("State")
    if state in _READY.values():
        return "ready"
    return "pending" if state == "pending" else "failed"


# ---------------------------------------------------------------- preflight


def key_problem(metadata):
    """Why a destination's KMS key cannot encrypt copies, None when it can (DescribeKey's KeyMetadata)."""
    if metadata.get("KeyState") != "Enabled" or not metadata.get("Enabled", False):
        return "is {0}, not Enabled".format(metadata.get("KeyState") or "not enabled")
    if metadata.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        return "has key usage {0}; EBS needs ENCRYPT_DECRYPT".format(metadata.get("KeyUsage"))
    if metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        return "is {0}; EBS encrypts only with symmetric keys".format(metadata.get("KeySpec"))
    return None


def share_problems(kind, source, snapshots_by_id, source_keys):
    """Why a source cannot go to another account (Marketplace codes, an AWS managed key); [] when it can.

    ``snapshots_by_id``: the region's snapshots (an AMI's are looked up there); ``source_keys``:
    ``{key id or ARN: DescribeKey KeyMetadata}`` of the keys that encrypt them.
    """
    problems = []
    if kind == IMAGE:
        codes = [code.get("ProductCodeId") for code in source.get("ProductCodes") or []]
        if codes:
            problems.append(
                "AMI {0} has AWS Marketplace product code(s) {1}: AWS does not copy it to another account".format(
                    source_id(source), ", ".join(codes)
                )
            )
        snapshot_ids = image_snapshot_ids(source)
    else:
        snapshot_ids = [source["SnapshotId"]]
    for snapshot_id in snapshot_ids:
        snapshot = snapshots_by_id.get(snapshot_id) or {}
        key_id = snapshot.get("KmsKeyId")
        if not snapshot.get("Encrypted") or not key_id:
            continue
        metadata = source_keys.get(key_id) or {}
        if metadata.get("KeyManager") == "AWS":
            owner = "" if kind == SNAPSHOT else " (of AMI {0})".format(source_id(source))
            problems.append(
                "snapshot {0}{1} is encrypted with the AWS managed key {2} (aws/ebs), which cannot be shared with "
                "another account: copy it in its own account with a customer managed key first".format(
                    snapshot_id, owner, metadata.get("Arn") or key_id
                )
            )
    return problems


def source_key_ids(sources, snapshots_by_id):
    """The KMS keys that encrypt the sources' snapshots (to tell an AWS managed key from a customer's)."""
    keys = set()
    for source in sources:
        ids = image_snapshot_ids(source) if source_kind(source) == IMAGE else [source["SnapshotId"]]
        for snapshot_id in ids:
            snapshot = snapshots_by_id.get(snapshot_id) or {}
            if snapshot.get("Encrypted") and snapshot.get("KmsKeyId"):
                keys.add(snapshot["KmsKeyId"])
    return sorted(keys)


# ---------------------------------------------------------------- the plan


def _copy_delete_on(source, tags, retention):
    """``(date, why)``: the copy's DeleteOn (``retention`` from the source's creation, else the source's DeleteOn)."""
    if retention is not None:
        created = _created(source)
        start = created.date() if created else None
        if start is None:
            return None, "has no creation time to count the destination's retention from"
        return retention.expiry(start), None
    try:
        source_delete_on = contract.delete_on(tags)
    except ValueError as exc:
        return None, "DeleteOn {0}; set retention on the destination".format(exc)
    if source_delete_on is None:
        return None, "has no DeleteOn tag; set retention on the destination"
    return source_delete_on, None


def plan_copies(region, account_id, sources, snapshots_by_id, destinations, described, shared, source_keys, today):
    """Decide, for one source region, what to copy to each destination and which shares to remove.

    ``sources``: the region's managed AMIs and EBS snapshots (``copy_sources``); ``snapshots_by_id``:
    the region's snapshots (an AMI's encryption is read there); ``destinations``: the parsed
    destinations, each with its ``account_id`` resolved; ``described``: per destination
    ``(region, account)``, ``{"copies": existing_copies(...), "key_problem": text or None}``;
    ``shared``: per destination account, ``{"images": ids, "snapshots": ids}`` of this region shared
    with it; ``source_keys``: ``{key: KeyMetadata}``; ``today``: a date.

    Returns ``{"todo", "unshare", "skipped", "failures", "warnings", "notes"}``: ``todo`` holds one copy
    item per source and destination, ``unshare`` one item per source and account whose copies are all
    complete while the source is still shared, ``failures`` the preflight errors (nothing of theirs changes).
    """
    todo, skipped, failures, unshare = [], [], [], []
    reported = set()
    for destination in destinations:
        key = (destination["region"], destination["account_id"])
        problem = described[key].get("key_problem")
        if problem and key not in reported:
            reported.add(key)
            failures.append(
                error_entry(
                    destination["kms_key_id"],
                    destination["region"],
                    PREFLIGHT,
                    code="KMSKeyNotUsable",
                    message="kms_key_id {0} in {1}: {2}; nothing is copied there".format(
                        destination["kms_key_id"], destination_label(*key), problem
                    ),
                )
            )
    by_account = {}
    for destination in destinations:
        by_account.setdefault(destination["account_id"], []).append(destination)
    after_copy = []

    for source in sources:
        kind, sid = source_kind(source), source_id(source)
        tags = contract.tag_dict(source)
        ready_word = _READY[kind]
        if source.get("State") != ready_word:
            reason = "{0} is {1}: copied once it is {2}".format(_NOUN[kind], source.get("State"), ready_word)
            skipped.append(skipped_entry(sid, region, reason))
            continue
        try:
            expiry = contract.delete_on(tags)
        except ValueError:
            expiry = None
        if expiry is not None and expiry <= today:
            skipped.append(skipped_entry(sid, region, "expired on {0}: not copied".format(expiry.isoformat())))
            continue
        context = {"problems": None}
        for account, account_destinations in sorted(by_account.items()):
            statuses = {}
            for destination in account_destinations:
                item, statuses[destination["region"]] = _plan_one(
                    source,
                    kind,
                    tags,
                    region,
                    account_id,
                    destination,
                    described,
                    shared,
                    snapshots_by_id,
                    source_keys,
                    today,
                    context,
                    skipped,
                    failures,
                )
                if item:
                    todo.append(item)
            if account == account_id:
                continue
            share_item = _unshare_item(kind, source, region, account, shared.get(account) or {})
            if all(status == READY_COPY for status in statuses.values()):
                if share_item:
                    unshare.append(share_item)
            elif TODO_COPY in statuses.values() and WAIT_COPY not in statuses.values():
                # Shared in this run (or before): removed in this run once the new copies are complete.
                snapshot_ids = image_snapshot_ids(source) if kind == IMAGE else [sid]
                after_copy.append(
                    {
                        "kind": kind,
                        "source_id": sid,
                        "region": region,
                        "account_id": account,
                        "image_shared": kind == IMAGE,
                        "snapshot_ids": snapshot_ids,
                        "waiting": sorted(r for r, status in statuses.items() if status == TODO_COPY),
                    }
                )
    return {
        "todo": todo,
        "unshare": unshare,
        "after_copy": after_copy,
        "skipped": skipped,
        "failures": failures,
        "warnings": [],
        "notes": [],
    }


# What one destination needs of a source: nothing (copied, or no copy to make), a copy now, or time
# (a copy in flight, a failed copy, a check that failed): the share with its account stays meanwhile.
READY_COPY, TODO_COPY, WAIT_COPY = "ready", "todo", "wait"


def _plan_one(
    source,
    kind,
    tags,
    region,
    account_id,
    destination,
    described,
    shared,
    snapshots_by_id,
    source_keys,
    today,
    context,
    skipped,
    failures,
):
    """``(copy item or None, READY_COPY / TODO_COPY / WAIT_COPY)`` for one source and one destination."""
    sid = source_id(source)
    dest_region, dest_account = destination["region"], destination["account_id"]
    cross_account = dest_account != account_id
    where = destination_label(dest_region, dest_account)
    if dest_region == region and not cross_account:
        skipped.append(
            skipped_entry(sid, region, "destination {0} is the source's own region and account".format(where))
        )
        return None, READY_COPY
    info = described[(dest_region, dest_account)]
    existing = info["copies"].get((kind, sid, region, account_id))
    if existing is not None:
        state = copy_state(existing)
        copy_id = source_id(existing)
        reason = "copied already to {0} as {1} ({2})".format(where, copy_id, existing.get("State"))
        if state == "failed":
            reason += ": remove the failed copy to copy again"
        elif state == "pending" and cross_account:
            reason += "; the share with {0} stays until the copy completes".format(dest_account)
        skipped.append(skipped_entry(sid, dest_region, reason, copy_id=copy_id, source_region=region))
        return None, READY_COPY if state == "ready" else WAIT_COPY
    if info.get("key_problem") or info.get("unavailable"):
        return None, WAIT_COPY
    if cross_account:
        if context["problems"] is None:
            context["problems"] = share_problems(kind, source, snapshots_by_id, source_keys)
        for problem in context["problems"]:
            message = "{0} (to {1})".format(problem, where)
            failures.append(error_entry(sid, region, PREFLIGHT, code="CannotCopyToAccount", message=message))
        if context["problems"]:
            return None, WAIT_COPY
    delete_on, why = _copy_delete_on(source, tags, destination["retention"])
    if delete_on is None:
        skipped.append(skipped_entry(sid, region, "{0} {1}: not copied to {2}".format(_NOUN[kind], why, where)))
        return None, READY_COPY
    if delete_on <= today:
        reason = "its copy in {0} would expire on {1}: not copied".format(where, delete_on.isoformat())
        skipped.append(skipped_entry(sid, region, reason))
        return None, READY_COPY
    account_shares = shared.get(dest_account) or {}
    snapshot_ids = image_snapshot_ids(source) if kind == IMAGE else [sid]
    item = {
        "kind": kind,
        "source_id": sid,
        "source_region": region,
        "source_account": account_id,
        "region": dest_region,
        "account_id": dest_account,
        "cross_account": cross_account,
        "kms_key_id": destination["kms_key_id"],
        "name": source.get("Name") if kind == IMAGE else None,
        "description": "opsvault.aws_backup copy of {0} from {1} ({2})".format(sid, region, account_id),
        "delete_on": delete_on.isoformat(),
        "tags": copy_tags(source, kind, region, account_id, delete_on),
        "client_token": client_token(kind, sid, region, account_id, dest_region, dest_account),
        "share_image": cross_account and kind == IMAGE and sid not in account_shares.get("images", ()),
        "share_snapshots": (
            [s for s in snapshot_ids if s not in account_shares.get("snapshots", ())] if cross_account else []
        ),
    }
    return item, TODO_COPY


def _unshare_item(kind, source, region, account, account_shares):
    sid = source_id(source)
    snapshot_ids = image_snapshot_ids(source) if kind == IMAGE else [sid]
    image_shared = kind == IMAGE and sid in account_shares.get("images", ())
    snapshots_shared = [s for s in snapshot_ids if s in account_shares.get("snapshots", ())]
    if not image_shared and not snapshots_shared:
        return None
    return {
        "kind": kind,
        "source_id": sid,
        "region": region,
        "account_id": account,
        "image_shared": image_shared,
        "snapshot_ids": snapshots_shared,
    }


def copy_result(item, copy_id=None, state=PLANNED, shared=False):
    keys = (
        "kind",
        "source_id",
        "source_region",
        "source_account",
        "region",
        "account_id",
        "kms_key_id",
        "delete_on",
        "tags",
    )
    return dict({key: item[key] for key in keys}, copy_id=copy_id, state=state, shared=shared)


def unshare_result(item, state=PLANNED):
    keys = ("kind", "source_id", "region", "account_id", "snapshot_ids")
    return dict({key: item[key] for key in keys}, state=state)


# ---------------------------------------------------------------- the calls


def share(client, item):
    """Let the destination account read the source: the AMI's launch permission and its snapshots'
    create-volume permission (CopyImage needs both), or the snapshot's."""
    account = item["account_id"]
    if item["share_image"]:
        client.modify_image_attribute(ImageId=item["source_id"], LaunchPermission={"Add": [{"UserId": account}]})
    for snapshot_id in item["share_snapshots"]:
        client.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=[account]
        )
    return bool(item["share_image"] or item["share_snapshots"])


def unshare(client, item):
    """Remove the shares ``share`` made, once every copy in the account is complete."""
    account = item["account_id"]
    if item.get("image_shared", item["kind"] == IMAGE):
        client.modify_image_attribute(ImageId=item["source_id"], LaunchPermission={"Remove": [{"UserId": account}]})
    for snapshot_id in item["snapshot_ids"]:
        client.modify_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="remove", UserIds=[account]
        )


def encryption(item):
    return {"Encrypted": True, "KmsKeyId": item["kms_key_id"]} if item["kms_key_id"] else {}


def copy_image(client, item):
    """CopyImage in the destination, tags in the call; a retry (botocore's, after a 5xx) sends the same
    ClientToken and gets the same copy back."""
    response = client.copy_image(
        SourceImageId=item["source_id"],
        SourceRegion=item["source_region"],
        Name=item["name"] or item["source_id"],
        Description=item["description"],
        ClientToken=item["client_token"],
        TagSpecifications=boto3_tag_specifications(item["tags"], [IMAGE, SNAPSHOT]),
        **encryption(item)
    )
    return response["ImageId"]


def _copies_of(client, item):
    """The copies of an item's source already in its destination (found by their provenance tags)."""
    found = paginate(
        client,
        "describe_snapshots",
        "Snapshots",
        OwnerIds=["self"],
        Filters=[
            tag_filter(contract.SOURCE_SNAPSHOT_KEY, item["source_id"]),
            tag_filter(contract.SOURCE_REGION_KEY, item["source_region"]),
            tag_filter(contract.SOURCE_ACCOUNT_KEY, item["source_account"]),
        ],
    )
    return [snapshot for snapshot in found if snapshot.get("State") != "error"]


def copy_snapshot_once(copy_client, describe_client, item, attempts=MAX_ATTEMPTS, sleep=time.sleep):
    """CopySnapshot in the destination, tags in the call, never two copies: CopySnapshot has no ClientToken.

    ``copy_client`` does not retry by itself. Throttled calls are sent again after a backoff; after a 5xx or
    a lost connection, a copy that attempt made is looked up by its provenance tags and adopted first.
    Returns ``(snapshot id, state)``.
    """

    def copy():
        response = copy_client.copy_snapshot(
            SourceSnapshotId=item["source_id"],
            SourceRegion=item["source_region"],
            Description=item["description"],
            TagSpecifications=boto3_tag_specifications(item["tags"], [SNAPSHOT]),
            **encryption(item)
        )
        return response["SnapshotId"], "pending"

    def made():
        copies = _copies_of(describe_client, item)
        return (copies[0]["SnapshotId"], copies[0].get("State")) if copies else None

    return make_without_doubles(copy, made, attempts, sleep)


def copy_states(client, kind, ids, wait_timeout=None):
    """``{copy id: state}`` of one destination's new copies of one kind; with ``wait_timeout`` (seconds),
    after botocore's waiter has waited for them to complete (those that did not say so by their state)."""
    if wait_timeout:
        waiter, id_key = ("image_available", "ImageIds") if kind == IMAGE else ("snapshot_completed", "SnapshotIds")
        delay = 15
        try:
            client.get_waiter(waiter).wait(
                **{id_key: ids, "WaiterConfig": {"Delay": delay, "MaxAttempts": max(1, wait_timeout // delay)}}
            )
        except WaiterError:
            pass  # the states below say which did not complete
    if kind == IMAGE:
        found = paginate(client, "describe_images", "Images", ImageIds=ids)
    else:
        found = paginate(client, "describe_snapshots", "Snapshots", SnapshotIds=ids)
    return {source_id(resource): resource.get("State") for resource in found}


class QueueTimeout(Exception):
    """No snapshot copy slot freed up in the destination region within wait_timeout."""


class CopySlots:
    """AWS's limit of concurrent snapshot copies into one destination region (per account), kept by waiting.

    ``in_flight``: the ids of the copies pending there when the run began.  ``take`` blocks until fewer
    than ``limit`` copies are pending, polling the pending ones (one DescribeSnapshots) with a growing
    pause, and raises QueueTimeout at ``deadline`` (a monotonic time).  Thread-safe.
    """

    def __init__(
        self, client, in_flight, limit=SNAPSHOT_COPY_LIMIT, deadline=None, sleep=time.sleep, clock=time.monotonic
    ):
        self.client = client
        self.in_flight = set(in_flight)
        self.limit = limit
        self.deadline = deadline
        self.sleep = sleep
        self.clock = clock
        self.lock = threading.Lock()
        self.waited = 0.0

    def take(self):
        pause = 2.0
        while True:
            with self.lock:
                if len(self.in_flight) < self.limit:
                    self.in_flight.add(object())  # a slot held until ``started`` names the copy
                    return
                self.in_flight = self._still_pending()
                if len(self.in_flight) < self.limit:
                    self.in_flight.add(object())
                    return
            if self.deadline is not None and self.clock() + pause > self.deadline:
                raise QueueTimeout()
            self.sleep(pause)
            self.waited += pause
            pause = min(30.0, pause * 2)

    def started(self, snapshot_id, state):
        """The copy that took the last slot: tracked while pending, the slot freed otherwise."""
        with self.lock:
            placeholder = next((slot for slot in self.in_flight if not isinstance(slot, str)), None)
            if placeholder is not None:
                self.in_flight.discard(placeholder)
            if snapshot_id and state == "pending":
                self.in_flight.add(snapshot_id)

    def release(self):
        self.started(None, None)

    def _still_pending(self):
        ids = sorted(slot for slot in self.in_flight if isinstance(slot, str))
        held = [slot for slot in self.in_flight if not isinstance(slot, str)]
        if not ids:
            return set(held)
        found = paginate(
            self.client,
            "describe_snapshots",
            "Snapshots",
            OwnerIds=["self"],
            Filters=[{"Name": "snapshot-id", "Values": ids}, {"Name": "status", "Values": ["pending"]}],
        )
        return {snapshot["SnapshotId"] for snapshot in found} | set(held)


def pending_copy_ids(snapshots):
    """The ids of snapshot copies in flight in a destination (AWS gives every copy the volume id vol-ffffffff)."""
    return [
        snapshot["SnapshotId"]
        for snapshot in snapshots
        if snapshot.get("State") == "pending" and snapshot.get("VolumeId") == COPIED_SNAPSHOT_VOLUME_ID
    ]
