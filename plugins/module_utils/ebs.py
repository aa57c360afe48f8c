# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What to snapshot and which snapshots to purge, for EBS: plain functions from described data to plans,
and the create calls that never take two snapshots of a volume.

Both planners return a region's plan as the regional engine reads it (``todo``, ``skipped``,
``warnings``, ``notes``); the purge decides expiry with the one purge rule (purge_rule.decide).
"""

import datetime
import random
import time

try:
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import snapshot_users
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import MAX_ATTEMPTS
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import is_no
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

DEVICE_KEY = "Device"
DESCRIPTION_KEY = "Description"
MODE_VOLUME = "volume"
MODE_INSTANCE = "instance"
STALE_NONE = "none"
STALE_VOLUME_GONE = "volume_gone"
STALE_UNATTACHED = "unattached"
ACTION_DELETE = "delete"
ACTION_ARCHIVE = "archive"
ACTION_REPORT = "report"

# Amazon EBS quotas, "Concurrent snapshots per ... volume" (not adjustable):
# https://docs.aws.amazon.com/ebs/latest/userguide/ebs-resource-quotas.html
PENDING_SNAPSHOT_LIMITS = {"sc1": 1, "st1": 1}
DEFAULT_PENDING_SNAPSHOT_LIMIT = 5
# CopySnapshot gives copies this volume id: the source volume is unknown.
# https://docs.aws.amazon.com/ebs/latest/userguide/ebs-copy-snapshot.html
COPIED_SNAPSHOT_VOLUME_ID = "vol-ffffffff"

_LIVE_STATES = ("pending", "completed")
_DESCRIPTION_MAX = 255
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
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


# ---------------------------------------------------------------- shared


def pending_limit(volume_type):
    return PENDING_SNAPSHOT_LIMITS.get(volume_type or "", DEFAULT_PENDING_SNAPSHOT_LIMIT)


def snapshot_volume(snapshot, tags=None):
    """The volume a snapshot was taken of: our ``VolumeId`` tag, else the snapshot's own field."""
    tags = contract.tag_dict(snapshot) if tags is None else tags
    return tags.get(contract.VOLUME_KEY) or snapshot.get("VolumeId") or COPIED_SNAPSHOT_VOLUME_ID


def is_ebs_backup(tags):
    """A managed snapshot made by ebs_snapshot (AMI snapshots carry SourceInstanceId instead)."""
    return contract.is_managed(tags) and (contract.VOLUME_KEY in tags or contract.INSTANCE_KEY in tags)


def keeps(tags, keep_tag):
    """A keep tag protects a snapshot unless its value says no (``no``, ``false``, ``0``, ``off``, empty)."""
    return keep_tag in tags and not is_no(tags[keep_tag])


def _started(snapshot):
    return parse_timestamp(snapshot.get("StartTime"))


def age_text(delta, exact=False):
    """A timedelta as a person reads it: ``3 days``, ``12 hours``.  ``exact``: in the largest unit that
    divides it (an option's value), else rounded down to the largest unit it reaches (an age)."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and (not exact or seconds % size == 0):
            count = seconds // size
            return "{0} {1}{2}".format(count, unit, "" if count == 1 else "s")
    return "{0} second{1}".format(seconds, "" if seconds == 1 else "s")


def _plan(todo, skipped, warnings, notes=None):
    return {"todo": todo, "skipped": skipped, "warnings": warnings, "notes": notes or []}


# ---------------------------------------------------------------- snapshot plan


def _attachment(volume):
    for attachment in volume.get("Attachments") or []:
        if attachment.get("State") in ("attached", "attaching") and attachment.get("InstanceId"):
            return attachment
    return None


def _tag_retention(region, kind, resource_id, tags, options, warnings):
    """A resource's valid Retention tag, None when it has none; a bad value warns naming the resource and region."""
    value = tags.get(options["retention_tag"])
    if value is None:
        return None
    try:
        return parse_retention(value)
    except ValueError as exc:
        warnings.append(
            "{0} {1} in {2}: {3} tag ignored, {4}".format(kind, resource_id, region, options["retention_tag"], exc)
        )
        return None


def _retention_for(region, sources, options, warnings):
    """The first valid Retention tag among ``sources`` ([(kind, id, tags)]), else the task's retention."""
    for kind, resource_id, tags in sources:
        found = _tag_retention(region, kind, resource_id, tags, options, warnings)
        if found is not None:
            return found
    return options["retention"]


