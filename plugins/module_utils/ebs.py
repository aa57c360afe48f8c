# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What to snapshot and which snapshots to purge, for EBS: plain functions from described data to plans."""

import datetime
import re

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_date
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_duration
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention

DEVICE_KEY = "Device"
DESCRIPTION_KEY = "Description"
MODE_VOLUME = "volume"
MODE_INSTANCE = "instance"
STALE_NONE = "none"
STALE_VOLUME_GONE = "volume_gone"
STALE_UNATTACHED = "unattached"
STALE_MODES = (STALE_NONE, STALE_VOLUME_GONE, STALE_UNATTACHED)
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
_FALSE_WORDS = ("", "no", "false", "0", "off")
_DESCRIPTION_MAX = 255
_AGE_RE = re.compile(r"^\d+$")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


# ---------------------------------------------------------------- shared


def moment(value):
    """An aware UTC datetime from boto3's datetime or an ISO 8601 string; None when missing."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        found = value
    else:
        found = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if found.tzinfo is None:
        found = found.replace(tzinfo=datetime.timezone.utc)
    return found.astimezone(datetime.timezone.utc)


def parse_age(value, option):
    """A minimum age: a bare number of days (``30``), or a duration with a unit (``12h``, ``2w``).

    Raises ValueError naming the option for negative or malformed values.
    """
    text = str(value).strip().lower()
    if text.startswith("-"):
        raise ValueError("{0} must not be negative, got {1!r}".format(option, value))
    if _AGE_RE.match(text):
        return datetime.timedelta(days=int(text))
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(
            "{0} {1!r} is not an age: use a number of days (30) or a count with a unit (12h, 30d, 2w)".format(
                option, value
            )
        )


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
    return keep_tag in tags and str(tags[keep_tag]).strip().lower() not in _FALSE_WORDS


# ---------------------------------------------------------------- snapshot plan


def _attachment(volume):
    for attachment in volume.get("Attachments") or []:
        if attachment.get("State") in ("attached", "attaching") and attachment.get("InstanceId"):
            return attachment
    return None


def _tag_retention(kind, resource_id, tags, options, warnings):
    """A resource's valid Retention tag, None when it has none; a bad value warns naming the resource and value."""
    value = tags.get(options["retention_tag"])
    if value is None:
        return None
    try:
        return parse_retention(value)
    except ValueError as exc:
        warnings.append("{0} {1}: {2} tag ignored, {3}".format(kind, resource_id, options["retention_tag"], exc))
        return None


def _retention_for(sources, options, warnings):
    """The first valid Retention tag among ``sources`` ([(kind, id, tags)]), else the task's retention."""
    for kind, resource_id, tags in sources:
        found = _tag_retention(kind, resource_id, tags, options, warnings)
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
        started = moment(snapshot.get("StartTime"))
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
    started = moment(previous.get("StartTime"))
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


def policy_name(options):
    return options.get("tag_value") or options.get("instance_tag_value") or contract.DEFAULT_POLICY


def plan_snapshots(region, volumes, instances, managed_snapshots, pending_snapshots, options, now, account_id=None):
    """Decide, for one region, which volumes (or instances) are snapshotted now.

    ``volumes``: DescribeVolumes items; ``instances``: DescribeInstances items (at least those
    the volumes are attached to); ``managed_snapshots``: the region's snapshots with the
    managed marker; ``pending_snapshots``: the region's pending snapshots (any tags).
    ``options``: mode, tag_key, tag_value, instance_tag_key, instance_tag_value, volume_ids,
    volume_states, exclude_boot_volume, retention (Retention), retention_tag, copy_tags,
    extra_tags, min_interval (timedelta).  ``now``: aware UTC datetime.

    Returns ``{"create": [...], "skipped": [...], "warnings": [...]}``.  A volume-mode item
    is one CreateSnapshot; an instance-mode item is one CreateSnapshots of all the instance's volumes.
    """
    instances_by_id = {instance["InstanceId"]: instance for instance in instances}
    latest = latest_ebs_backups(managed_snapshots, account_id)
    counts = pending_counts(pending_snapshots, account_id)
    warnings, skipped = [], []
    selected = []
    for volume in sorted(volumes, key=lambda item: item["VolumeId"]):
        attachment = _attachment(volume)
        instance = instances_by_id.get(attachment["InstanceId"]) if attachment else None
        if _selected(volume, instance, options):
            selected.append((volume, attachment, instance))
    if options["mode"] == MODE_INSTANCE:
        create = _plan_instance_sets(region, selected, options, now, latest, counts, warnings, skipped)
    else:
        create = _plan_volumes(region, selected, options, now, latest, counts, warnings, skipped)
    return {"create": create, "skipped": skipped, "warnings": warnings}


