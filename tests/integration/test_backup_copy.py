"""backup_copy through real ansible-playbook runs against moto (through the counting, fault-injecting proxy).

moto differs from EC2 here in ways ``tests/harness/moto_copy.py`` makes faithful (MOTO-NOTES: CopyImage
"same account only; ClientToken and TagSpecifications ignored"): copies across accounts from a shared
source, CopyImage's ClientToken, tags and encryption in the copy call, vol-ffffffff on copied snapshots,
20 snapshot copies in flight per destination region, AWS managed keys that cannot be shared. moto's copies
complete at once (EC2's take minutes): the shares are removed in the same run.
"""

import datetime
import threading

import boto3
from moto.backends import get_backend

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet
from tests.harness import organization
from tests.harness.moto_server import ACCOUNT_ID

SOURCE = "us-east-1"
DESTINATION = "eu-west-1"
TODAY = datetime.datetime.now(datetime.timezone.utc).date()
DELETE_ON = (TODAY + datetime.timedelta(days=7)).isoformat()
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "daily"}
VAULT_ROLE = "OpsvaultBackupVault"


def managed_image(ec2, instance_id, name, delete_on=DELETE_ON, extra=None):
    tags = dict(MARKER, SourceInstanceId=instance_id, Region=ec2.meta.region_name, Name="web", DeleteOn=delete_on)
    tags.update(extra or {})
    return ec2.create_image(
        InstanceId=instance_id,
        Name=name,
        TagSpecifications=[
            {"ResourceType": "image", "Tags": fleet.tag_list(tags)},
            {"ResourceType": "snapshot", "Tags": fleet.tag_list(tags)},
        ],
    )["ImageId"]


def managed_snapshot(ec2, volume_id, delete_on=DELETE_ON):
    tags = dict(MARKER, VolumeId=volume_id, Region=ec2.meta.region_name, DeleteOn=delete_on)
    return fleet.add_snapshot(ec2, volume_id, tags)


def sources(aws):
    """One managed AMI and one managed EBS snapshot in the source region (plus what must not be copied)."""
    ec2 = aws.ec2(SOURCE)
    [instance] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    image = managed_image(ec2, instance, "web-backup")
    volume = fleet.add_volume(ec2, instance, tags={"Name": "data"})
    snapshot = managed_snapshot(ec2, volume)
    fleet.add_snapshot(ec2, volume, {"Name": "not ours"})
    managed_image(ec2, instance, "expired-backup", delete_on=(TODAY - datetime.timedelta(days=1)).isoformat())
    return instance, image, snapshot, volume


def copy_task(name="copy", check_mode=None, **options):
    entry = {"name": name, "opsvault.aws_backup.backup_copy": options, "ignore_errors": True, "register": "result"}
    if check_mode is not None:
        entry["check_mode"] = check_mode
    return entry


def run(proxy, tmp_path, tasks):
    proxy.reset()
    playbook = ansible_run.run_playbook(
        ansible_run.aws_play(proxy.endpoint, tasks, region=SOURCE), tmp_path, endpoint=proxy.endpoint
    )
    return playbook, proxy.stats()


def copies_in(ec2, account=None):
    """``{source id: [copies]}`` of the managed copies in a destination (lists, to see doubles)."""
    found = {}
    for image in ec2.describe_images(Owners=["self"])["Images"]:
        tags = fleet.tags_of(image)
        if "SourceImageId" in tags:
            found.setdefault(tags["SourceImageId"], []).append(image)
    for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]:
        tags = fleet.tags_of(snapshot)
        if "SourceSnapshotId" in tags and snapshot["OwnerId"] == (account or ACCOUNT_ID):
            found.setdefault(tags["SourceSnapshotId"], []).append(snapshot)
    return found


def ec2_mutating(stats):
    """The mutating EC2 and KMS calls that reached AWS (sts:AssumeRole, which changes nothing, aside)."""
    return {
        key: count
        for key, count in stats["requests"].items()
        if aws_proxy.is_mutating(*key.split(":", 1)) and not key.startswith("sts:")
    }