def latest_ebs_backups(managed_snapshots, account_id=None):
    """Newest live snapshot made by ebs_snapshot per volume: ``{volume_id: snapshot}``."""
    latest = {}
    for snapshot in managed_snapshots:
        if account_id and snapshot.get("OwnerId") not in (None, account_id):
            continue
        tags = contract.tag_dict(snapshot)
        if not is_ebs_backup(tags) or snapshot.get("State") not in _LIVE_STATES:
            continue
        volume_id = snapshot.get("VolumeId") or tags.get(contract.VOLUME_KEY)
        started = _started(snapshot) or _EPOCH
        if volume_id not in latest or started > latest[volume_id][0]:
            latest[volume_id] = (started, snapshot)
    return {volume_id: snapshot for volume_id, (started, snapshot) in latest.items()}


def pending_counts(pending_snapshots, account_id=None):
    counts = {}
    for snapshot in pending_snapshots:
        if snapshot.get("State") != "pending":
            continue
        if account_id and snapshot.get("OwnerId") not in (None, account_id):
            continue
        counts[snapshot.get("VolumeId")] = counts.get(snapshot.get("VolumeId"), 0) + 1
    return counts


def describe_backup(policy, volume_id=None, device=None, instance_id=None):
    """The snapshot Description and ``Description`` tag: what was backed up, by which policy."""
    if volume_id:
        source = volume_id
        if instance_id:
            source += " ({0} on {1})".format(device or "attached", instance_id)
    else:
        source = "{0} (crash-consistent set of its volumes)".format(instance_id)
    return "opsvault.aws_backup {0} backup of {1}".format(policy, source)[:_DESCRIPTION_MAX]


def _selected(volume, instance, options):
    """Whether a volume belongs to the selection (the server-side filters, checked again here)."""
    tags = contract.tag_dict(volume)
    if options.get("volume_ids") and volume["VolumeId"] not in options["volume_ids"]:
        return False
    if options.get("tag_key"):
        if options["tag_key"] not in tags:
            return False
        if options.get("tag_value") is not None and tags[options["tag_key"]] != options["tag_value"]:
            return False
    if options.get("instance_tag_key"):
        if instance is None:
            return False
        instance_tags = contract.tag_dict(instance)
        if options["instance_tag_key"] not in instance_tags:
            return False
        value = options.get("instance_tag_value")
        if value is not None and instance_tags[options["instance_tag_key"]] != value:
            return False
    return True


def _recent_backup(volume_id, latest, options, now):
    previous = latest.get(volume_id)
    if not previous or not options["min_interval"]:
        return None
    started = _started(previous)
    if started and now - started < options["min_interval"]:
        return "{0} of {1} ({2}) was started at {3}, within min_interval".format(
            previous["SnapshotId"], volume_id, previous.get("State"), started.isoformat()
        )
    return None


def _over_pending_limit(volume_id, volume_type, counts):
    limit = pending_limit(volume_type)
    pending = counts.get(volume_id, 0)
    if pending >= limit:
        return "{0} has {1} pending snapshot(s); AWS allows {2} concurrent snapshot(s) of a {3} volume".format(
            volume_id, pending, limit, volume_type or "this"
        )
    return None


def policy_of(volume_tags, instance_tags, options):
    """The BackupPolicy of a selected volume (or set): the required tag value, else the value of the volume's
    selector tag (``Backup=Weekly``), else the required instance tag value, else the value of the instance's
    selector tag, else ``default`` (as ami.policy_of)."""
    candidates = (
        options.get("tag_value"),
        volume_tags.get(options["tag_key"]) if options.get("tag_key") else None,
        options.get("instance_tag_value"),
        instance_tags.get(options["instance_tag_key"]) if options.get("instance_tag_key") else None,
    )
    for candidate in candidates:
        if candidate is not None and str(candidate).strip():
            return str(candidate).strip()
    return contract.DEFAULT_POLICY


