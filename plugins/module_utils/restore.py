# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The way back: which backup each source is restored from, and the idempotent create calls.

Plain functions from described data to plans, as the regional engine reads them (``todo``,
``skipped``, ``warnings``, ``notes``, and ``errors``, ``existing``, ``found``, ``bad_input`` of
their own). A backup's state and the newest-first order come from the one purge rule, so a
restore and a purge agree on what "the newest available backup" is:

* the newest ready backup of a source (``available`` AMI, ``completed`` snapshot), or the newest
  created on or before ``as_of``; never a pending or failed one;
* when the newest backup is not ready, the newest ready one before it, and a note that says so;
* a source with no ready backup is reported (``errors`` when it was asked for by id, else
  ``skipped``), never left out silently.

Each create call carries a ClientToken derived from the backup and the request id, so a retried
call returns the first launch instead of launching again.
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html
"""

import hashlib
import json
import time

from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_specifications

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import INSTANCE_STATES
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import skipped_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.values import parse_timestamp

NO_BACKUP = "NoAvailableBackup"
IMDS_V2 = {"HttpTokens": "required", "HttpEndpoint": "enabled"}
# DescribeInstanceStatus takes at most 100 instance ids per call.
STATUS_BATCH = 100
_EBS_SETTINGS = ("VolumeSize", "VolumeType", "Iops", "Throughput")
_NETWORK_KEYS = ("subnet_id", "security_group_ids")


class RestoreInputError(ValueError):
    """Input AWS refuses (a subnet not in the region...): ``code`` is the error code AWS would give."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- ids and tokens


def request_id(settings):
    """A short stable id of a request's settings: the same task run again gets the same id."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def client_token(backup_id, restore_id):
    """The ClientToken of one restore: the same backup and request always give the same token (64 characters)."""
    return hashlib.sha256("{0}/{1}".format(backup_id, restore_id).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- which backup


def _text(timestamp):
    """A timestamp as ISO 8601 text, whether botocore parsed it or not."""
    return timestamp.isoformat() if hasattr(timestamp, "isoformat") else timestamp


def _created_date(backup):
    created = parse_timestamp(backup.created)
    return created.date() if created else None


def choose(backups, as_of=None, label="this source", noun="AMI", ready_word="available"):
    """``(backup, note)``: the backup to restore ``label`` from, or ``(None, reason)``.

    ``backups``: purge_rule.Backup items of one source. ``as_of``: a date; only backups created on
    or before it count. ``note`` says when the newest backup was passed over because it is not ready.
    """
    ordered = purge_rule.newest_first(backups)
    if as_of is not None:
        ordered = [backup for backup in ordered if (_created_date(backup) or as_of) <= as_of]
    when = " on or before {0}".format(as_of.isoformat()) if as_of is not None else ""
    if not ordered:
        return None, "no managed {0} of {1}{2}".format(noun, label, when)
    ready = [backup for backup in ordered if backup.state == purge_rule.READY]
    newest = ordered[0]
    if not ready:
        return None, "no {0} {1} of {2}{3}: the newest, {4}, is {5}".format(
            ready_word, noun, label, when, newest.resource_id, newest.aws_state
        )
    chosen = ready[0]
    if chosen is newest:
        return chosen, None
    return chosen, "the newest {0} of {1}, {2}, is {3}: restored from the newest {4} one, {5}".format(
        noun, label, newest.resource_id, newest.aws_state, ready_word, chosen.resource_id
    )


def image_backups(images):
    """``{source instance id: [Backup]}`` of the managed AMIs (SourceInstanceId tag)."""
    by_source = {}
    for image in images:
        tags = contract.tag_dict(image)
        source = tags.get(contract.SOURCE_INSTANCE_KEY)
        if not source or not contract.is_managed(tags):
            continue
        by_source.setdefault(source, []).append(_image_backup(image))
    return by_source


def _image_backup(image):
    state = purge_rule.state_of(image.get("State"), "available")
    return purge_rule.Backup(image["ImageId"], state, image.get("State"), image.get("CreationDate"), None, None, image)


# ---------------------------------------------------------------- instance restore plan


def delete_on_termination(image):
    """The AMI's EBS mappings with DeleteOnTermination set: no restored volume outlives its instance."""
    mappings = []
    for mapping in image.get("BlockDeviceMappings") or []:
        ebs = mapping.get("Ebs")
        if not ebs or "NoDevice" in mapping:
            continue
        settings = {key: ebs[key] for key in _EBS_SETTINGS if ebs.get(key) is not None}
        mappings.append({"DeviceName": mapping["DeviceName"], "Ebs": dict(settings, DeleteOnTermination=True)})
    return mappings


