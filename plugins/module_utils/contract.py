# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tag contract: what we read from sources and write on every backup."""

import sys

from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_date

MARKER_KEY = "CreatedBy"
MARKER_VALUE = "opsvault.aws_backup"
DELETE_ON_KEY = "DeleteOn"
POLICY_KEY = "BackupPolicy"
SOURCE_INSTANCE_KEY = "SourceInstanceId"
INSTANCE_KEY = "InstanceId"
VOLUME_KEY = "VolumeId"
REGION_KEY = "Region"
NAME_KEY = "Name"
DEFAULT_POLICY = "default"
# Written on what a restore launches or creates: the restore marker, and where it came from.
RESTORED_BY_KEY = "RestoredBy"
SOURCE_IMAGE_KEY = "SourceImageId"
SOURCE_SNAPSHOT_KEY = "SourceSnapshotId"
RESTORE_ID_KEY = "RestoreId"
# Written on a disaster-recovery copy (with SourceImageId / SourceSnapshotId): where its source lives.
SOURCE_REGION_KEY = "SourceRegion"
SOURCE_ACCOUNT_KEY = "SourceAccount"

RESERVED_KEYS = (MARKER_KEY, DELETE_ON_KEY, POLICY_KEY, SOURCE_INSTANCE_KEY, REGION_KEY)
RESTORE_RESERVED_KEYS = (
    MARKER_KEY,
    DELETE_ON_KEY,
    RESTORED_BY_KEY,
    SOURCE_INSTANCE_KEY,
    VOLUME_KEY,
    SOURCE_IMAGE_KEY,
    SOURCE_SNAPSHOT_KEY,
    RESTORE_ID_KEY,
)


def tag_dict(resource):
    """A resource's ``Tags`` list as a dict (boto3 omits ``Tags`` when there are none); ``Tags`` that are
    already a dict (a describe item cut to what a planner reads) are returned as they are, to read."""
    tags = resource.get("Tags") or []
    if isinstance(tags, dict):
        return tags
    return {tag["Key"]: tag["Value"] for tag in tags}


def is_managed(tags):
    return tags.get(MARKER_KEY) == MARKER_VALUE


def delete_on(tags):
    """The ``DeleteOn`` date of a resource's tags, None when untagged.

    Raises ValueError naming the value when the tag is not a date.
    """
    value = tags.get(DELETE_ON_KEY)
    if value is None:
        return None
    return parse_date(value)


def check_extra_tags(extra_tags, option="extra_tags", reserved=RESERVED_KEYS):
    """Refuse user tags that would overwrite the contract (the purge relies on them)."""
    clashing = sorted(key for key in extra_tags or {} if key in reserved)
    if clashing:
        raise ValueError(
            "{0} may not set {1}: the collection writes these tags itself".format(option, ", ".join(clashing))
        )


def restore_tags(user_tags, provenance, restore_id, name=None):
    """The tags written on a restored resource: the user's, a Name, then the restore marker and provenance.

    Never the backup's ``CreatedBy``/``DeleteOn``/``Backup`` tags: a restore is neither a backup nor a
    source that the next backup run selects.
    """
    tags = dict(user_tags or {})
    if name and NAME_KEY not in tags:
        tags[NAME_KEY] = name
    tags.update(provenance)
    tags[RESTORED_BY_KEY] = MARKER_VALUE
    tags[RESTORE_ID_KEY] = restore_id
    return tags


def backup_tags(source_tags, provenance, delete_on_date, policy, copy_tags=None, extra_tags=None):
    """The tags written on a backup: copied and extra tags first, then the contract on top.

    ``provenance`` holds the source ids (SourceInstanceId, VolumeId, Region, ...).
    """
    tags = {}
    for key in copy_tags or []:
        if key in source_tags:
            tags[key] = source_tags[key]
    tags.update(extra_tags or {})
    if NAME_KEY in source_tags:
        tags[NAME_KEY] = source_tags[NAME_KEY]
    tags.update(provenance)
    tags[MARKER_KEY] = MARKER_VALUE
    tags[DELETE_ON_KEY] = sys.intern(delete_on_date.isoformat())  # one string per date in a large run
    tags[POLICY_KEY] = policy or DEFAULT_POLICY
    return tags


def copy_origin(tags):
    """``(SourceRegion, SourceAccount)`` of a disaster-recovery copy, ``("", "")`` for a backup made in place.

    The purges count keep_min per source and per origin: the copies of one instance's backups from two
    regions or accounts are two sets of backups, each keeping its own newest.
    """
    return tags.get(SOURCE_REGION_KEY, ""), tags.get(SOURCE_ACCOUNT_KEY, "")


def origin_text(origin):
    """`` (copies from eu-west-1, 123456789012)`` for a copy's origin, empty for a backup made in place."""
    region, account = origin
    if not region and not account:
        return ""
    return " (copies from {0})".format(", ".join(part for part in (region, account) if part))