def plan_snapshots(region, volumes, instances, managed_snapshots, pending_snapshots, options, now, account_id=None):
    """Decide, for one region, which volumes (or instances) are snapshotted now.

    ``volumes``: DescribeVolumes items; ``instances``: DescribeInstances items (at least those
    the volumes are attached to); ``managed_snapshots``: the region's snapshots with the
    managed marker; ``pending_snapshots``: the region's pending snapshots (any tags).
    ``options``: what the module's parse_options returns.  ``now``: aware UTC datetime.

    Returns ``{"todo", "skipped", "warnings", "notes"}``.  A volume-mode item is one CreateSnapshot; an
    instance-mode item is one CreateSnapshots of all the instance's volumes.
    """
    instances_by_id = {instance["InstanceId"]: instance for instance in instances}
    latest = latest_ebs_backups(managed_snapshots, account_id)
    counts = pending_counts(pending_snapshots, account_id)
    warnings, skipped, selected = [], [], []
    for volume in sorted(volumes, key=lambda item: item["VolumeId"]):
        attachment = _attachment(volume)
        instance = instances_by_id.get(attachment["InstanceId"]) if attachment else None
        if _selected(volume, instance, options):
            selected.append((volume, attachment, instance))
    planner = _plan_instance_sets if options["mode"] == MODE_INSTANCE else _plan_volumes
    todo = planner(region, selected, options, now, latest, counts, warnings, skipped)
    return _plan(todo, skipped, warnings)


def _plan_volumes(region, selected, options, now, latest, counts, warnings, skipped):
    todo = []
    for volume, attachment, instance in selected:
        volume_id = volume["VolumeId"]
        state = volume.get("State")
        if state not in options["volume_states"]:
            reason = "volume is {0}; volume_states is {1}".format(state, ", ".join(options["volume_states"]))
            skipped.append(skipped_entry(volume_id, region, reason))
            continue
        reason = _over_pending_limit(volume_id, volume.get("VolumeType"), counts) or _recent_backup(
            volume_id, latest, options, now
        )
        if reason:
            skipped.append(skipped_entry(volume_id, region, reason))
            continue
        volume_tags = contract.tag_dict(volume)
        instance_tags = contract.tag_dict(instance) if instance else {}
        instance_id = attachment["InstanceId"] if attachment else None
        device = attachment.get("Device") if attachment else None
        sources = [("volume", volume_id, volume_tags)]
        if instance_id:
            sources.append(("instance", instance_id, instance_tags))
        retention = _retention_for(region, sources, options, warnings)
        delete_on = retention.expiry(now.date())
        policy = policy_of(volume_tags, instance_tags, options)
        description = describe_backup(policy, volume_id, device, instance_id)
        provenance = {contract.REGION_KEY: region, contract.VOLUME_KEY: volume_id, DESCRIPTION_KEY: description}
        if instance_id:
            provenance.update({contract.INSTANCE_KEY: instance_id, DEVICE_KEY: device or ""})
        todo.append(
            {
                "mode": MODE_VOLUME,
                "region": region,
                "volume_id": volume_id,
                "instance_id": instance_id,
                "device": device,
                "delete_on": delete_on.isoformat(),
                "retention": retention.text,
                "description": description,
                "tags": contract.backup_tags(
                    dict(instance_tags, **volume_tags),
                    provenance,
                    delete_on,
                    policy,
                    options.get("copy_tags"),
                    options.get("extra_tags"),
                ),
            }
        )
    return todo


def _instance_volumes(instance, exclude_boot_volume):
    """The EBS volumes CreateSnapshots includes: ``[(device, volume_id)]``."""
    root = instance.get("RootDeviceName")
    found = []
    for mapping in instance.get("BlockDeviceMappings") or []:
        volume_id = (mapping.get("Ebs") or {}).get("VolumeId")
        if not volume_id or (exclude_boot_volume and mapping.get("DeviceName") == root):
            continue
        found.append((mapping.get("DeviceName"), volume_id))
    return sorted(found)