def _skip(skipped, resource, region, reason, **extra):
    skipped.append(dict({"resource": resource, "region": region, "reason": reason}, **extra))


def _plan_volumes(region, selected, options, now, latest, counts, warnings, skipped):
    create = []
    policy = policy_name(options)
    for volume, attachment, instance in selected:
        volume_id = volume["VolumeId"]
        state = volume.get("State")
        if state not in options["volume_states"]:
            _skip(
                skipped,
                volume_id,
                region,
                "volume is {0}; volume_states is {1}".format(state, ", ".join(options["volume_states"])),
            )
            continue
        reason = _over_pending_limit(volume_id, volume.get("VolumeType"), counts) or _recent_backup(
            volume_id, latest, options, now
        )
        if reason:
            _skip(skipped, volume_id, region, reason)
            continue
        volume_tags = contract.tag_dict(volume)
        instance_tags = contract.tag_dict(instance) if instance else {}
        instance_id = attachment["InstanceId"] if attachment else None
        device = attachment.get("Device") if attachment else None
        sources = [("volume", volume_id, volume_tags)]
        if instance_id:
            sources.append(("instance", instance_id, instance_tags))
        retention = _retention_for(sources, options, warnings)
        delete_on = retention.expiry(now.date())
        description = describe_backup(policy, volume_id, device, instance_id)
        provenance = {contract.REGION_KEY: region, contract.VOLUME_KEY: volume_id, DESCRIPTION_KEY: description}
        if instance_id:
            provenance.update({contract.INSTANCE_KEY: instance_id, DEVICE_KEY: device or ""})
        create.append(
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
    return create


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
    policy = policy_name(options)
    chosen, volume_types, volume_tags = {}, {}, {}
    for volume, attachment, instance in selected:
        volume_types[volume["VolumeId"]] = volume.get("VolumeType")
        volume_tags[volume["VolumeId"]] = contract.tag_dict(volume)
        if volume.get("State") != "in-use" or instance is None:
            _skip(
                skipped,
                volume["VolumeId"],
                region,
                "volume is {0}, attached to no instance; mode instance snapshots the volumes of instances".format(
                    volume.get("State")
                ),
            )
            continue
        chosen.setdefault(instance["InstanceId"], instance)

    create = []
    for instance_id in sorted(chosen):
        instance = chosen[instance_id]
        members = _instance_volumes(instance, options["exclude_boot_volume"])
        if not members:
            _skip(skipped, instance_id, region, "no EBS volume to snapshot (exclude_boot_volume is true)")
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
            _skip(skipped, instance_id, region, "; ".join(reasons))
            continue
        instance_tags = contract.tag_dict(instance)
        retention = _longest_retention(instance_id, instance_tags, members, volume_tags, options, now, warnings)
        delete_on = retention.expiry(now.date())
        description = describe_backup(policy, instance_id=instance_id)
        provenance = {contract.REGION_KEY: region, contract.INSTANCE_KEY: instance_id, DESCRIPTION_KEY: description}
        create.append(
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
    return create


def _longest_retention(instance_id, instance_tags, members, volume_tags, options, now, warnings):
    """A crash-consistent set shares one DeleteOn: the longest Retention of the instance and its volumes."""
    sources = [("instance", instance_id, instance_tags)]
    sources += [("volume", volume_id, volume_tags.get(volume_id, {})) for device, volume_id in members]
    found = [_tag_retention(kind, resource_id, tags, options, warnings) for kind, resource_id, tags in sources]
    found = [retention for retention in found if retention is not None]
    if not found:
        return options["retention"]
    return max(found, key=lambda retention: retention.expiry(now.date()))


# ---------------------------------------------------------------- purge plan


def _kept(snapshot, region, reason, volume_id=None):
    return {
        "snapshot_id": snapshot["SnapshotId"],
        "volume_id": volume_id or snapshot.get("VolumeId"),
        "region": region,
        "state": snapshot.get("State"),
        "reason": reason,
    }


def image_snapshot_users(images):
    """``{snapshot_id: [image ids]}`` for the snapshots registered AMIs use."""
    users = {}
    for image in images:
        for mapping in image.get("BlockDeviceMappings") or []:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id:
                users.setdefault(snapshot_id, []).append(image["ImageId"])
    return users


def _stale_reason(snapshot, volume_id, options, reference, volumes, running_instance_ids):
    """Why a snapshot is stale (seed 002's clean-up), or None."""
    if options["stale"] in (None, STALE_NONE) or volume_id == COPIED_SNAPSHOT_VOLUME_ID:
        return None
    started = moment(snapshot.get("StartTime"))
    if started is None or reference - started < options["stale_min_age"]:
        return None
    volume = volumes.get(volume_id)
    age = "{0} days old".format((reference - started).days)
    if volume is None:
        if options["stale"] == STALE_VOLUME_GONE:
            return "stale: volume {0} no longer exists ({1})".format(volume_id, age)
        return None
    if options["stale"] == STALE_UNATTACHED:
        attached = [
            attachment["InstanceId"]
            for attachment in volume.get("Attachments") or []
            if attachment.get("InstanceId") in running_instance_ids
        ]
        if not attached:
            return "stale: volume {0} is attached to no running instance ({1})".format(volume_id, age)
    return None


def plan_snapshot_purge(region, snapshots, images, volumes, running_instance_ids, options, as_of, now, account_id=None):
    """Decide, for one region, which snapshots to delete (or archive) and which to keep, with reasons.

    ``snapshots``: the account's snapshots in the region (DescribeSnapshots OwnerIds=self);
    ``images``: every AMI the account owns there (a snapshot an AMI uses is never touched);
    ``volumes``: DescribeVolumes items, ``running_instance_ids``: a set (both only read for
    ``stale``).  ``options``: keep_min, keep_tag, adopt_legacy, stale (none, volume_gone, unattached), stale_min_age
    (timedelta), action.  ``as_of``: the date expiry is judged on; ``now``: aware UTC datetime.

    Returns ``{"purge": [...], "kept": [...], "warnings": [...]}``.
    """
    volumes_by_id = {volume["VolumeId"]: volume for volume in volumes or []}
    running = set(running_instance_ids or [])
    reference = datetime.datetime.combine(as_of, now.timetz()) if as_of != now.date() else now
    users = image_snapshot_users(images)
    purge, kept, warnings = [], [], []
    ranked = {}

    for snapshot in sorted(snapshots, key=lambda item: item["SnapshotId"]):
        tags = contract.tag_dict(snapshot)
        managed = contract.is_managed(tags)
        volume_id = snapshot_volume(snapshot, tags)
        expiry_scope = managed or (options["adopt_legacy"] and contract.DELETE_ON_KEY in tags)
        stale = _stale_reason(snapshot, volume_id, options, reference, volumes_by_id, running)
        if not expiry_scope and stale is None:
            continue
        if account_id and snapshot.get("OwnerId") not in (None, account_id):
            kept.append(
                _kept(snapshot, region, "owned by {0}, not this account".format(snapshot.get("OwnerId")), volume_id)
            )
            continue
        if keeps(tags, options["keep_tag"]):
            kept.append(
                _kept(
                    snapshot, region, "tagged {0}={1}".format(options["keep_tag"], tags[options["keep_tag"]]), volume_id
                )
            )
            continue
        if snapshot["SnapshotId"] in users:
            reason = "used by registered AMI {0}".format(", ".join(sorted(users[snapshot["SnapshotId"]])))
            kept.append(_kept(snapshot, region, reason, volume_id))
            continue
        if snapshot.get("State") == "pending":
            if expiry_scope:
                ranked.setdefault(volume_id, []).append((snapshot, tags, None))
            else:
                kept.append(_kept(snapshot, region, "snapshot is pending", volume_id))
            continue
        if stale is not None:
            purge.append(_purge_item(snapshot, region, volume_id, tags, stale))
            continue
        try:
            expiry = contract.delete_on(tags)
        except ValueError as exc:
            warnings.append("snapshot {0} in {1}: DeleteOn {2}".format(snapshot["SnapshotId"], region, exc))
            kept.append(
                _kept(
                    snapshot, region, "DeleteOn tag {0!r} is not a date".format(tags[contract.DELETE_ON_KEY]), volume_id
                )
            )
            continue
        ranked.setdefault(volume_id, []).append((snapshot, tags, expiry))

    for volume_id in sorted(ranked):
        _plan_volume_expiry(region, volume_id, ranked[volume_id], options, as_of, purge, kept)

    if options["action"] == ACTION_ARCHIVE:
        purge = _archivable(region, purge, kept)
    return {"purge": purge, "kept": kept, "warnings": warnings}


def _purge_item(snapshot, region, volume_id, tags, reason, expiry=None):
    started = moment(snapshot.get("StartTime"))
    return {
        "snapshot_id": snapshot["SnapshotId"],
        "volume_id": volume_id,
        "region": region,
        "state": snapshot.get("State"),
        "storage_tier": snapshot.get("StorageTier"),
        "start_time": started.isoformat() if started else None,
        "delete_on": tags.get(contract.DELETE_ON_KEY) if expiry is None else expiry.isoformat(),
        "legacy": not contract.is_managed(tags),
        "reason": reason,
    }


def _plan_volume_expiry(region, volume_id, entries, options, as_of, purge, kept):
    entries = sorted(entries, key=lambda entry: moment(entry[0].get("StartTime")) or _EPOCH, reverse=True)
    newest = entries[0][0]
    for snapshot, tags, expiry in entries:
        if snapshot.get("State") == "pending":
            kept.append(_kept(snapshot, region, "snapshot is pending", volume_id))
    entries = [entry for entry in entries if entry[0].get("State") != "pending"]
    if newest.get("State") != "completed":
        for snapshot, tags, expiry in entries:
            reason = (
                "the newest snapshot of {0}, {1}, is {2}: nothing of this volume expires "
                "until the latest backup completes".format(volume_id, newest["SnapshotId"], newest.get("State"))
            )
            kept.append(_kept(snapshot, region, reason, volume_id))
        return
    completed_rank = 0
    for snapshot, tags, expiry in entries:
        if snapshot.get("State") == "completed":
            completed_rank += 1
            if completed_rank <= options["keep_min"]:
                reason = "one of the newest {0} completed snapshot(s) of {1} (keep_min)".format(
                    options["keep_min"], volume_id
                )
                kept.append(_kept(snapshot, region, reason, volume_id))
                continue
        if expiry is None:
            kept.append(_kept(snapshot, region, "has no DeleteOn tag", volume_id))
        elif expiry > as_of:
            kept.append(_kept(snapshot, region, "expires on {0}".format(expiry.isoformat()), volume_id))
        else:
            purge.append(
                _purge_item(snapshot, region, volume_id, tags, "expired on {0}".format(expiry.isoformat()), expiry)
            )


def _archivable(region, purge, kept):
    """Keep, with the reason, what AWS cannot archive: only completed snapshots in the standard tier.

    https://docs.aws.amazon.com/ebs/latest/userguide/archive-snapshot.html
    """
    archivable = []
    for item in purge:
        snapshot = {"SnapshotId": item["snapshot_id"], "VolumeId": item["volume_id"], "State": item["state"]}
        if item["storage_tier"] == "archive":
            kept.append(_kept(snapshot, region, "{0}; already in the archive tier".format(item["reason"])))
        elif item["state"] != "completed":
            kept.append(_kept(snapshot, region, "{0}; AWS archives only completed snapshots".format(item["reason"])))
        else:
            archivable.append(item)
    return archivable


def parse_as_of(value, today):
    """The ``as_of`` option: a date (``YYYY-MM-DD``), default today (UTC)."""
    if value in (None, ""):
        return today
    return parse_date(value)
