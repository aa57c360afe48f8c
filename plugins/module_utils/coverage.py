# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Backup coverage: every source and every backup of a region gets exactly one status.

Plain functions from described data (instances, volumes, AMIs, snapshots) to classified items;
``coverage_report`` turns them into counts, percentages and the JSON, HTML and Markdown files.

Sources (instances and volumes), worst first: ``missing`` (no backup at all), ``last_failed``
(the newest backup failed), ``pending_too_long`` (the newest backup is still pending after
``pending_limit``), ``stale`` (the newest successful backup is older than the RPO),
``not_restore_tested`` (with ``require_restore_test``: no ``LastRestoreTest`` tag reading
``<when>:passed`` within ``restore_test_max_age``), ``ok``.

Backups (AMIs, and the snapshots no registered AMI uses; an AMI's snapshots belong to it),
worst first: ``shared_public`` (anyone may launch or create volumes from it), ``expired_not_purged``
(past DeleteOn and the purge rule would remove it: the purge has not run), ``orphan`` (its source
is gone; ``purge``/``purge_reason`` say whether keep_min still keeps it), ``unmanaged`` (made by DLM,
AWS Backup or something else, named in ``maker``), ``ok``.

A source's backups are those of any maker: an instance's AMIs (by SourceInstanceId), a volume's
snapshots (by VolumeId, those inside AMIs included, since a volume restores from them).
"""

import datetime

from ansible_collections.opsvault.aws_backup.plugins.module_utils import ami
from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils import values

OK = "ok"
MISSING = "missing"
LAST_FAILED = "last_failed"
PENDING_TOO_LONG = "pending_too_long"
STALE = "stale"
NOT_RESTORE_TESTED = "not_restore_tested"
SHARED_PUBLIC = "shared_public"
EXPIRED_NOT_PURGED = "expired_not_purged"
ORPHAN = "orphan"
UNMANAGED = "unmanaged"

# Worst first: the order of the report's tables and the precedence when several apply.
SOURCE_STATUSES = (MISSING, LAST_FAILED, PENDING_TOO_LONG, STALE, NOT_RESTORE_TESTED, OK)
BACKUP_STATUSES = (SHARED_PUBLIC, EXPIRED_NOT_PURGED, ORPHAN, UNMANAGED, OK)

INSTANCE, VOLUME, IMAGE, SNAPSHOT, S3_MIRROR = "instance", "volume", "image", "snapshot", "s3_mirror"
MIRROR_REGION = "local"  # a mirror is a directory on the backup host, in no AWS region
SCOPE_TAGGED, SCOPE_ALL = "tagged", "all"
SCOPES = (SCOPE_TAGGED, SCOPE_ALL)

MAKER_COLLECTION = contract.MARKER_VALUE
MAKER_DLM = "dlm"
MAKER_AWS_BACKUP = "aws_backup"
MAKER_OTHER = "other"
# Tags AWS writes on what its services make (the aws: prefix is reserved to AWS).
# https://docs.aws.amazon.com/ebs/latest/userguide/dlm-tagging.html
# https://docs.aws.amazon.com/aws-backup/latest/devguide/recov-point-create-on-demand-backup.html
DLM_PREFIX = "aws:dlm:"
DLM_POLICY_KEY = "aws:dlm:lifecycle-policy-id"
AWS_BACKUP_PREFIX = "aws:backup:"
AWS_BACKUP_SOURCE_KEY = "aws:backup:source-resource"

RESTORE_TEST_KEY = "LastRestoreTest"
RESTORE_PASSED = "passed"

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def maker_of(tags):
    """``(maker, detail)``: who made a backup, from its tags (detail: the DLM policy, the AWS Backup source)."""
    if contract.is_managed(tags):
        return MAKER_COLLECTION, None
    if any(key.startswith(DLM_PREFIX) for key in tags):
        return MAKER_DLM, tags.get(DLM_POLICY_KEY)
    if any(key.startswith(AWS_BACKUP_PREFIX) for key in tags):
        return MAKER_AWS_BACKUP, tags.get(AWS_BACKUP_SOURCE_KEY)
    return MAKER_OTHER, None


def is_selected(tags, options):
    """Whether a source is in the report: every one with ``scope: all``, else those carrying the selector tag."""
    if options["scope"] == SCOPE_ALL:
        return True
    if options["tag_key"] not in tags:
        return False
    return options.get("tag_value") is None or tags[options["tag_key"]] == options["tag_value"]


def restore_test_passed_at(tags):
    """When a ``LastRestoreTest`` tag (``2026-11-20T03:00:00Z:passed``) says a restore test passed; None otherwise."""
    value = (tags.get(RESTORE_TEST_KEY) or "").strip()
    when, _sep, outcome = value.rpartition(":")
    if outcome.strip().lower() != RESTORE_PASSED:
        return None
    try:
        return values.parse_timestamp(when)
    except ValueError:
        return None


def _created(backup):
    try:
        return values.parse_timestamp(backup.created) or _EPOCH
    except ValueError:
        return _EPOCH


def _age(now, moment):
    return max(0, int((now - moment).total_seconds()))


def _rpo_of(region, kind, resource_id, tags, options, warnings):
    value = tags.get(options["rpo_tag"])
    if value is None:
        return options["rpo"]
    try:
        return values.parse_age(value, options["rpo_tag"])
    except ValueError as exc:
        warnings.append(
            "{0} {1} in {2}: {3} tag ignored, {4}; using the rpo {5}".format(
                kind, resource_id, region, options["rpo_tag"], exc, ebs.age_text(options["rpo"], exact=True)
            )
        )
        return options["rpo"]


def source_status(backups, rpo, options, now, source_tags=None):
    """``(status, reason, newest, newest_ok)`` of one source from its backups (purge_rule.Backup tuples)."""
    ordered = sorted(backups, key=_created, reverse=True)
    if not ordered:
        return MISSING, "no backup at all", None, None
    newest = ordered[0]
    newest_ok = next((backup for backup in ordered if backup.state == purge_rule.READY), None)
    if newest.state == purge_rule.FAILED:
        reason = "the newest backup, {0}, is {1}".format(newest.resource_id, newest.aws_state)
        return LAST_FAILED, reason, newest, newest_ok
    if newest.state == purge_rule.PENDING and now - _created(newest) > options["pending_limit"]:
        reason = "the newest backup, {0}, has been pending for {1} (pending_limit {2})".format(
            newest.resource_id,
            ebs.age_text(now - _created(newest)),
            ebs.age_text(options["pending_limit"], exact=True),
        )
        return PENDING_TOO_LONG, reason, newest, newest_ok
    if newest_ok is None:
        reason = "no successful backup yet; {0} is {1}".format(newest.resource_id, newest.aws_state)
        return STALE, reason, newest, newest_ok
    if now - _created(newest_ok) > rpo:
        reason = "the newest successful backup, {0}, is {1} old (RPO {2})".format(
            newest_ok.resource_id, ebs.age_text(now - _created(newest_ok)), ebs.age_text(rpo, exact=True)
        )
        return STALE, reason, newest, newest_ok
    if options["require_restore_test"]:
        tested = [restore_test_passed_at(contract.tag_dict(backup.item)) for backup in ordered]
        tested.append(restore_test_passed_at(source_tags or {}))
        tested = [moment for moment in tested if moment]
        if not tested or now - max(tested) > options["restore_test_max_age"]:
            limit = ebs.age_text(options["restore_test_max_age"], exact=True)
            if tested:
                reason = "the last passed restore test was {0} ago (restore_test_max_age {1})".format(
                    ebs.age_text(now - max(tested)), limit
                )
            else:
                reason = "no {0} tag reading <when>:{1} on it or its backups".format(RESTORE_TEST_KEY, RESTORE_PASSED)
            return NOT_RESTORE_TESTED, reason, newest, newest_ok
    reason = "newest successful backup {0} is {1} old".format(
        newest_ok.resource_id, ebs.age_text(now - _created(newest_ok))
    )
    return OK, reason, newest, newest_ok


def _source_item(region, kind, resource, options, backups, now, warnings):
    resource_id = resource["InstanceId"] if kind == INSTANCE else resource["VolumeId"]
    tags = contract.tag_dict(resource)
    rpo = _rpo_of(region, kind, resource_id, tags, options, warnings)
    status, reason, newest, newest_ok = source_status(backups, rpo, options, now, tags)
    return {
        "kind": kind,
        "resource": resource_id,
        "region": region,
        "name": tags.get(contract.NAME_KEY),
        "policy": ami.policy_of(tags, options) if options["tag_key"] in tags else contract.DEFAULT_POLICY,
        "status": status,
        "reason": reason,
        "rpo_seconds": int(rpo.total_seconds()),
        "backup_count": len(backups),
        "newest_backup": newest.resource_id if newest else None,
        "newest_backup_state": newest.aws_state if newest else None,
        "newest_ok_backup": newest_ok.resource_id if newest_ok else None,
        "newest_ok_age_seconds": _age(now, _created(newest_ok)) if newest_ok else None,
    }


def _purge_decisions(groups, today, keep_min):
    """``{backup id: (purge, reason)}`` by the one purge rule, for the managed backups of each source."""
    decided = {}
    for source in sorted(groups):
        managed = [backup for backup in groups[source] if contract.is_managed(contract.tag_dict(backup.item))]
        label = source if source not in (ami.UNKNOWN_SOURCE, ebs.COPIED_SNAPSHOT_VOLUME_ID) else "an unknown source"
        for backup, purge, reason in purge_rule.decide(managed, today, keep_min, None, label, "backup", "ready"):
            decided[backup.resource_id] = (purge, reason)
    return decided


def _backup_status(kind, backup, public, source, source_exists, maker, decision, today):
    if public:
        return SHARED_PUBLIC, "anyone may {0} it".format("launch" if kind == IMAGE else "create volumes from")
    purge, purge_reason = decision if decision else (None, None)
    if purge and backup.expiry is not None and backup.expiry <= today:
        return EXPIRED_NOT_PURGED, "DeleteOn {0} has passed and the purge would remove it".format(
            backup.expiry.isoformat()
        )
    if source_exists is False:
        reason = "its source {0} is gone".format(source)
        if purge is False:
            reason += "; the purge keeps it: " + purge_reason
        return ORPHAN, reason
    if maker != MAKER_COLLECTION:
        return UNMANAGED, "made by {0}".format(
            {MAKER_DLM: "Data Lifecycle Manager", MAKER_AWS_BACKUP: "AWS Backup"}.get(maker, "something else")
        )
    return OK, purge_reason or "managed by this collection"


def _backup_item(region, kind, backup, source, source_exists, public, decision, now, today):
    tags = contract.tag_dict(backup.item)
    maker, maker_detail = maker_of(tags)
    status, reason = _backup_status(kind, backup, public, source, source_exists, maker, decision, today)
    created = _created(backup)
    purge, purge_reason = decision if decision else (None, None)
    return {
        "kind": kind,
        "resource": backup.resource_id,
        "region": region,
        "name": tags.get(contract.NAME_KEY) or backup.item.get("Name"),
        "source": None if source in (ami.UNKNOWN_SOURCE, ebs.COPIED_SNAPSHOT_VOLUME_ID) else source,
        "maker": maker,
        "maker_detail": maker_detail,
        "state": backup.aws_state,
        "created": created.isoformat() if created != _EPOCH else None,
        "age_seconds": _age(now, created) if created != _EPOCH else None,
        "delete_on": backup.expiry.isoformat() if backup.expiry else tags.get(contract.DELETE_ON_KEY),
        "status": status,
        "reason": reason,
        "purge": purge,
        "purge_reason": purge_reason,
    }


def _own(resources, account_id):
    return [resource for resource in resources if not account_id or resource.get("OwnerId") in (None, account_id)]


def classify_region(region, described, options, now, account_id=None):
    """Every source and backup of one region with its status.

    ``described``: ``instances`` (not terminated), ``volumes``, ``images`` (Owners=self), ``snapshots``
    (OwnerIds=self) and ``public_snapshot_ids`` (the ids DescribeSnapshots returns for
    RestorableByUserIds=all).  ``options``: scope, tag_key, tag_value, rpo, rpo_tag, pending_limit,
    require_restore_test, restore_test_max_age, keep_min.  Returns ``{"sources", "backups", "warnings"}``.
    """
    warnings = []
    today = now.date()
    images = _own(described["images"], account_id)
    snapshots = _own(described["snapshots"], account_id)
    instances = {item["InstanceId"]: item for item in described["instances"]}
    volumes = {item["VolumeId"]: item for item in described["volumes"]}
    public_snapshots = set(described["public_snapshot_ids"])
    in_images = ami.snapshot_users(images)

    image_groups = {}
    for image in images:
        source = ami.image_source(image, contract.tag_dict(image))
        image_groups.setdefault(source, []).append(ami.image_backup(image, region, warnings))
    snapshot_groups = {}
    for snapshot in snapshots:
        snapshot_groups.setdefault(ebs.snapshot_volume(snapshot), []).append(
            ebs.snapshot_backup(snapshot, region, warnings)
        )

    sources = []
    for kind, found, groups in ((INSTANCE, instances, image_groups), (VOLUME, volumes, snapshot_groups)):
        for resource_id in sorted(found):
            if is_selected(contract.tag_dict(found[resource_id]), options):
                backups = groups.get(resource_id, [])
                sources.append(_source_item(region, kind, found[resource_id], options, backups, now, warnings))

    own_snapshot_groups = {
        source: [backup for backup in group if backup.resource_id not in in_images]
        for source, group in snapshot_groups.items()
    }
    backups = []
    for kind, groups, found, unknown in (
        (IMAGE, image_groups, instances, ami.UNKNOWN_SOURCE),
        (SNAPSHOT, own_snapshot_groups, volumes, ebs.COPIED_SNAPSHOT_VOLUME_ID),
    ):
        decisions = _purge_decisions(groups, today, options["keep_min"])
        for source in sorted(groups):
            exists = None if source == unknown else source in found
            for backup in groups[source]:
                public = backup.item.get("Public") is True or backup.resource_id in public_snapshots
                decision = decisions.get(backup.resource_id)
                backups.append(_backup_item(region, kind, backup, source, exists, public, decision, now, today))
    return {"sources": sources, "backups": backups, "warnings": warnings}


def classify_mirror(dest, record, problem, rpo, now):
    """An S3 mirror's dest as a source: ``ok`` when its last complete run (``record``, as s3_index.read_last_run
    gives it, or None with ``problem``) finished within the RPO, ``stale`` when before, ``missing`` without one."""
    item = {
        "kind": S3_MIRROR,
        "resource": dest,
        "region": MIRROR_REGION,
        "name": "s3://{0}/{1}".format(record.get("bucket"), record.get("prefix") or "") if record else None,
        "policy": S3_MIRROR,
        "rpo_seconds": int(rpo.total_seconds()),
        "backup_count": 1 if record else 0,
        "newest_backup": None,
        "newest_backup_state": None,
        "newest_ok_backup": None,
        "newest_ok_age_seconds": None,
    }
    finished = None
    if record:
        try:
            finished = values.parse_timestamp(record["finished_at"])
        except ValueError:
            problem = "the last run's finish time {0!r} is not a timestamp".format(record["finished_at"])
    if finished is None:
        return dict(item, status=MISSING, reason=problem, backup_count=0)
    age = now - finished
    item.update(newest_backup=finished.isoformat(), newest_ok_backup=finished.isoformat())
    item.update(newest_backup_state="complete", newest_ok_age_seconds=_age(now, finished))
    if age > rpo:
        reason = "the last complete run finished {0} ago (RPO {1})".format(
            ebs.age_text(age), ebs.age_text(rpo, exact=True)
        )
        return dict(item, status=STALE, reason=reason)
    return dict(item, status=OK, reason="the last complete run finished {0} ago".format(ebs.age_text(age)))
