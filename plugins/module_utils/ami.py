# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What to back up and what to purge, for AMIs: plain functions from described data to plans."""

import re
import threading

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import batches_doubling
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import parse_retention
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import is_yes
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

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


def _retention_for(region, instance_id, tags, options, warnings, parsed):
    value = tags.get(options["retention_tag"])
    if value is None:
        return options["retention"]
    if value in parsed:
        return parsed[value]
    try:
        parsed[value] = parse_retention(value)
        return parsed[value]
    except ValueError as exc:
        warnings.append(
            "instance {0} in {1}: {2} tag ignored, {3}; using the default retention {4!r}".format(
                instance_id, region, options["retention_tag"], exc, options["retention"].text
            )
        )
        return options["retention"]


def policy_of(tags, options):
    """The BackupPolicy of a selected source: the required selector value, else the value of its
    selector tag (``Backup=Weekly``), else ``default``."""
    return options.get("tag_value") or (tags.get(options["tag_key"]) or "").strip() or contract.DEFAULT_POLICY


_STATES = {}


def instance_for_plan(instance):
    """Of a DescribeInstances item, only what ``plan_backups`` reads: its id, its state (one shared dict
    per state name) and its tags as a dict, so that a region of 100,000 instances is held as ids and
    tags, not as whole boto3 answers."""
    state = (instance.get("State") or {}).get("Name")
    return {
        "InstanceId": instance["InstanceId"],
        "State": _STATES.setdefault(state, {"Name": state}),
        "Tags": contract.tag_dict(instance),
    }


def image_for_plan(image):
    """Of a DescribeImages item, only what ``latest_backups`` reads."""
    return {key: image.get(key) for key in ("ImageId", "State", "CreationDate", "Tags")}


def plan_backups(region, instances, managed_images, options, now):
    """Decide, for one region, which instances get an AMI now.

    ``instances``: DescribeInstances items carrying the selector tag.  ``managed_images``:
    the region's images with the managed marker.  ``options``: tag_key, tag_value,
    instance_states, retention (Retention), retention_tag, reboot_tag, name_template,
    copy_tags, extra_tags, min_interval (timedelta).  ``now``: aware UTC datetime.

    Returns ``{"create": [...], "skipped": [...], "warnings": [...]}``.
    """
    create, skipped, warnings = [], [], []
    # One Retention and one DeleteOn text per distinct value, shared by every instance that has it.
    parsed, delete_on_texts = {}, {}
    latest = latest_backups(managed_images)
    timestamp = now.strftime("%Y%m%dT%H%M%SZ")

    for instance in sorted(instances, key=lambda item: item["InstanceId"]):
        instance_id = instance["InstanceId"]
        tags = contract.tag_dict(instance)
        state = instance.get("State", {}).get("Name")

        if state not in options["instance_states"]:
            reason = "instance is {0}; instance_states is {1}".format(state, ", ".join(options["instance_states"]))
            skipped.append(skipped_entry(instance_id, region, reason))
            continue

        previous = latest.get(instance_id)
        created = parse_timestamp(previous.get("CreationDate")) if previous else None
        if created and options["min_interval"] and now - created < options["min_interval"]:
            reason = "{0} ({1}) was created at {2}, within min_interval".format(
                previous["ImageId"], previous.get("State"), previous["CreationDate"]
            )
            skipped.append(skipped_entry(instance_id, region, reason, image_id=previous["ImageId"]))
            continue

        policy = policy_of(tags, options)
        retention = _retention_for(region, instance_id, tags, options, warnings, parsed)
        delete_on = retention.expiry(now.date())
        delete_on_text = delete_on_texts.setdefault(delete_on, delete_on.isoformat())
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
                "reboot": is_yes(tags.get(options["reboot_tag"])),
                "delete_on": delete_on_text,
                "retention": retention.text,
                "tags": contract.backup_tags(
                    tags, provenance, delete_on, policy, options.get("copy_tags"), options.get("extra_tags")
                ),
            }
        )
    return {"todo": create, "skipped": skipped, "warnings": warnings}


# ---------------------------------------------------------------- purge plan