def test_cross_region_one_copy_per_source_with_its_tags_check_mode_first_and_a_rerun_changes_nothing(
    aws, counting_proxy, tmp_path
):
    instance, image, snapshot, volume = sources(aws)
    options = dict(destinations=[{"region": DESTINATION}, {"region": "ap-southeast-2", "retention": "30d"}])

    playbook, stats = run(counting_proxy, tmp_path, [copy_task("plan", check_mode=True, **options)])
    plan = playbook.result("plan")
    assert playbook.rc == 0 and plan.get("failed") is not True, plan
    assert stats["mutating"] == 0, ec2_mutating(stats)
    assert {(c["source_id"], c["region"], c["state"]) for c in plan["copies"]} == {
        (source, region, "planned") for source in (image, snapshot) for region in (DESTINATION, "ap-southeast-2")
    }
    assert "Would copy 2 AMI(s)" in plan["msg"] and "would copy 2 snapshot(s)" in plan["msg"].lower()
    assert copies_in(aws.ec2(DESTINATION)) == {}

    playbook, stats = run(counting_proxy, tmp_path, [copy_task(**options)])
    result = playbook.result("copy")
    assert playbook.rc == 0 and result["changed"] is True, result
    assert stats["requests"]["ec2:CopyImage"] == 2 and stats["requests"]["ec2:CopySnapshot"] == 2
    assert "ec2:CreateTags" not in stats["requests"]
    expired = [item for item in result["skipped_resources"] if "expired on" in item["reason"]]
    assert len(expired) == 1
    thirty_days = None
    for region in (DESTINATION, "ap-southeast-2"):
        found = copies_in(aws.ec2(region))
        assert {source: len(items) for source, items in found.items()} == {image: 1, snapshot: 1}, region
        image_copy, snapshot_copy = found[image][0], found[snapshot][0]
        expected_delete_on = DELETE_ON if region == DESTINATION else None
        image_tags, snapshot_tags = fleet.tags_of(image_copy), fleet.tags_of(snapshot_copy)
        assert image_tags == {
            "CreatedBy": "opsvault.aws_backup",
            "BackupPolicy": "daily",
            "SourceInstanceId": instance,
            "Region": SOURCE,
            "Name": "web",
            "DeleteOn": expected_delete_on or image_tags["DeleteOn"],
            "SourceImageId": image,
            "SourceRegion": SOURCE,
            "SourceAccount": ACCOUNT_ID,
        }
        assert snapshot_tags == {
            "CreatedBy": "opsvault.aws_backup",
            "BackupPolicy": "daily",
            "VolumeId": volume,
            "Region": SOURCE,
            "DeleteOn": expected_delete_on or snapshot_tags["DeleteOn"],
            "SourceSnapshotId": snapshot,
            "SourceRegion": SOURCE,
            "SourceAccount": ACCOUNT_ID,
        }
        [mapping] = image_copy["BlockDeviceMappings"]
        [ami_snapshot] = aws.ec2(region).describe_snapshots(SnapshotIds=[mapping["Ebs"]["SnapshotId"]])["Snapshots"]
        assert fleet.tags_of(ami_snapshot) == image_tags
        assert snapshot_copy["VolumeId"] == "vol-ffffffff"
        if region != DESTINATION:
            thirty_days = (image_tags["DeleteOn"], snapshot_tags["DeleteOn"])
    assert thirty_days == ((TODAY + datetime.timedelta(days=30)).isoformat(),) * 2
    returned = {(c["source_id"], c["region"]): c for c in result["copies"]}
    assert returned[(image, DESTINATION)]["copy_id"] == copies_in(aws.ec2(DESTINATION))[image][0]["ImageId"]
    assert returned[(image, DESTINATION)]["state"] == "available" and returned[(image, DESTINATION)]["shared"] is False

    playbook, stats = run(counting_proxy, tmp_path, [copy_task("again", **options)])
    again = playbook.result("again")
    assert playbook.rc == 0 and again["changed"] is False, again
    assert stats["mutating"] == 0, ec2_mutating(stats)
    assert again["copies"] == []
    already = [item for item in again["skipped_resources"] if item["reason"].startswith("copied already")]
    assert len(already) == 4
    for region in (DESTINATION, "ap-southeast-2"):
        assert {s: len(items) for s, items in copies_in(aws.ec2(region)).items()} == {image: 1, snapshot: 1}