def run_request(image, instance_type, network, token, tags, options):
    """The RunInstances parameters of one restore: IMDSv2 required, every volume deleted on termination,
    no public IP unless asked, the tags in the call."""
    interface = {
        "DeviceIndex": 0,
        "SubnetId": network["subnet_id"],
        "AssociatePublicIpAddress": bool(options["assign_public_ip"]),
        "DeleteOnTermination": True,
    }
    if network.get("security_group_ids"):
        interface["Groups"] = list(network["security_group_ids"])
    request = {
        "ImageId": image["ImageId"],
        "MinCount": 1,
        "MaxCount": 1,
        "InstanceType": instance_type,
        "ClientToken": token,
        "NetworkInterfaces": [interface],
        "MetadataOptions": dict(IMDS_V2),
        "BlockDeviceMappings": delete_on_termination(image),
        "TagSpecifications": boto3_tag_specifications(tags, ["instance", "volume"]),
    }
    if options.get("key_name"):
        request["KeyName"] = options["key_name"]
    profile = options.get("iam_instance_profile")
    if profile:
        request["IamInstanceProfile"] = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
    return request


def _explicit_images(region, images, options, bad_input):
    """``{source: image}`` of the ``image_ids`` found in the region; refusals go to ``bad_input``."""
    by_id = {image["ImageId"]: image for image in images}
    chosen = {}
    for image_id in options["image_ids"]:
        image = by_id.get(image_id)
        if image is None:
            continue
        source = contract.tag_dict(image).get(contract.SOURCE_INSTANCE_KEY)
        if options["instance_ids"] and source not in options["instance_ids"]:
            bad_input.append(
                "image_ids: {0} in {1} is a backup of {2}, not of {3} (instance_ids)".format(
                    image_id, region, source, ", ".join(options["instance_ids"])
                )
            )
        elif image.get("State") != "available":
            bad_input.append(
                "image_ids: {0} in {1} is {2}; only available AMIs are restored".format(
                    image_id, region, image.get("State")
                )
            )
        elif source in chosen:
            bad_input.append(
                "image_ids: {0} and {1} are both backups of {2}; name one".format(
                    chosen[source]["ImageId"], image_id, source
                )
            )
        else:
            chosen[source] = image
    return chosen