def image_source(image, tags):
    """The instance an AMI was made from: our tag, AWS's own field, else an instance id in a legacy name."""
    source = tags.get(contract.SOURCE_INSTANCE_KEY) or image.get("SourceInstanceId")
    if source:
        return source
    for text in (image.get("Name") or "", image.get("Description") or ""):
        found = _INSTANCE_ID_IN_TEXT.search(text)
        if found:
            return found.group(0)
    return UNKNOWN_SOURCE


def image_snapshot_ids(image):
    """The EBS snapshots an AMI is made of, in device order, each once."""
    return list(
        dict.fromkeys(
            mapping["Ebs"]["SnapshotId"]
            for mapping in image.get("BlockDeviceMappings") or []
            if (mapping.get("Ebs") or {}).get("SnapshotId")
        )
    )


def snapshot_users(images):
    """``{snapshot_id: [image ids]}``: which of ``images`` use each snapshot."""
    users = {}
    for image in images:
        for snapshot_id in image_snapshot_ids(image):
            users.setdefault(snapshot_id, []).append(image["ImageId"])
    return users


def _source_label(source):
    return source if source != UNKNOWN_SOURCE else "legacy AMIs of unknown source"


def _skipped_image(image, region, reason, source=None):
    return skipped_entry(
        image["ImageId"],
        region,
        reason,
        image_id=image["ImageId"],
        name=image.get("Name"),
        source_instance_id=None if source in (None, UNKNOWN_SOURCE) else source,
    )


def _skipped_snapshot(snapshot_id, image, region, reason):
    return skipped_entry(
        snapshot_id, region, reason, snapshot_id=snapshot_id, image_id=image["ImageId"], name=image.get("Name")
    )


def _backup(image, tags, warnings, region):
    expiry = bad_expiry = None
    try:
        expiry = contract.delete_on(tags)
    except ValueError as exc:
        bad_expiry = tags[contract.DELETE_ON_KEY]
        warnings.append("image {0} in {1}: DeleteOn tag {2}; the image is kept".format(image["ImageId"], region, exc))
    state = purge_rule.state_of(image.get("State"), "available")
    return purge_rule.Backup(
        image["ImageId"], state, image.get("State"), image.get("CreationDate"), expiry, bad_expiry, image
    )


def image_backup(image, region, warnings):
    """An AMI as the purge rule sees it (state, creation time, DeleteOn); a bad DeleteOn is warned about."""
    return _backup(image, contract.tag_dict(image), warnings, region)


def _purge_candidates(region, images, account_id, adopt_legacy, warnings):
    """The account's managed (and, with adopt_legacy, legacy) AMIs grouped by source instance and origin
    (copies from another region or account are a group of their own), and the count of the account's AMIs left out for want of the managed marker.
    """
    groups, unmanaged = {}, {"with_delete_on": 0, "without": 0}
    for image in images:
        if image.get("OwnerId") != account_id:
            continue
        tags = contract.tag_dict(image)
        managed = contract.is_managed(tags)
        if not managed and not (adopt_legacy and contract.DELETE_ON_KEY in tags):
            unmanaged["with_delete_on" if contract.DELETE_ON_KEY in tags else "without"] += 1
            continue
        key = (image_source(image, tags), contract.copy_origin(tags))
        groups.setdefault(key, []).append(_backup(image, tags, warnings, region))
    return groups, unmanaged


def _unmanaged_note(region, unmanaged, adopt_legacy):
    count = unmanaged["with_delete_on"] + unmanaged["without"]
    if not count:
        return None
    note = "{0} AMI(s) in {1} without the {2} marker left alone".format(count, region, contract.MARKER_KEY)
    if unmanaged["with_delete_on"] and not adopt_legacy:
        note += "; adopt_legacy to include the {0} with a DeleteOn tag".format(unmanaged["with_delete_on"])
    return note