def test_a_500_after_copy_image_succeeded_still_leaves_one_copy_per_source(aws, counting_proxy, tmp_path):
    ec2 = aws.ec2(SOURCE)
    instances = fleet.launch(ec2, {"Backup": ""}, count=6)
    images = [managed_image(ec2, instance, "backup-" + instance) for instance in instances]
    snapshots = [managed_snapshot(ec2, fleet.add_volume(ec2, instance)) for instance in instances[:3]]
    destinations = [{"region": DESTINATION}]

    # Half the CopyImage calls answer 500 after the copy was made: botocore sends them again, same ClientToken.
    counting_proxy.configure(error_after_rate=0.5, fault_actions=["CopyImage"], seed=11)
    playbook, stats = run(
        counting_proxy, tmp_path, [copy_task("images", destinations=destinations, resource_types=["image"])]
    )
    result = playbook.result("images")
    assert result.get("failed") is not True, result
    assert aws_proxy.count(stats, action="CopyImage", outcome="error_after") > 0
    # Every CopySnapshot answers 500 after the copy was made: CopySnapshot has no token; the copy is found by its tags.
    counting_proxy.configure(error_after_rate=1.0, fault_actions=["CopySnapshot"])
    playbook, stats = run(counting_proxy, tmp_path, [copy_task("snapshots", destinations=destinations)])
    snapshot_result = playbook.result("snapshots")
    assert snapshot_result.get("failed") is not True, snapshot_result
    assert aws_proxy.count(stats, action="CopySnapshot", outcome="error_after") == 3
    assert aws_proxy.count(stats, action="CopySnapshot") == 3

    found = copies_in(aws.ec2(DESTINATION))
    assert {source: len(items) for source, items in found.items()} == {s: 1 for s in images + snapshots}
    assert {c["copy_id"] for c in result["copies"] + snapshot_result["copies"]} == {
        items[0].get("ImageId") or items[0]["SnapshotId"] for items in found.values()
    }


def vault(aws, key_state="Enabled"):
    """A vault account with the vault role (trusting the source account) and a KMS key in the destination."""
    org = organization.Organization(aws.endpoint, {"vault": "ACTIVE"})
    account = org.accounts["vault"]
    role_arn = organization.create_role(account, VAULT_ROLE)
    kms = vault_client(aws, role_arn, "kms")
    key = kms.create_key(Description="backup vault")["KeyMetadata"]
    if key_state == "Disabled":
        kms.disable_key(KeyId=key["KeyId"])
    return account, role_arn, key["Arn"]


def vault_client(aws, role_arn, service, region=DESTINATION):
    credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="test")["Credentials"]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=aws.endpoint,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def shares(ec2, image, snapshot_ids, account):
    launch = ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]
    volumes = {
        snapshot_id: ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")[
            "CreateVolumePermissions"
        ]
        for snapshot_id in snapshot_ids
    }
    return [p for p in launch if p.get("UserId") == account], {
        s: [p for p in found if p.get("UserId") == account] for s, found in volumes.items()
    }


def test_cross_account_copy_is_owned_by_the_vault_encrypted_with_its_key_and_the_share_is_removed(
    aws, counting_proxy, tmp_path
):
    _instance, image, snapshot, _volume = sources(aws)
    account, role_arn, key_arn = vault(aws)
    ec2 = aws.ec2(SOURCE)
    [mapping] = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    image_snapshot = mapping["Ebs"]["SnapshotId"]
    options = dict(
        destinations=[{"region": DESTINATION, "account_id": account, "kms_key_id": key_arn, "retention": "1y"}]
    )

    playbook, stats = run(counting_proxy, tmp_path, [copy_task("plan", check_mode=True, **options)])
    plan = playbook.result("plan")
    assert playbook.rc == 0 and plan.get("failed") is not True, plan
    assert ec2_mutating(stats) == {}
    assert {(c["source_id"], c["account_id"], c["shared"]) for c in plan["copies"]} == {
        (image, account, True),
        (snapshot, account, True),
    }

    playbook, stats = run(counting_proxy, tmp_path, [copy_task(wait=True, **options)])
    result = playbook.result("copy")
    assert playbook.rc == 0 and result["changed"] is True, result
    assert aws_proxy.count(stats, action="ModifyImageAttribute", outcome="ok") == 2  # share, unshare
    assert {(c["kind"], c["state"]) for c in result["copies"]} == {("image", "available"), ("snapshot", "completed")}
    vault_ec2 = vault_client(aws, role_arn, "ec2")
    found = copies_in(vault_ec2, account)
    assert {source: len(items) for source, items in found.items()} == {image: 1, snapshot: 1}
    image_copy, snapshot_copy = found[image][0], found[snapshot][0]
    assert image_copy["OwnerId"] == account and snapshot_copy["OwnerId"] == account
    assert snapshot_copy["Encrypted"] is True and snapshot_copy["KmsKeyId"] == key_arn
    [copy_mapping] = image_copy["BlockDeviceMappings"]
    [ami_copy_snapshot] = vault_ec2.describe_snapshots(SnapshotIds=[copy_mapping["Ebs"]["SnapshotId"]])["Snapshots"]
    assert ami_copy_snapshot["Encrypted"] is True and ami_copy_snapshot["KmsKeyId"] == key_arn
    assert fleet.tags_of(image_copy)["SourceAccount"] == ACCOUNT_ID
    assert fleet.tags_of(image_copy)["DeleteOn"] > DELETE_ON
    assert copies_in(aws.ec2(DESTINATION)) == {}
    assert shares(ec2, image, [image_snapshot, snapshot], account) == ([], {image_snapshot: [], snapshot: []})
    assert {(item["source_id"], item["account_id"]) for item in result["unshared"]} == {
        (image, account),
        (snapshot, account),
    }

    playbook, stats = run(counting_proxy, tmp_path, [copy_task("again", **options)])
    again = playbook.result("again")
    assert playbook.rc == 0 and again["changed"] is False, again
    assert ec2_mutating(stats) == {}