def plan_instance_restores(region, images, instances, restored, network, options):
    """Decide, for one region, which instance to launch from which AMI.

    ``images``: the region's managed AMIs. ``instances``: the sources described (by id, or by the
    selector tag). ``restored``: instances this request already launched (RestoreId tag), found by
    their ClientToken so a rerun launches nothing new. ``network``: ``{subnet_id,
    security_group_ids}`` for the region, or None when none was given for it. ``options``: as
    instance_restore's parse_options returns them.
    """
    bad_input, errors, skipped, todo, existing, notes = [], [], [], [], [], []
    by_source = image_backups(images)
    by_instance = {instance["InstanceId"]: instance for instance in instances}
    explicit = _explicit_images(region, images, options, bad_input)
    by_token = {instance.get("ClientToken"): instance for instance in restored if instance.get("ClientToken")}

    if options["instance_ids"]:
        sources = [source for source in options["instance_ids"] if source in by_source or source in by_instance]
    elif options["image_ids"]:
        sources = sorted(explicit)
    else:
        sources = sorted(by_instance)

    for source in sources:
        asked = bool(options["instance_ids"] or options["image_ids"])
        if source in explicit:
            backup, note = _image_backup(explicit[source]), None
        else:
            backup, note = choose(by_source.get(source, []), options["as_of"], source)
        if backup is None:
            if asked:
                errors.append(error_entry(source, region, "choose_image", code=NO_BACKUP, message=note))
            else:
                skipped.append(skipped_entry(source, region, note))
            continue
        image = backup.item
        source_instance = by_instance.get(source) or {}
        instance_type = options["instance_type"] or source_instance.get("InstanceType")
        failure = None
        if network is None:
            failure = "no network for {0}: networks names no subnet for this region".format(region)
        elif not instance_type:
            failure = "instance_type is not set and the source {0} is gone, so its type is unknown".format(source)
        if failure:
            errors.append(error_entry(source, region, "run_instances", code="InvalidParameterValue", message=failure))
            continue
        if note:
            notes.append(note)
        token = client_token(image["ImageId"], options["restore_id"])
        image_tags = contract.tag_dict(image)
        tags = contract.restore_tags(
            options["tags"],
            {contract.SOURCE_INSTANCE_KEY: source, contract.SOURCE_IMAGE_KEY: image["ImageId"]},
            options["restore_id"],
            name="restore of {0}".format(image_tags.get(contract.NAME_KEY) or source),
        )
        item = {
            "region": region,
            "source_instance_id": source,
            "image_id": image["ImageId"],
            "image_created": image.get("CreationDate"),
            "instance_type": instance_type,
            "subnet_id": network["subnet_id"],
            "security_group_ids": list(network.get("security_group_ids") or []),
            "client_token": token,
            "restore_id": options["restore_id"],
            "note": note,
            "tags": tags,
        }
        if token in by_token:
            existing.append(instance_result(item, by_token[token], launched=False))
        else:
            todo.append(dict(item, request=run_request(image, instance_type, network, token, tags, options)))

    found = set(by_instance) | set(by_source) | set(explicit) | {image["ImageId"] for image in images}
    return {
        "todo": todo,
        "skipped": skipped,
        "notes": notes,
        "errors": errors,
        "existing": existing,
        "found": found,
        "bad_input": bad_input,
    }


def unknown_inputs(options, found, regions):
    """The ``instance_ids``/``image_ids`` that no region knows, each named with its option."""
    where = ", ".join(regions)
    unknown = [
        "instance_ids: {0} is neither an instance nor the source of a managed AMI in {1}".format(source, where)
        for source in options["instance_ids"]
        if source not in found
    ]
    unknown += [
        "image_ids: {0} is not a managed AMI of this account in {1}".format(image_id, where)
        for image_id in options["image_ids"]
        if image_id not in found
    ]
    return unknown


_RESULT_KEYS = (
    "region",
    "source_instance_id",
    "image_id",
    "image_created",
    "instance_type",
    "subnet_id",
    "security_group_ids",
    "client_token",
    "restore_id",
    "note",
    "tags",
)


def instance_result(item, instance=None, launched=True):
    """A restore's result item: the plan with the instance AWS returned (``state: planned`` without one)."""
    result = {key: item[key] for key in _RESULT_KEYS}
    if instance is None:
        return dict(result, instance_id=None, state=PLANNED, launched=False, private_ip_address=None)
    return dict(
        result,
        instance_id=instance["InstanceId"],
        state=(instance.get("State") or {}).get("Name"),
        launched=launched,
        private_ip_address=instance.get("PrivateIpAddress"),
        public_ip_address=instance.get("PublicIpAddress"),
        availability_zone=(instance.get("Placement") or {}).get("AvailabilityZone"),
    )


def launch(client, item):
    """RunInstances with the item's ClientToken; a token already spent on a terminated instance is an error."""
    instance = client.run_instances(**item["request"])["Instances"][0]
    state = (instance.get("State") or {}).get("Name")
    if state in ("shutting-down", "terminated"):
        raise RestoreInputError(
            "IdempotentInstanceTerminated",
            "this restore_id already launched {0} from {1}, which is {2}: set another restore_id to launch "
            "again".format(instance["InstanceId"], item["image_id"], state),
        )
    return instance_result(item, instance)


def _instances(client, filters):
    reservations = paginate(client, "describe_instances", "Reservations", Filters=filters)
    return [instance for reservation in reservations for instance in reservation["Instances"]]