def plan_purge(region, images, account_id, as_of, keep_min=1, keep_last=None, adopt_legacy=False):
    """Decide, for one region, which AMIs to deregister and which snapshots to delete after them.

    ``images``: every AMI the account owns in the region (all of them, not only ours, so that a
    snapshot another AMI uses is seen).  ``as_of``: the date whose expired backups go.
    ``keep_min``/``keep_last``: see purge_rule.

    Returns ``{"todo": [...], "snapshots": [...], "skipped": [...], "warnings": [...], "notes": [...]}``:
    ``todo`` items are result-shaped AMIs to deregister (image_id, name, region, source_instance_id,
    delete_on, reason, legacy, state, snapshot_ids); ``snapshots`` lists each snapshot that may go
    once all the AMIs in its ``image_ids`` are deregistered, provided the account owns it (see
    ``snapshot_kept_reason``); ``skipped`` gives every managed image that stays and every snapshot
    of a leaving image that another AMI keeps using, with the reason.
    """
    purge_rule.check_counts(keep_min, keep_last)
    skipped, warnings = [], []
    groups, unmanaged = _purge_candidates(region, images, account_id, adopt_legacy, warnings)

    deregister = []
    for source, origin in sorted(groups):
        label = _source_label(source) + contract.origin_text(origin)
        decisions = purge_rule.decide(
            groups[(source, origin)], as_of, keep_min, keep_last, label, "backup", "available"
        )
        for backup, purge, reason in decisions:
            image = backup.item
            if not purge:
                skipped.append(_skipped_image(image, region, reason, source))
                continue
            deregister.append(
                {
                    "image_id": image["ImageId"],
                    "name": image.get("Name"),
                    "region": region,
                    "source_instance_id": None if source == UNKNOWN_SOURCE else source,
                    "delete_on": backup.expiry.isoformat() if backup.expiry else None,
                    "reason": reason,
                    "legacy": not contract.is_managed(contract.tag_dict(image)),
                    "state": image.get("State"),
                    "snapshot_ids": [],
                }
            )

    to_delete, kept_snapshots = _plan_snapshots(region, deregister, images)
    return {
        "todo": deregister,
        "snapshots": to_delete,
        "skipped": skipped + kept_snapshots,
        "warnings": warnings,
        "notes": [note for note in [_unmanaged_note(region, unmanaged, adopt_legacy)] if note],
    }


def _plan_snapshots(region, deregister, images):
    """The snapshots of the leaving AMIs that no remaining AMI uses, and those that stay (with reasons).

    A snapshot two leaving AMIs share is planned once, with both AMIs.  Fills each deregister
    item's ``snapshot_ids``.
    """
    by_id = {image["ImageId"]: image for image in images}
    leaving = {item["image_id"] for item in deregister}
    users = snapshot_users(image for image in images if image["ImageId"] not in leaving)

    planned, kept = {}, []
    for item in deregister:
        image = by_id[item["image_id"]]
        for snapshot_id in image_snapshot_ids(image):
            if snapshot_id in users:
                reason = "also used by {0}, which stays registered".format(", ".join(sorted(users[snapshot_id])))
                kept.append(_skipped_snapshot(snapshot_id, image, region, reason))
            else:
                planned.setdefault(snapshot_id, []).append(image["ImageId"])
                item["snapshot_ids"].append(snapshot_id)
    to_delete = [
        {
            "snapshot_id": snapshot_id,
            "image_id": image_ids[0],
            "image_ids": image_ids,
            "name": by_id[image_ids[0]].get("Name"),
            "region": region,
        }
        for snapshot_id, image_ids in planned.items()
    ]
    return to_delete, kept


def snapshot_kept_reason(snapshot_id, owners, account_id):
    """Why a planned snapshot stays although its AMIs leave: it is not the account's; None when it may go.

    ``owners``: snapshot id -> OwnerId from DescribeSnapshots with OwnerIds=self (AWS lists only
    the account's snapshots there; the owner is checked again because not every endpoint does).
    """
    if snapshot_id not in owners:
        return "not among this account's snapshots"
    if owners[snapshot_id] != account_id:
        return "owned by {0}, not by this account".format(owners[snapshot_id])
    return None


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


def account_of(images):
    """The account id: the owner of the images DescribeImages returned for Owners=self."""
    owners = {image.get("OwnerId") for image in images if image.get("OwnerId")}
    return owners.pop() if len(owners) == 1 else None