def _plan_instance_sets(region, selected, options, now, latest, counts, warnings, skipped):
    chosen, volume_types, volume_tags, selector_tags = {}, {}, {}, {}
    for volume, attachment, instance in selected:
        volume_types[volume["VolumeId"]] = volume.get("VolumeType")
        volume_tags[volume["VolumeId"]] = contract.tag_dict(volume)
        if volume.get("State") != "in-use" or instance is None:
            reason = "volume is {0}, attached to no instance; mode instance snapshots the volumes of instances".format(
                volume.get("State")
            )
            skipped.append(skipped_entry(volume["VolumeId"], region, reason))
            continue
        chosen.setdefault(instance["InstanceId"], instance)
        selector_tags.setdefault(instance["InstanceId"], volume_tags[volume["VolumeId"]])

    todo = []
    for instance_id in sorted(chosen):
        instance = chosen[instance_id]
        members = _instance_volumes(instance, options["exclude_boot_volume"])
        if not members:
            skipped.append(
                skipped_entry(instance_id, region, "no EBS volume to snapshot (exclude_boot_volume is true)")
            )
            continue
        reasons = [
            reason
            for device, volume_id in members
            for reason in (
                _over_pending_limit(volume_id, volume_types.get(volume_id), counts),
                _recent_backup(volume_id, latest, options, now),
            )
            if reason
        ]
        if reasons:
            skipped.append(skipped_entry(instance_id, region, "; ".join(reasons)))
            continue
        instance_tags = contract.tag_dict(instance)
        retention = _longest_retention(region, instance_id, instance_tags, members, volume_tags, options, now, warnings)
        delete_on = retention.expiry(now.date())
        policy = policy_of(selector_tags[instance_id], instance_tags, options)
        description = describe_backup(policy, instance_id=instance_id)
        provenance = {contract.REGION_KEY: region, contract.INSTANCE_KEY: instance_id, DESCRIPTION_KEY: description}
        todo.append(
            {
                "mode": MODE_INSTANCE,
                "region": region,
                "instance_id": instance_id,
                "volumes": [{"volume_id": volume_id, "device": device} for device, volume_id in members],
                "exclude_boot_volume": options["exclude_boot_volume"],
                "delete_on": delete_on.isoformat(),
                "retention": retention.text,
                "description": description,
                "tags": contract.backup_tags(
                    instance_tags, provenance, delete_on, policy, options.get("copy_tags"), options.get("extra_tags")
                ),
            }
        )
    return todo


def _longest_retention(region, instance_id, instance_tags, members, volume_tags, options, now, warnings):
    """A crash-consistent set shares one DeleteOn: the longest Retention of the instance and its volumes."""
    sources = [("instance", instance_id, instance_tags)]
    sources += [("volume", volume_id, volume_tags.get(volume_id, {})) for device, volume_id in members]
    found = [_tag_retention(region, kind, resource_id, tags, options, warnings) for kind, resource_id, tags in sources]
    found = [retention for retention in found if retention is not None]
    if not found:
        return options["retention"]
    return max(found, key=lambda retention: retention.expiry(now.date()))


# ---------------------------------------------------------------- create calls


def tag_filter(key, value):
    if value is None:
        return {"Name": "tag-key", "Values": [key]}
    return {"Name": "tag:" + key, "Values": [value]}


def snapshot_result(item, volume_id, device, snapshot_id=None, state=PLANNED):
    keys = ("mode", "region", "instance_id", "delete_on", "retention", "tags")
    return dict(
        {key: item[key] for key in keys}, volume_id=volume_id, device=device, snapshot_id=snapshot_id, state=state
    )


def planned_results(item):
    if item["mode"] == MODE_VOLUME:
        return [snapshot_result(item, item["volume_id"], item["device"])]
    return [snapshot_result(item, volume["volume_id"], volume["device"]) for volume in item["volumes"]]


def create_snapshots(client, item):
    """One CreateSnapshot (volume mode) or one CreateSnapshots (instance mode); tags written in the call."""
    tag_specifications = boto3_tag_specifications(item["tags"], ["snapshot"])
    if item["mode"] == MODE_VOLUME:
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