def test_a_share_left_by_a_copy_still_pending_is_removed_by_the_next_run_once_the_copy_completed(
    aws, counting_proxy, tmp_path
):
    ec2 = aws.ec2(SOURCE)
    [instance] = fleet.launch(ec2, {"Backup": ""})
    snapshot = managed_snapshot(ec2, fleet.add_volume(ec2, instance))
    account, role_arn, key_arn = vault(aws)
    options = dict(destinations=[{"region": DESTINATION, "account_id": account, "kms_key_id": key_arn}])
    # What a run leaves when EC2 has not finished the copy: the share, and a pending copy in the vault.
    ec2.modify_snapshot_attribute(
        SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add", UserIds=[account]
    )
    vault_ec2 = vault_client(aws, role_arn, "ec2")
    tags = dict(MARKER, DeleteOn=DELETE_ON, SourceSnapshotId=snapshot, SourceRegion=SOURCE, SourceAccount=ACCOUNT_ID)
    pending = vault_ec2.copy_snapshot(
        SourceSnapshotId=snapshot,
        SourceRegion=SOURCE,
        Encrypted=True,
        KmsKeyId=key_arn,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": fleet.tag_list(tags)}],
    )["SnapshotId"]
    vault_backend = get_backend("ec2")[account][DESTINATION]
    vault_backend.snapshots[pending].status = "pending"

    playbook, stats = run(counting_proxy, tmp_path, [copy_task("still pending", **options)])
    result = playbook.result("still pending")
    assert playbook.rc == 0 and result["changed"] is False, result
    assert ec2_mutating(stats) == {}
    [skipped] = result["skipped_resources"]
    assert skipped["resource"] == snapshot and "the share with {0} stays".format(account) in skipped["reason"]

    vault_backend.snapshots[pending].status = "completed"
    playbook, stats = run(counting_proxy, tmp_path, [copy_task("completed", **options)])
    result = playbook.result("completed")
    assert playbook.rc == 0 and result["changed"] is True, result
    assert ec2_mutating(stats) == {"ec2:ModifySnapshotAttribute": 1}
    assert [(item["source_id"], item["state"]) for item in result["unshared"]] == [(snapshot, "unshared")]
    permissions = ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    assert permissions["CreateVolumePermissions"] == []


def test_preflight_failures_change_nothing_and_name_the_resource_and_the_reason(aws, counting_proxy, tmp_path):
    ec2 = aws.ec2(SOURCE)
    [instance] = fleet.launch(ec2, {"Backup": ""})
    marketplace = managed_image(ec2, instance, "appliance-backup")
    fleet.ec2_backend(SOURCE).amis[marketplace].product_codes = {"abcd1234marketplace"}
    default_key = aws.client("kms", SOURCE).describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["Arn"]
    encrypted = managed_snapshot(ec2, fleet.add_volume(ec2, instance))
    backend_snapshot = fleet.ec2_backend(SOURCE).snapshots[encrypted]
    backend_snapshot.encrypted, backend_snapshot.kms_key_id = True, default_key
    account, _role_arn, key_arn = vault(aws)
    _other_account, _other_role, disabled_key = vault_second(aws)

    options = dict(
        destinations=[
            {"region": DESTINATION, "account_id": account, "kms_key_id": key_arn},
            {"region": "us-west-2", "account_id": _other_account, "kms_key_id": disabled_key},
        ]
    )
    playbook, stats = run(counting_proxy, tmp_path, [copy_task(**options)])
    result = playbook.result("copy")

    assert result["failed"] is True, result
    assert ec2_mutating(stats) == {}
    errors = {(error["resource"], error["code"]): error for error in result["errors"]}
    assert set(errors) == {
        (marketplace, "CannotCopyToAccount"),
        (encrypted, "CannotCopyToAccount"),
        (disabled_key, "KMSKeyNotUsable"),
    }, result["errors"]
    assert all(error["action"] == "preflight" for error in result["errors"])
    assert (
        "AWS Marketplace product code(s) abcd1234marketplace" in errors[(marketplace, "CannotCopyToAccount")]["message"]
    )
    message = errors[(encrypted, "CannotCopyToAccount")]["message"]
    assert "snapshot {0} is encrypted with the AWS managed key {1} (aws/ebs)".format(encrypted, default_key) in message
    assert "is Disabled, not Enabled" in errors[(disabled_key, "KMSKeyNotUsable")]["message"]
    assert result["copies"] == [] and result["changed"] is False
    assert fleet.ec2_backend(SOURCE).snapshots[encrypted].create_volume_permission_userids == set()


