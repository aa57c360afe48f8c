# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Locks against deletion: what vault_guard locks or protects, and what the purges must leave alone.

Plain functions from described data to plans (the regional engine's ``todo``/``skipped``), and the
few calls that carry a plan out:

* an EBS snapshot lock (LockSnapshot) on each managed snapshot until its DeleteOn;
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_LockSnapshot.html
* AMI deregistration protection on each managed AMI;
  https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_EnableImageDeregistrationProtection.html
* a Recycle Bin retention rule per resource type, found again by its description.
  https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_CreateRule.html
"""

import datetime

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

LOCK_MODES = ("governance", "compliance")
GOVERNANCE, COMPLIANCE = LOCK_MODES
COOL_OFF_HOURS = (1, 72)  # LockSnapshot CoolOffPeriod
RECYCLE_BIN_RETENTION_DAYS = (1, 365)  # rbin RetentionPeriod
RECYCLE_BIN_UNLOCK_DELAY_DAYS = (7, 30)  # rbin UnlockDelay
RECYCLE_BIN_RESOURCE_TYPES = ("EBS_SNAPSHOT", "EC2_IMAGE")
RECYCLE_BIN_SELECTIONS = ("tag", "region")
# DescribeLockedSnapshots LockState values under which the snapshot cannot be deleted.
HOLDING_LOCK_STATES = ("governance", "compliance-cooloff", "compliance")
# DeleteSnapshot's answer for a snapshot whose lock has not expired.
LOCKED_SNAPSHOT_CODES = ("SnapshotLocked",)
# DeregisterImage's answer for an AMI with deregistration protection.
PROTECTED_IMAGE_CODES = ("OperationNotPermitted",)
PROTECTED = "protected"
PROTECTION_COOLDOWN = datetime.timedelta(hours=24)

KIND_SNAPSHOT_LOCK = "snapshot_lock"
KIND_IMAGE_PROTECTION = "image_protection"
KIND_RETENTION_RULE = "retention_rule"

_LOCKABLE_SNAPSHOT_STATES = ("pending", "completed")


# ---------------------------------------------------------------- options


def _within(option, value, limits, unit):
    if value is None or not limits[0] <= value <= limits[1]:
        raise ValueError(
            "{0} must be between {1} and {2} {3} (AWS's limits), got {4}".format(
                option, limits[0], limits[1], unit, value
            )
        )
    return value


def check_options(params):
    """vault_guard's options read and checked; ValueError names the option and the value."""
    mode = params["lock_mode"]
    cool_off = params.get("cool_off_period")
    if mode == COMPLIANCE:
        if cool_off is None:
            raise ValueError(
                "lock_mode compliance needs cool_off_period: the hours (1 to 72) in which the lock can still be"
                " removed, or 0 for a compliance lock that no one can remove from the start"
            )
        if cool_off != 0:
            _within("cool_off_period", cool_off, COOL_OFF_HOURS, "hours")
    elif cool_off is not None:
        raise ValueError("cool_off_period {0} needs lock_mode compliance (governance locks have none)".format(cool_off))
    recycle_bin = params.get("recycle_bin")
    if recycle_bin is not None:
        recycle_bin = dict(recycle_bin)
        _within("recycle_bin.retention_days", recycle_bin["retention_days"], RECYCLE_BIN_RETENTION_DAYS, "days")
        if not recycle_bin["resource_types"]:
            raise ValueError("recycle_bin.resource_types must name EBS_SNAPSHOT, EC2_IMAGE or both")
        if recycle_bin["lock"]:
            if recycle_bin["selection"] != "region":
                raise ValueError(
                    "recycle_bin.lock needs recycle_bin.selection region: AWS locks only Region-level retention rules,"
                    " not rules that select resources by tag"
                )
            _within(
                "recycle_bin.unlock_delay_days", recycle_bin["unlock_delay_days"], RECYCLE_BIN_UNLOCK_DELAY_DAYS, "days"
            )
    return {
        "lock_snapshots": params["lock_snapshots"],
        "lock_mode": mode,
        "cool_off_period": cool_off or None,
        "protect_images": params["protect_images"],
        "deregistration_cooldown": params["deregistration_cooldown"],
        "recycle_bin": recycle_bin,
    }


# ---------------------------------------------------------------- snapshot locks


def lock_expiry(delete_on_date):
    """The moment a backup's lock ends: the start (00:00 UTC) of its DeleteOn day, when the purge may take it."""
    return datetime.datetime.combine(delete_on_date, datetime.time(0, tzinfo=datetime.timezone.utc))


def _expires(lock):
    return parse_timestamp(lock.get("LockExpiresOn"))


def lock_holds(lock, now):
    """Whether a DescribeLockedSnapshots item still keeps its snapshot from deletion."""
    if not lock or lock.get("LockState") not in HOLDING_LOCK_STATES:
        return False
    expires = _expires(lock)
    return expires is None or expires > now


def locked_until(lock):
    expires = _expires(lock)
    return expires.isoformat() if expires else PROTECTED


def _snapshot_skipped(snapshot, region, reason, **details):
    return skipped_entry(snapshot["SnapshotId"], region, reason, snapshot_id=snapshot["SnapshotId"], **details)


def _delete_on_of(tags, left_alone):
    """``(date, None)`` or ``(None, reason)`` for a backup's DeleteOn tag; ``left_alone``: ``not locked``..."""
    try:
        delete_on = contract.delete_on(tags)
    except ValueError as exc:
        return None, "DeleteOn {0}: {1}".format(exc, left_alone)
    if delete_on is None:
        return None, "has no DeleteOn tag: {0}".format(left_alone)
    return delete_on, None


def plan_snapshot_locks(region, snapshots, locks, options, now, account_id=None):
    """Which managed snapshots to lock until their DeleteOn, and which are left alone (with the reason).

    ``snapshots``: DescribeSnapshots items (managed marker); ``locks``: ``{snapshot id: LockedSnapshotsInfo}``.
    A lock that already holds until at least the DeleteOn is left alone; a shorter one is extended (a
    compliance lock past its cooling-off period can only be extended, in compliance mode).
    """
    todo, skipped = [], []
    for snapshot in sorted(snapshots, key=lambda item: item["SnapshotId"]):
        tags = contract.tag_dict(snapshot)
        if not contract.is_managed(tags) or (account_id and snapshot.get("OwnerId") not in (None, account_id)):
            continue
        if snapshot.get("State") not in _LOCKABLE_SNAPSHOT_STATES:
            skipped.append(_snapshot_skipped(snapshot, region, "snapshot is {0}".format(snapshot.get("State"))))
            continue
        delete_on, reason = _delete_on_of(tags, "not locked")
        if reason:
            skipped.append(_snapshot_skipped(snapshot, region, reason))
            continue
        until = lock_expiry(delete_on)
        if until <= now:
            reason = "DeleteOn {0} has come: left for the purge, not locked".format(delete_on.isoformat())
            skipped.append(_snapshot_skipped(snapshot, region, reason))
            continue
        lock = locks.get(snapshot["SnapshotId"])
        holding = lock_holds(lock, now)
        if holding and _expires(lock) >= until:
            reason = "already locked ({0}) until {1}".format(lock["LockState"], locked_until(lock))
            skipped.append(_snapshot_skipped(snapshot, region, reason, locked_until=locked_until(lock)))
            continue
        mode, cool_off = options["lock_mode"], options["cool_off_period"]
        if holding and lock["LockState"] == "compliance-cooloff" and mode == GOVERNANCE:
            reason = (
                "locked (compliance-cooloff) until {0}, before its DeleteOn; lock_mode governance would weaken it:"
                " not changed".format(locked_until(lock))
            )
            skipped.append(_snapshot_skipped(snapshot, region, reason, locked_until=locked_until(lock)))
            continue
        if holding and lock["LockState"] == COMPLIANCE:
            mode, cool_off = COMPLIANCE, None  # AWS allows only a longer compliance lock now
        todo.append(
            {
                "kind": KIND_SNAPSHOT_LOCK,
                "resource": snapshot["SnapshotId"],
                "snapshot_id": snapshot["SnapshotId"],
                "region": region,
                "delete_on": delete_on.isoformat(),
                "lock_mode": mode,
                "cool_off_period": cool_off if mode == COMPLIANCE else None,
                "locked_until": until.isoformat(),
                "previous_lock": {"state": lock["LockState"], "until": locked_until(lock)} if holding else None,
            }
        )
    return todo, skipped


def lock_snapshot(client, item):
    params = {
        "SnapshotId": item["snapshot_id"],
        "LockMode": item["lock_mode"],
        "ExpirationDate": parse_timestamp(item["locked_until"]),
    }
    if item["cool_off_period"]:
        params["CoolOffPeriod"] = item["cool_off_period"]
    response = client.lock_snapshot(**params)
    return dict(item, state="locked", lock_state=response.get("LockState"))


def describe_snapshot_locks(client, snapshot_ids=None):
    """``{snapshot id: LockedSnapshotsInfo}`` of the region (or of ``snapshot_ids``), every page.

    botocore has no paginator for DescribeLockedSnapshots; its NextToken is followed here.
    """
    params = {"SnapshotIds": list(snapshot_ids)} if snapshot_ids else {"MaxResults": 1000}
    found = {}
    while True:
        response = client.describe_locked_snapshots(**params)
        found.update((lock["SnapshotId"], lock) for lock in response.get("Snapshots") or [])
        token = response.get("NextToken")
        if not token:
            return found
        params["NextToken"] = token


# ---------------------------------------------------------------- AMI deregistration protection


def protection_of(image, now):
    """``(protected, locked_until)`` from an AMI's ``DeregistrationProtection`` as DescribeImages words it:
    ``enabled``, ``enabled-with-cooldown``, ``disabled-until <time>`` (a cooldown still running) or ``disabled``."""
    value = (image.get("DeregistrationProtection") or "disabled").strip()
    if value.startswith("enabled"):
        return True, PROTECTED
    if value.startswith("disabled-until"):
        until = parse_timestamp(value.split(None, 1)[1]) if " " in value else None
        if until is None or until > now:
            return True, until.isoformat() if until else PROTECTED
    return False, None


def _image_skipped(image, region, reason):
    return skipped_entry(image["ImageId"], region, reason, image_id=image["ImageId"], name=image.get("Name"))


def plan_image_protection(region, images, options, now, account_id=None):
    """Which managed AMIs to protect from deregistration, and which are left alone (with the reason)."""
    wanted = "enabled-with-cooldown" if options["deregistration_cooldown"] else "enabled"
    todo, skipped = [], []
    for image in sorted(images, key=lambda item: item["ImageId"]):
        tags = contract.tag_dict(image)
        if not contract.is_managed(tags) or (account_id and image.get("OwnerId") != account_id):
            continue
        current = (image.get("DeregistrationProtection") or "disabled").strip()
        if image.get("State") != "available":
            skipped.append(_image_skipped(image, region, "AMI is {0}".format(image.get("State"))))
            continue
        delete_on, reason = _delete_on_of(tags, "not protected")
        if not reason and lock_expiry(delete_on) <= now:
            reason = "DeleteOn {0} has come: left for the purge, not protected".format(delete_on.isoformat())
        if not reason and current == wanted:
            reason = "already protected from deregistration ({0})".format(current)
        if reason:
            skipped.append(_image_skipped(image, region, reason))
            continue
        todo.append(
            {
                "kind": KIND_IMAGE_PROTECTION,
                "resource": image["ImageId"],
                "image_id": image["ImageId"],
                "name": image.get("Name"),
                "region": region,
                "delete_on": delete_on.isoformat(),
                "with_cooldown": options["deregistration_cooldown"],
                "previous_protection": current,
            }
        )
    return todo, skipped


def protect_image(client, item):
    client.enable_image_deregistration_protection(ImageId=item["image_id"], WithCooldown=item["with_cooldown"])
    return dict(item, state="protected")


# ---------------------------------------------------------------- Recycle Bin


def rule_description(resource_type, selection):
    """The description that marks a retention rule as ours (ListRules finds it again by this)."""
    scope = (
        "every deleted {0} of the region".format(resource_type)
        if selection == "region"
        else "deleted {0} tagged {1}={2}".format(resource_type, contract.MARKER_KEY, contract.MARKER_VALUE)
    )
    return "{0}: keeps {1}".format(contract.MARKER_VALUE, scope)


def list_rules(client, resource_types):
    """``{resource type: [RuleSummary]}`` of one region."""
    return {
        resource_type: paginate(client, "list_rules", "Rules", ResourceType=resource_type)
        for resource_type in resource_types
    }


def _rule_days(rule):
    return (rule.get("RetentionPeriod") or {}).get("RetentionPeriodValue")


def plan_retention_rules(region, rules, settings):
    """Per resource type: create our retention rule, update its retention, lock it, or leave it (with the reason).

    ``rules``: ``{resource type: [RuleSummary]}`` (ListRules); ``settings``: the ``recycle_bin`` option.
    A rule that is locked (or unlocking) cannot be changed, so a different retention is reported, not forced.
    """
    todo, skipped = [], []
    days = settings["retention_days"]
    for resource_type in settings["resource_types"]:
        description = rule_description(resource_type, settings["selection"])
        ours = [rule for rule in rules.get(resource_type, []) if rule.get("Description") == description]
        base = {
            "kind": KIND_RETENTION_RULE,
            "region": region,
            "resource_type": resource_type,
            "description": description,
            "retention_days": days,
            "selection": settings["selection"],
            "unlock_delay_days": settings["unlock_delay_days"] if settings["lock"] else None,
        }
        if not ours:
            todo.append(dict(base, resource=resource_type, rule_id=None, steps=["create"]))
            continue
        rule = ours[0]
        lock_state = rule.get("LockState")
        steps = []
        if _rule_days(rule) != days:
            if lock_state in ("locked", "pending_unlock"):
                reason = "retention rule {0} is {1}: it keeps its {2} days (asked {3}); {4}".format(
                    rule["Identifier"], lock_state, _rule_days(rule), days, "a locked rule can't be changed"
                )
                skipped.append(skipped_entry(rule["Identifier"], region, reason, rule_id=rule["Identifier"]))
            else:
                steps.append("update")
        if settings["lock"] and lock_state != "locked":
            steps.append("lock")
        if steps:
            todo.append(dict(base, resource=rule["Identifier"], rule_id=rule["Identifier"], steps=steps))
        elif _rule_days(rule) == days:
            reason = "retention rule {0} for {1} already keeps them {2} days{3}".format(
                rule["Identifier"], resource_type, days, " (locked)" if lock_state == "locked" else ""
            )
            skipped.append(skipped_entry(rule["Identifier"], region, reason, rule_id=rule["Identifier"]))
    return todo, skipped


def _lock_configuration(days):
    return {"UnlockDelay": {"UnlockDelayValue": days, "UnlockDelayUnit": "DAYS"}}


def apply_retention_rule(client, item):
    """Create, update and/or lock one retention rule; returns the result item with its id and lock state."""
    rule_id, lock_state = item["rule_id"], None
    retention = {"RetentionPeriodValue": item["retention_days"], "RetentionPeriodUnit": "DAYS"}
    for step in item["steps"]:
        if step == "create":
            params = {
                "ResourceType": item["resource_type"],
                "RetentionPeriod": retention,
                "Description": item["description"],
                "Tags": [{"Key": contract.MARKER_KEY, "Value": contract.MARKER_VALUE}],
            }
            if item["selection"] == "tag":
                params["ResourceTags"] = [
                    {"ResourceTagKey": contract.MARKER_KEY, "ResourceTagValue": contract.MARKER_VALUE}
                ]
            if item["unlock_delay_days"]:
                params["LockConfiguration"] = _lock_configuration(item["unlock_delay_days"])
            response = client.create_rule(**params)
            rule_id, lock_state = response["Identifier"], response.get("LockState")
        elif step == "update":
            client.update_rule(Identifier=rule_id, RetentionPeriod=retention)
        elif step == "lock":
            lock_state = client.lock_rule(
                Identifier=rule_id, LockConfiguration=_lock_configuration(item["unlock_delay_days"])
            ).get("LockState")
    return dict(item, resource=rule_id, rule_id=rule_id, lock_state=lock_state, state="applied")


# ---------------------------------------------------------------- what the purges leave alone


def locked_snapshot_entry(snapshot_id, region, lock, **details):
    """The ``skipped_resources`` item of a snapshot a lock keeps."""
    reason = "locked ({0}) until {1}".format(lock.get("LockState"), locked_until(lock))
    return skipped_entry(
        snapshot_id, region, reason, snapshot_id=snapshot_id, locked_until=locked_until(lock), **details
    )


def hold_locked_snapshots(region, todo, locks, now, details=None):
    """``(todo, skipped)``: the planned snapshot deletions without the snapshots a lock still keeps."""
    kept, skipped = [], []
    for item in todo:
        lock = locks.get(item["snapshot_id"])
        if lock_holds(lock, now):
            extra = {key: item[key] for key in details or () if key in item}
            entry = locked_snapshot_entry(item["snapshot_id"], region, lock, **extra)
            entry["reason"] = (
                "{0}; {1}".format(item["reason"], entry["reason"]) if item.get("reason") else entry["reason"]
            )
            skipped.append(entry)
        else:
            kept.append(item)
    return kept, skipped


def is_locked_error(exc):
    """Whether a DeleteSnapshot failure is AWS refusing a locked snapshot."""
    return isinstance(exc, ClientError) and error_code(exc) in LOCKED_SNAPSHOT_CODES


def is_protected_error(exc):
    """Whether a DeregisterImage failure is AWS refusing an AMI with deregistration protection."""
    return isinstance(exc, ClientError) and error_code(exc) in PROTECTED_IMAGE_CODES


def hold_protected_images(region, region_plan, images, allow_removal, now):
    """The AMI purge's plan without the AMIs that deregistration protection keeps.

    ``region_plan``: ami.plan_purge's; ``images``: ``{image id: DescribeImages item}``. With
    ``allow_removal``, an AMI protected without cooldown is unprotected right before it is deregistered
    (``remove_protection`` on its item); one protected with the 24-hour cooldown is unprotected in this
    run (``unprotect``) and stays, since AWS refuses its deregistration until the cooldown ends. Returns
    the plan with ``todo``, ``snapshots``, ``skipped`` and ``unprotect`` updated.
    """
    todo, held, unprotect = [], set(), []
    skipped = list(region_plan["skipped"])
    for item in region_plan["todo"]:
        image = images.get(item["image_id"], {})
        protected, until = protection_of(image, now)
        current = (image.get("DeregistrationProtection") or "disabled").strip()
        if not protected:
            todo.append(item)
            continue
        if allow_removal and current == "enabled":
            todo.append(dict(item, remove_protection=True))
            continue
        held.add(item["image_id"])
        if allow_removal and current == "enabled-with-cooldown":
            until = (now + PROTECTION_COOLDOWN).isoformat()
            unprotect.append(dict(item, state="unprotected", deregistrable_after=until))
            reason = "{0}; deregistration protection removed, AWS allows the deregistration after {1}".format(
                item["reason"], until
            )
        else:
            reason = "{0}; protected from deregistration ({1}){2}".format(
                item["reason"], current, "" if allow_removal else ", remove_deregistration_protection is false"
            )
        skipped.append(
            skipped_entry(
                item["image_id"],
                region,
                reason,
                image_id=item["image_id"],
                name=item.get("name"),
                source_instance_id=item.get("source_instance_id"),
                locked_until=until,
            )
        )
    snapshots = []
    for snapshot in region_plan["snapshots"]:
        blocking = sorted(held.intersection(snapshot["image_ids"]))
        if blocking:
            reason = "not deleted: {0} stays registered (deregistration protection)".format(", ".join(blocking))
            skipped.append(
                skipped_entry(
                    snapshot["snapshot_id"],
                    region,
                    reason,
                    snapshot_id=snapshot["snapshot_id"],
                    image_id=snapshot["image_id"],
                    name=snapshot.get("name"),
                )
            )
        else:
            snapshots.append(snapshot)
    remaining = {snapshot["snapshot_id"] for snapshot in snapshots}
    for item in todo:
        item["snapshot_ids"] = [snapshot_id for snapshot_id in item["snapshot_ids"] if snapshot_id in remaining]
    return dict(region_plan, todo=todo, snapshots=snapshots, skipped=skipped, unprotect=unprotect)


def lock_now(client, snapshot_id, now):
    """The snapshot's lock if one holds now (a lock set after the plan was made), else None."""
    lock = describe_snapshot_locks(client, [snapshot_id]).get(snapshot_id)
    return lock if lock_holds(lock, now) else None


def refused_for_lock(client, snapshot_id, exc, now):
    """The lock that made DeleteSnapshot fail, or None when the failure is something else.

    AWS's code for a locked snapshot says so; any other client error is checked against the snapshot's
    lock as DescribeLockedSnapshots shows it, so that a lock set between the plan and the delete is never
    a failure of the job."""
    if not isinstance(exc, ClientError):
        return None
    try:
        lock = lock_now(client, snapshot_id, now)
    except (BotoCoreError, ClientError):
        lock = None  # the delete's own error is reported
    if lock is None and is_locked_error(exc):
        lock = {"LockState": error_code(exc)}
    return lock
