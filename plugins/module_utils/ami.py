# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What to back up and what to purge, for AMIs: plain functions from described data to plans."""

import datetime
import re

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import is_true_tag
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention

DEFAULT_NAME_TEMPLATE = "{name}-{instance_id}-{timestamp}"
NAME_FIELDS = ("name", "instance_id", "policy", "region", "timestamp", "date")
_NAME_MIN, _NAME_MAX = 3, 128
_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9()\[\] ./\-'@_]+")
_NAME_SEPARATOR_RUNS = re.compile(r"([-_. ])[-_. ]*")
# AMI states that mean a backup exists or is on its way.
_LIVE_STATES = ("available", "pending")
_INSTANCE_ID_IN_TEXT = re.compile(r"\bi-[0-9a-f]{8,17}\b")
UNKNOWN_SOURCE = "unknown"


# ---------------------------------------------------------------- names


def sanitise_name(text):
    """Reduce text to what an AMI name may hold: ``A-Za-z0-9()[] ./-'@_``."""
    cleaned = _NAME_DISALLOWED.sub("-", text)
    cleaned = _NAME_SEPARATOR_RUNS.sub(r"\1", cleaned)
    return cleaned.strip("-_. ")


def check_name_template(template):
    """Raise ValueError naming the template when it uses an unknown field or cannot be unique."""
    sample = dict.fromkeys(NAME_FIELDS, "x")
    try:
        template.format(**sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            "name_template {0!r} is not valid ({1}); fields: {2}".format(template, exc, ", ".join(NAME_FIELDS))
        )
    if "{instance_id}" not in template or "{timestamp}" not in template:
        raise ValueError(
            "name_template {0!r} must contain {{instance_id}} and {{timestamp}}: AMI names are unique "
            "per region, so each instance and run needs its own name".format(template)
        )


def ami_name(template, fields):
    """Render and sanitise an AMI name; a long Name tag is shortened, never the id or timestamp."""
    fixed = sanitise_name(template.format(**dict(fields, name="")))
    room = max(0, _NAME_MAX - len(fixed) - 1)
    name = sanitise_name(template.format(**dict(fields, name=sanitise_name(fields.get("name", ""))[:room])))
    return name[:_NAME_MAX] if len(name) >= _NAME_MIN else (name + "-ami")[:_NAME_MAX]


# ---------------------------------------------------------------- backup plan


def _creation_time(image):
    value = image.get("CreationDate")
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def latest_backups(images):
    """Newest live managed AMI per source instance: ``{instance_id: image}``."""
    latest = {}
    for image in images:
        tags = contract.tag_dict(image)
        source = tags.get(contract.SOURCE_INSTANCE_KEY)
        if not source or not contract.is_managed(tags) or image.get("State") not in _LIVE_STATES:
            continue
        if source not in latest or (image.get("CreationDate") or "") > (latest[source].get("CreationDate") or ""):
            latest[source] = image
    return latest


def _retention_for(instance_id, tags, options, warnings):
    value = tags.get(options["retention_tag"])
    if value is None:
        return options["retention"]
    try:
        return parse_retention(value)
    except ValueError as exc:
        warnings.append(
            "instance {0}: {1} tag ignored, {2}; using the default retention {3!r}".format(
                instance_id, options["retention_tag"], exc, options["retention"].text
            )
        )
        return options["retention"]


def plan_backups(region, instances, managed_images, options, now):
    """Decide, for one region, which instances get an AMI now.

    ``instances``: DescribeInstances items carrying the selector tag.  ``managed_images``:
    the region's images with the managed marker.  ``options``: tag_key, tag_value,
    instance_states, retention (Retention), retention_tag, reboot_tag, name_template,
    copy_tags, extra_tags, min_interval (timedelta).  ``now``: aware UTC datetime.

    Returns ``{"create": [...], "skipped": [...], "warnings": [...]}``.
    """
    create, skipped, warnings = [], [], []
    latest = latest_backups(managed_images)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")
    policy = options.get("tag_value") or contract.DEFAULT_POLICY

    for instance in sorted(instances, key=lambda item: item["InstanceId"]):
        instance_id = instance["InstanceId"]
        tags = contract.tag_dict(instance)
        state = instance.get("State", {}).get("Name")

        if state not in options["instance_states"]:
            skipped.append(
                {
                    "resource": instance_id,
                    "region": region,
                    "reason": "instance is {0}; instance_states is {1}".format(state, ", ".join(options["instance_states"])),
                }
            )
            continue

        previous = latest.get(instance_id)
        created = _creation_time(previous) if previous else None
        if created and options["min_interval"] and now - created < options["min_interval"]:
            skipped.append(
                {
                    "resource": instance_id,
                    "region": region,
                    "image_id": previous["ImageId"],
                    "reason": "{0} ({1}) was created at {2}, within min_interval".format(
                        previous["ImageId"], previous.get("State"), previous["CreationDate"]
                    ),
                }
            )
            continue

        retention = _retention_for(instance_id, tags, options, warnings)
        delete_on = retention.expiry(now.date())
        name = ami_name(
            options["name_template"],
            {
                "name": tags.get(contract.NAME_KEY, ""),
                "instance_id": instance_id,
                "policy": policy,
                "region": region,
                "timestamp": timestamp,
                "date": now.date().isoformat(),
            },
        )
        provenance = {contract.SOURCE_INSTANCE_KEY: instance_id, contract.REGION_KEY: region}
        create.append(
            {
                "region": region,
                "instance_id": instance_id,
                "name": name,
                "reboot": is_true_tag(tags.get(options["reboot_tag"])),
                "delete_on": delete_on.isoformat(),
                "retention": retention.text,
                "tags": contract.backup_tags(
                    tags, provenance, delete_on, policy, options.get("copy_tags"), options.get("extra_tags")
                ),
            }
        )
    return {"create": create, "skipped": skipped, "warnings": warnings}