def describe_instance_restores(client, options):
    """One region's ``(managed AMIs, source instances, instances this restore_id launched)``: paginated,
    filtered Describe calls, once per region. ``options``: as instance_restore's parse_options returns them."""
    marker = {"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]}
    images = paginate(client, "describe_images", "Images", Owners=["self"], Filters=[marker])
    if options["instance_ids"] or options["image_ids"]:
        wanted = set(options["instance_ids"])
        wanted.update(
            contract.tag_dict(image).get(contract.SOURCE_INSTANCE_KEY)
            for image in images
            if image["ImageId"] in options["image_ids"]
        )
        filters = [{"Name": "instance-id", "Values": sorted(filter(None, wanted))}]
    else:
        selector = "tag:" + options["tag_key"] if options["tag_value"] else "tag-key"
        filters = [
            {"Name": selector, "Values": [options["tag_value"] or options["tag_key"]]},
            {"Name": "instance-state-name", "Values": list(INSTANCE_STATES)},
        ]
    instances = _instances(client, filters) if filters[0]["Values"] else []
    restored = _instances(client, [{"Name": "tag:" + contract.RESTORE_ID_KEY, "Values": [options["restore_id"]]}])
    return images, instances, restored


# ---------------------------------------------------------------- network


def parse_networks(subnet_id, security_group_ids, networks):
    """``(networks by region, network)``: one of them None. Raises ValueError naming the option and value."""
    if bool(subnet_id) == bool(networks):
        raise ValueError(
            "set one of subnet_id and networks, got subnet_id={0!r} networks={1!r}".format(subnet_id, networks)
        )
    if subnet_id:
        return None, {"subnet_id": subnet_id, "security_group_ids": list(security_group_ids or [])}
    by_region = {}
    for region, network in networks.items():
        if not isinstance(network, dict) or not network.get("subnet_id") or set(network) - set(_NETWORK_KEYS):
            raise ValueError(
                "networks {0!r}: give a dict with subnet_id and optional security_group_ids, got {1!r}".format(
                    region, network
                )
            )
        by_region[region] = {
            "subnet_id": network["subnet_id"],
            "security_group_ids": list(network.get("security_group_ids") or []),
        }
    return by_region, None


def check_network(client, region, network):
    """Raise RestoreInputError naming the value unless the subnet and security groups are in ``region``."""
    subnet_filter = [{"Name": "subnet-id", "Values": [network["subnet_id"]]}]
    if not client.describe_subnets(Filters=subnet_filter).get("Subnets"):
        raise RestoreInputError(
            "InvalidSubnetID.NotFound", "subnet_id {0} is not a subnet in {1}".format(network["subnet_id"], region)
        )
    if network["security_group_ids"]:
        group_filter = [{"Name": "group-id", "Values": network["security_group_ids"]}]
        groups = client.describe_security_groups(Filters=group_filter).get("SecurityGroups", [])
        missing = sorted(set(network["security_group_ids"]) - {group["GroupId"] for group in groups})
        if missing:
            raise RestoreInputError(
                "InvalidGroup.NotFound", "security_group_ids {0} not in {1}".format(", ".join(missing), region)
            )


# ---------------------------------------------------------------- waiting


def recovery_errors(instances, recovered, timeout):
    """Set each instance's ``recovery_seconds``; an error for each one that did not pass its checks in time."""
    errors = []
    for instance in instances:
        instance["recovery_seconds"] = recovered.get(instance["instance_id"])
        if instance["instance_id"] in recovered and recovered[instance["instance_id"]] is None:
            message = "{0} (restore of {1}) did not pass its status checks in {2} s".format(
                instance["instance_id"], instance["source_instance_id"], timeout
            )
            errors.append(
                error_entry(
                    instance["instance_id"], instance["region"], "wait", code="StatusChecksNotOk", message=message
                )
            )
    return errors


def wait_status_ok(client, started, timeout, delay=15, clock=time.monotonic, sleep=time.sleep):
    """Poll one region's new instances until their status checks pass.

    ``started``: ``{instance id: clock() before its launch}``. Returns ``{instance id: seconds}`` from
    launch to both checks ``ok`` (the recovery time), None for those that did not pass in ``timeout``.
    """
    waiting = dict(started)
    recovered = {instance_id: None for instance_id in started}
    deadline = clock() + timeout
    while waiting:
        ids = sorted(waiting)
        for start in range(0, len(ids), STATUS_BATCH):
            answer = client.describe_instance_status(
                InstanceIds=ids[start : start + STATUS_BATCH], IncludeAllInstances=True
            )
            now = clock()
            for status in answer.get("InstanceStatuses", []):
                checks = (status.get("InstanceStatus") or {}).get("Status"), (status.get("SystemStatus") or {}).get(
                    "Status"
                )
                if checks == ("ok", "ok") and status["InstanceId"] in waiting:
                    recovered[status["InstanceId"]] = round(now - waiting.pop(status["InstanceId"]), 1)
        if not waiting or clock() + delay > deadline:
            break
        sleep(delay)
    return recovered


def wait_all_status_ok(clients, started, timeout, max_concurrency):
    """``(recovered, errors)``: ``wait_status_ok`` in every region at once. ``clients``: ``{region: client}``;
    ``started``: ``{instance id: (region, clock() before its launch)}``; a region that fails is an error."""
    regions = sorted({region for region, _start in started.values()})

    def wait(region):
        launched = {instance_id: start for instance_id, (where, start) in started.items() if where == region}
        return wait_status_ok(clients[region], launched, timeout)

    recovered, errors = {}, []
    for region, times, exc in run_concurrently(wait, regions, max_concurrency):
        if exc:
            errors.append(error_entry(region, region, "wait", exc))
        else:
            recovered.update(times)
    return recovered, errors


# ---------------------------------------------------------------- volume restore plan


def describe_volume_restores(client, region, options, account_id):
    """One region's ``(managed snapshots of the volumes asked for, volumes this restore_id created, target)``;
    the target (``volume_target``) only when there is a snapshot to restore."""
    filters = [
        {"Name": "tag:" + contract.MARKER_KEY, "Values": [contract.MARKER_VALUE]},
        {"Name": "tag:" + contract.VOLUME_KEY, "Values": options["volume_ids"]},
    ]
    snapshots = paginate(client, "describe_snapshots", "Snapshots", OwnerIds=["self"], Filters=filters)
    # moto's OwnerIds filter leaks other owners' snapshots; AWS's does not, and the check costs nothing.
    snapshots = [snapshot for snapshot in snapshots if snapshot.get("OwnerId") == account_id]
    restored = paginate(
        client,
        "describe_volumes",
        "Volumes",
        Filters=[{"Name": "tag:" + contract.RESTORE_ID_KEY, "Values": [options["restore_id"]]}],
    )
    return snapshots, restored, volume_target(client, region, options) if snapshots else None


def volume_target(client, region, options):
    """``{availability_zone, instance_id}`` in this region, or why the region cannot take the volumes."""
    zone, instance_id = options["availability_zone"], options["instance_id"]
    if instance_id:
        instances = _instances(client, [{"Name": "instance-id", "Values": [instance_id]}])
        if not instances:
            return "instance_id {0} is not an instance in {1}".format(instance_id, region)
        instance_zone = instances[0]["Placement"]["AvailabilityZone"]
        if zone and zone != instance_zone:
            return "availability_zone {0} is not the zone of instance_id {1} ({2})".format(
                zone, instance_id, instance_zone
            )
        return {"availability_zone": instance_zone, "instance_id": instance_id}
    zones = client.describe_availability_zones(Filters=[{"Name": "zone-name", "Values": [zone]}])
    if not zones.get("AvailabilityZones"):
        return "availability_zone {0} is not a zone of {1}".format(zone, region)
    return {"availability_zone": zone, "instance_id": None}


def snapshot_backups(snapshots):
    """``{source volume id: [Backup]}`` of the managed EBS snapshots (VolumeId tag)."""
    by_volume = {}
    for snapshot in snapshots:
        tags = contract.tag_dict(snapshot)
        if not ebs.is_ebs_backup(tags):
            continue
        state = purge_rule.state_of(snapshot.get("State"), "completed")
        backup = purge_rule.Backup(
            snapshot["SnapshotId"], state, snapshot.get("State"), snapshot.get("StartTime"), None, None, snapshot
        )
        by_volume.setdefault(ebs.snapshot_volume(snapshot, tags), []).append(backup)
    return by_volume


def create_volume_request(snapshot, zone, token, tags, options):
    """The CreateVolume parameters of one restore: the snapshot, the zone, the volume settings, the tags."""
    request = {
        "SnapshotId": snapshot["SnapshotId"],
        "AvailabilityZone": zone,
        "ClientToken": token,
        "TagSpecifications": boto3_tag_specifications(tags, ["volume"]),
    }
    for option, key in (("volume_type", "VolumeType"), ("iops", "Iops"), ("throughput", "Throughput")):
        if options.get(option) is not None:
            request[key] = options[option]
    if options.get("kms_key_id"):
        request.update(Encrypted=True, KmsKeyId=options["kms_key_id"])
    return request


def plan_volume_restores(region, snapshots, restored, target, options):
    """Decide, for one region, which volume to create from which snapshot.

    ``snapshots``: the region's managed snapshots. ``restored``: volumes this request created before
    (RestoreId tag). ``target``: ``{availability_zone, instance_id}`` in this region, or a text saying
    why the region cannot take the volumes. ``options``: as volume_restore's parse_options returns them.
    """
    errors, todo, existing, notes = [], [], [], []
    by_volume = snapshot_backups(snapshots)
    done = {
        contract.tag_dict(volume).get(contract.SOURCE_SNAPSHOT_KEY): volume
        for volume in restored
        if volume.get("State") not in ("deleting", "deleted")
    }
    for source in [volume_id for volume_id in options["volume_ids"] if volume_id in by_volume]:
        backup, note = choose(by_volume[source], options["as_of"], source, "snapshot", "completed")
        failure = None if backup else note
        if backup and not isinstance(target, dict):
            failure = target
        if failure:
            code = NO_BACKUP if backup is None else "InvalidParameterValue"
            errors.append(error_entry(source, region, "create_volume", code=code, message=failure))
            continue
        if note:
            notes.append(note)
        snapshot = backup.item
        snapshot_tags = contract.tag_dict(snapshot)
        device = options["device"] or snapshot_tags.get(ebs.DEVICE_KEY) or None
        if target["instance_id"] and not device:
            message = "no device to attach the restore of {0} at: set device".format(source)
            errors.append(error_entry(source, region, "attach_volume", code="InvalidParameterValue", message=message))
            continue
        tags = contract.restore_tags(
            options["tags"],
            {contract.VOLUME_KEY: source, contract.SOURCE_SNAPSHOT_KEY: snapshot["SnapshotId"]},
            options["restore_id"],
            name="restore of {0}".format(snapshot_tags.get(contract.NAME_KEY) or source),
        )
        token = client_token(snapshot["SnapshotId"], options["restore_id"])
        item = {
            "region": region,
            "source_volume_id": source,
            "snapshot_id": snapshot["SnapshotId"],
            "snapshot_started": _text(snapshot.get("StartTime")),
            "availability_zone": target["availability_zone"],
            "instance_id": target["instance_id"],
            "device": device if target["instance_id"] else None,
            "client_token": token,
            "restore_id": options["restore_id"],
            "note": note,
            "tags": tags,
        }
        earlier = done.get(snapshot["SnapshotId"])
        if earlier is not None:
            result = volume_result(item, earlier, created=False)
            if item["instance_id"] and not result["attached"]:
                todo.append(dict(item, request=None, volume_id=earlier["VolumeId"]))
            else:
                existing.append(result)
        else:
            request = create_volume_request(snapshot, target["availability_zone"], token, tags, options)
            todo.append(dict(item, request=request))
    return {"todo": todo, "notes": notes, "errors": errors, "existing": existing, "found": set(by_volume)}


_VOLUME_KEYS = (
    "region",
    "source_volume_id",
    "snapshot_id",
    "snapshot_started",
    "availability_zone",
    "instance_id",
    "device",
    "client_token",
    "restore_id",
    "note",
    "tags",
)


def volume_result(item, volume=None, created=True):
    """A volume restore's result item: the plan with the volume AWS returned (``state: planned`` without one)."""
    result = {key: item[key] for key in _VOLUME_KEYS}
    if volume is None:
        return dict(result, volume_id=None, state=PLANNED, created=False, attached=False)
    attached = [entry for entry in volume.get("Attachments") or [] if entry.get("InstanceId") == item["instance_id"]]
    return dict(
        result,
        volume_id=volume["VolumeId"],
        state=volume.get("State"),
        volume_type=volume.get("VolumeType"),
        size=volume.get("Size"),
        encrypted=volume.get("Encrypted"),
        created=created,
        attached=bool(attached),
    )