def outcome_unknown(exc):
    """A 5xx, a timeout or a dropped connection: AWS may have taken the snapshot before the failure."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 and error_code(exc) not in THROTTLING_CODES
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def taken_in_this_run(client, item, known_ids):
    """The snapshots an attempt that failed on the way back did take: managed, same label, unseen before this run."""
    if item["mode"] == MODE_VOLUME:
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
        and contract.tag_dict(snapshot).get(DESCRIPTION_KEY) == item["description"]
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

    def adopted():
        taken = taken_in_this_run(describe_client, item, known_ids)
        return adopted_results(item, taken) if taken else None

    return make_without_doubles(lambda: create_snapshots(create_client, item), adopted, attempts, sleep)


def make_without_doubles(make, find_made, attempts=MAX_ATTEMPTS, sleep=time.sleep):
    """``make()`` for a call that has no idempotency token, never making two of what it makes.

    Throttled calls are sent again after a backoff; after a 5xx or a lost connection, ``find_made()``
    (after the backoff, for EC2's eventual consistency) returns what that attempt made, or None, and
    what it returns is adopted before any new attempt.
    """
    for attempt in range(1, attempts + 1):
        try:
            return make()
        except (BotoCoreError, ClientError) as exc:
            unknown = outcome_unknown(exc)
            if not unknown and error_code(exc) not in THROTTLING_CODES:
                raise
            sleep(min(20.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
            if unknown:
                made = find_made()
                if made is not None:
                    return made
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- purge plan


def _skipped(snapshot, region, reason, volume_id=None):
    return skipped_entry(
        snapshot["SnapshotId"],
        region,
        reason,
        snapshot_id=snapshot["SnapshotId"],
        volume_id=volume_id or snapshot.get("VolumeId"),
        state=snapshot.get("State"),
    )


def _stale_condition(volume_id, options, volumes, running_instance_ids):
    """What makes a snapshot's volume stale (``volume vol-x no longer exists``), or None."""
    if options["stale"] in (None, STALE_NONE) or volume_id == COPIED_SNAPSHOT_VOLUME_ID:
        return None
    volume = volumes.get(volume_id)
    if volume is None:
        return "volume {0} no longer exists".format(volume_id) if options["stale"] == STALE_VOLUME_GONE else None
    if options["stale"] == STALE_UNATTACHED:
        attachments = volume.get("Attachments") or []
        if not [item for item in attachments if item.get("InstanceId") in running_instance_ids]:
            return "volume {0} is attached to no running instance".format(volume_id)
    return None


def _stale(snapshot, volume_id, options, reference, volumes, running_instance_ids):
    """``(stale reason, young reason)``: why an old enough snapshot is stale, or why a stale one is too young."""
    condition = _stale_condition(volume_id, options, volumes, running_instance_ids)
    started = _started(snapshot)
    if condition is None or started is None:
        return None, None
    age = reference - started
    if age < options["stale_min_age"]:
        young = "{0}, but the snapshot is {1} old; stale_min_age is {2}".format(
            condition, age_text(age), age_text(options["stale_min_age"], exact=True)
        )
        return None, young
    return "stale: {0} ({1} days old)".format(condition, age.days), None


def is_copy_of_elsewhere(tags):
    """A disaster-recovery copy: its VolumeId names a volume of its source's region or account, never stale here."""
    return contract.copy_origin(tags) != ("", "")


def _not_ours(reason, option):
    return "{0}; not made by this collection ({1})".format(reason, option)


def plan_snapshot_purge(region, snapshots, images, volumes, running_instance_ids, options, now, account_id=None):
    """Decide, for one region, which snapshots to delete (or archive) and which to leave alone, with reasons.

    ``snapshots``: the account's snapshots in the region (DescribeSnapshots OwnerIds=self);
    ``images``: every AMI the account owns there (a snapshot an AMI uses is never touched);
    ``volumes``: DescribeVolumes items, ``running_instance_ids``: a set (both only read for
    ``stale``).  ``options``: what the module's parse_options returns (as_of, keep_min, keep_last,
    keep_tag, adopt_legacy, stale, stale_min_age, stale_include_unmanaged, action).
    ``now``: aware UTC datetime.

    Expiry follows purge_rule.decide per volume (and, for copies, per origin: SourceRegion, SourceAccount).
    Copies are never stale (their volume is elsewhere).  Stale snapshots (with ``stale``) old enough go
    whatever keep_min says; only managed (or, with adopt_legacy, legacy) ones unless
    ``stale_include_unmanaged``.  Returns ``{"todo", "skipped", "warnings", "notes"}``.
    """
    as_of = options["as_of"]
    volumes_by_id = {volume["VolumeId"]: volume for volume in volumes or []}
    running = set(running_instance_ids or [])
    reference = datetime.datetime.combine(as_of, now.timetz()) if as_of != now.date() else now
    users = snapshot_users(images)
    todo, skipped, warnings = [], [], []
    groups, young_reasons = {}, {}

    for snapshot in sorted(snapshots, key=lambda item: item["SnapshotId"]):
        tags = contract.tag_dict(snapshot)
        volume_id = snapshot_volume(snapshot, tags)
        expiry_scope = contract.is_managed(tags) or (options["adopt_legacy"] and contract.DELETE_ON_KEY in tags)
        if not (expiry_scope or options.get("stale_include_unmanaged")):
            continue
        stale, young = None, None
        if not is_copy_of_elsewhere(tags):
            stale, young = _stale(snapshot, volume_id, options, reference, volumes_by_id, running)
        if not expiry_scope and stale is None and young is None:
            continue
        if account_id and snapshot.get("OwnerId") not in (None, account_id):
            reason = "owned by {0}, not this account".format(snapshot.get("OwnerId"))
        elif keeps(tags, options["keep_tag"]):
            reason = "tagged {0}={1}".format(options["keep_tag"], tags[options["keep_tag"]])
        elif snapshot["SnapshotId"] in users:
            reason = "used by registered AMI {0}".format(", ".join(sorted(users[snapshot["SnapshotId"]])))
        elif expiry_scope and not (stale and snapshot.get("State") != "pending"):
            groups.setdefault((volume_id, contract.copy_origin(tags)), []).append(
                _backup(snapshot, tags, region, warnings)
            )
            if young:
                young_reasons[snapshot["SnapshotId"]] = young
            continue
        elif snapshot.get("State") == "pending":
            reason = "snapshot is pending"
        elif stale:
            if not contract.is_managed(tags):
                stale = _not_ours(stale, "adopt_legacy" if expiry_scope else "stale_include_unmanaged")
            todo.append(_purge_item(snapshot, region, volume_id, tags, stale))
            continue
        else:
            reason = young
        skipped.append(_skipped(snapshot, region, reason, volume_id))

    for volume_id, origin in sorted(groups):
        label = volume_id + contract.origin_text(origin)
        decisions = purge_rule.decide(
            groups[(volume_id, origin)],
            as_of,
            options["keep_min"],
            options.get("keep_last"),
            label,
            "snapshot",
            "completed",
        )
        for backup, purge, reason in decisions:
            snapshot = backup.item
            if purge:
                tags = contract.tag_dict(snapshot)
                if not contract.is_managed(tags):
                    reason = _not_ours(reason, "adopt_legacy")
                todo.append(_purge_item(snapshot, region, volume_id, tags, reason, backup.expiry))
            else:
                young = young_reasons.get(snapshot["SnapshotId"])
                skipped.append(_skipped(snapshot, region, reason + ("; " + young if young else ""), volume_id))

    if options["action"] == ACTION_ARCHIVE:
        todo = _archivable(region, todo, skipped)
    return _plan(todo, skipped, warnings)


def _backup(snapshot, tags, region, warnings):
    expiry = bad_expiry = None
    try:
        expiry = contract.delete_on(tags)
    except ValueError as exc:
        bad_expiry = tags[contract.DELETE_ON_KEY]
        warnings.append(
            "snapshot {0} in {1}: DeleteOn {2}; the snapshot is kept".format(snapshot["SnapshotId"], region, exc)
        )
    state = purge_rule.state_of(snapshot.get("State"), "completed")
    started = _started(snapshot)
    created = started.isoformat() if started else ""
    return purge_rule.Backup(
        snapshot["SnapshotId"], state, snapshot.get("State"), created, expiry, bad_expiry, snapshot
    )


def snapshot_backup(snapshot, region, warnings):
    """A snapshot as the purge rule sees it (state, start time, DeleteOn); a bad DeleteOn is warned about."""
    return _backup(snapshot, contract.tag_dict(snapshot), region, warnings)


def _purge_item(snapshot, region, volume_id, tags, reason, expiry=None):
    started = _started(snapshot)
    managed = contract.is_managed(tags)
    return {
        "snapshot_id": snapshot["SnapshotId"],
        "volume_id": volume_id,
        "region": region,
        "state": snapshot.get("State"),
        "storage_tier": snapshot.get("StorageTier"),
        "start_time": started.isoformat() if started else None,
        "delete_on": tags.get(contract.DELETE_ON_KEY) if expiry is None else expiry.isoformat(),
        "managed": managed,
        "legacy": not managed,
        "reason": reason,
    }


def _archivable(region, todo, skipped):
    """Leave alone, with the reason, what AWS cannot archive: only completed snapshots in the standard tier.

    https://docs.aws.amazon.com/ebs/latest/userguide/archive-snapshot.html
    """
    archivable = []
    for item in todo:
        snapshot = {"SnapshotId": item["snapshot_id"], "VolumeId": item["volume_id"], "State": item["state"]}
        if item["storage_tier"] == "archive":
            skipped.append(_skipped(snapshot, region, "{0}; already in the archive tier".format(item["reason"])))
        elif item["state"] != "completed":
            skipped.append(
                _skipped(snapshot, region, "{0}; AWS archives only completed snapshots".format(item["reason"]))
            )
        else:
            archivable.append(item)
    return archivable