# ---------------------------------------------------------------- purge plan


def image_source(image, tags):
    """The instance an AMI was made from: our tag, else an instance id in a legacy name."""
    source = tags.get(contract.SOURCE_INSTANCE_KEY)
    if source:
        return source
    for text in (image.get("Name") or "", image.get("Description") or ""):
        found = _INSTANCE_ID_IN_TEXT.search(text)
        if found:
            return found.group(0)
    return UNKNOWN_SOURCE


def image_snapshot_ids(image):
    return [
        mapping["Ebs"]["SnapshotId"]
        for mapping in image.get("BlockDeviceMappings") or []
        if mapping.get("Ebs", {}).get("SnapshotId")
    ]


def _kept(image, region, reason):
    return {"image_id": image["ImageId"], "name": image.get("Name"), "region": region, "reason": reason}


def plan_purge(region, images, own_snapshot_ids, as_of, keep_min=1, keep_last=None, adopt_legacy=False, account_id=None):
    """Decide, for one region, which AMIs to deregister and which snapshots to delete.

    ``images``: every AMI the account owns in the region (all of them, so that a snapshot
    another AMI uses is seen).  ``own_snapshot_ids``: the ids of the account's snapshots.
    Returns ``{"deregister": [...], "kept": [...], "warnings": [...]}``; each deregister item
    lists the snapshots to delete after it and the ones kept, with reasons.
    """
    kept, warnings, groups = [], [], {}
    for image in images:
        if account_id and image.get("OwnerId") not in (None, account_id):
            continue
        tags = contract.tag_dict(image)
        managed = contract.is_managed(tags)
        if not managed and not (adopt_legacy and contract.DELETE_ON_KEY in tags):
            continue
        try:
            expiry = contract.delete_on(tags)
        except ValueError as exc:
            warnings.append("image {0} in {1}: DeleteOn {2}".format(image["ImageId"], region, exc))
            kept.append(_kept(image, region, "DeleteOn tag {0!r} is not a date".format(tags[contract.DELETE_ON_KEY])))
            continue
        entry = {"image": image, "expiry": expiry, "legacy": not managed}
        groups.setdefault(image_source(image, tags), []).append(entry)

    deregister = []
    for source in sorted(groups):
        entries = sorted(groups[source], key=lambda item: item["image"].get("CreationDate") or "", reverse=True)
        newest = entries[0]["image"]
        if newest.get("State") != "available":
            for entry in entries:
                kept.append(
                    _kept(
                        entry["image"],
                        region,
                        "the newest backup of {0}, {1}, is {2}: nothing of this source is purged "
                        "until the latest backup succeeds".format(source, newest["ImageId"], newest.get("State")),
                    )
                )
            continue
        available_rank = 0
        for entry in entries:
            image = entry["image"]
            state = image.get("State")
            if state == "available":
                available_rank += 1
                if available_rank <= keep_min:
                    kept.append(_kept(image, region, "one of the newest {0} available backups of {1} (keep_min)".format(keep_min, source)))
                    continue
            elif state == "pending":
                kept.append(_kept(image, region, "image is pending"))
                continue
            beyond_keep_last = keep_last is not None and state == "available" and available_rank > keep_last
            expired = entry["expiry"] is not None and entry["expiry"] <= as_of
            if not (expired or beyond_keep_last):
                reason = "expires on {0}".format(entry["expiry"]) if entry["expiry"] else "has no DeleteOn tag"
                kept.append(_kept(image, region, reason))
                continue
            deregister.append(
                {
                    "image": image,
                    "source": source,
                    "delete_on": entry["expiry"].isoformat() if entry["expiry"] else None,
                    "legacy": entry["legacy"],
                    "reason": "expired on {0}".format(entry["expiry"]) if expired else "beyond keep_last {0}".format(keep_last),
                }
            )

    _plan_snapshots(deregister, images, own_snapshot_ids)
    return {"deregister": deregister, "kept": kept, "warnings": warnings}


def _plan_snapshots(deregister, images, own_snapshot_ids):
    """Attach to each deregister item the snapshots that are safe to delete after it."""
    leaving = {item["image"]["ImageId"] for item in deregister}
    users = {}
    for image in images:
        if image["ImageId"] not in leaving:
            for snapshot_id in image_snapshot_ids(image):
                users.setdefault(snapshot_id, []).append(image["ImageId"])
    planned = set()
    for item in deregister:
        item["delete_snapshots"], item["keep_snapshots"] = [], []
        for snapshot_id in image_snapshot_ids(item["image"]):
            if snapshot_id in planned:
                continue  # shared by two expiring AMIs: deleted once, after both are gone
            if snapshot_id in users:
                reason = "also used by {0}".format(", ".join(sorted(users[snapshot_id])))
                item["keep_snapshots"].append({"snapshot_id": snapshot_id, "reason": reason})
            elif snapshot_id not in own_snapshot_ids:
                item["keep_snapshots"].append({"snapshot_id": snapshot_id, "reason": "not owned by this account"})
            else:
                item["delete_snapshots"].append(snapshot_id)
                planned.add(snapshot_id)