def vault_second(aws):
    org_client = aws.client("organizations")
    created = org_client.create_account(AccountName="vault2", Email="vault2@example.com")
    account = created["CreateAccountStatus"]["AccountId"]
    role_arn = organization.create_role(account, VAULT_ROLE)
    kms = vault_client(aws, role_arn, "kms", "us-west-2")
    key = kms.create_key(Description="disabled")["KeyMetadata"]
    kms.disable_key(KeyId=key["KeyId"])
    return account, role_arn, key["Arn"]


def test_snapshot_copies_wait_for_a_slot_when_twenty_are_in_flight_in_the_destination(aws, counting_proxy, tmp_path):
    ec2 = aws.ec2(SOURCE)
    [instance] = fleet.launch(ec2, {"Backup": ""})
    volume = fleet.add_volume(ec2, instance)
    snapshots = [managed_snapshot(ec2, volume) for _number in range(2)]
    other = fleet.add_snapshot(ec2, volume, {"Name": "someone else's copy source"})
    west = aws.ec2(DESTINATION)
    in_flight = [west.copy_snapshot(SourceSnapshotId=other, SourceRegion=SOURCE)["SnapshotId"] for _number in range(20)]
    backend = fleet.ec2_backend(DESTINATION)
    for snapshot_id in in_flight:
        backend.snapshots[snapshot_id].status = "pending"

    def complete_some():
        for snapshot_id in in_flight[:2]:
            backend.snapshots[snapshot_id].status = "completed"

    timer = threading.Timer(3.0, complete_some)
    timer.start()
    try:
        playbook, stats = run(counting_proxy, tmp_path, [copy_task(destinations=[{"region": DESTINATION}])])
    finally:
        timer.cancel()
    result = playbook.result("copy")

    assert playbook.rc == 0 and result["changed"] is True, result
    assert {copy["source_id"] for copy in result["copies"]} == set(snapshots)
    assert aws_proxy.count(stats, action="CopySnapshot") == 2  # never refused with ResourceLimitExceeded
    assert {s: len(items) for s, items in copies_in(west).items()} == {s: 1 for s in snapshots}


def test_bad_input_fails_naming_the_value_and_copies_nothing(aws, play):
    ec2 = aws.ec2(SOURCE)
    [instance] = fleet.launch(ec2, {"Backup": ""})
    managed_image(ec2, instance, "web-backup")

    run_bad = play(
        [
            copy_task("bad region", destinations=[{"region": "mars-1"}]),
            copy_task("no key", destinations=[{"region": DESTINATION, "account_id": "210987654321"}]),
            copy_task("bad account", destinations=[{"region": DESTINATION, "account_id": "12345", "kms_key_id": "k"}]),
            copy_task("bad retention", destinations=[{"region": DESTINATION, "retention": "forever"}]),
            copy_task("no destinations", destinations=[]),
        ],
        region=SOURCE,
    )

    assert run_bad.result("bad region")["msg"] == (
        "destinations[0].region must be a region name such as eu-west-1, got 'mars-1'"
    )
    assert "destinations[0] copies to account 210987654321: it needs kms_key_id" in run_bad.result("no key")["msg"]
    assert (
        run_bad.result("bad account")["msg"] == "destinations[0].account_id must be a 12-digit account id, got '12345'"
    )
    assert "destinations[0].retention 'forever' is not a period" in run_bad.result("bad retention")["msg"]
    assert "destinations must list at least one destination" in run_bad.result("no destinations")["msg"]
    assert all(run_bad.result(name)["failed"] for name in ("bad region", "no key", "bad account", "bad retention"))
    assert copies_in(aws.ec2(DESTINATION)) == {}
