import datetime

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.opsvault.aws_backup.plugins.module_utils import copies
from ansible_collections.opsvault.aws_backup.plugins.module_utils.retention import Retention

ACCOUNT = "123456789012"
VAULT = "210987654321"
REGION = "us-east-1"
TODAY = datetime.date(2026, 11, 23)
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "daily"}


def tag_list(tags):
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def image(image_id, state="available", delete_on="2026-11-30", created="2026-11-20T01:00:00.000Z", **extra):
    tags = dict(MARKER, SourceInstanceId="i-1", Name="web", DeleteOn=delete_on, **extra.pop("tags", {}))
    return dict(
        {
            "ImageId": image_id,
            "Name": "web-" + image_id,
            "State": state,
            "CreationDate": created,
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-of-" + image_id}}],
            "Tags": tag_list(tags),
        },
        **extra
    )


def snapshot(snapshot_id, state="completed", delete_on="2026-11-30", **extra):
    tags = dict(MARKER, VolumeId="vol-1", DeleteOn=delete_on, **extra.pop("tags", {}))
    return dict(
        {"SnapshotId": snapshot_id, "State": state, "StartTime": "2026-11-20T01:00:00Z", "Tags": tag_list(tags)},
        **extra
    )


def destination(region="eu-west-1", account_id=ACCOUNT, kms_key_id=None, retention=None):
    return {
        "region": region,
        "account_id": account_id,
        "role_arn": None,
        "kms_key_id": kms_key_id,
        "retention": retention,
    }


def described(*destinations, **by_key):
    found = {(d["region"], d["account_id"]): {"copies": {}, "key_problem": None, "in_flight": []} for d in destinations}
    for key, value in by_key.items():
        found[key] = value
    return found


def plan(sources, destinations, described_by=None, shared=None, snapshots_by_id=None, source_keys=None):
    return copies.plan_copies(
        REGION,
        ACCOUNT,
        sources,
        snapshots_by_id or {},
        destinations,
        described_by or described(*destinations),
        shared or {},
        source_keys or {},
        TODAY,
    )


def test_destinations_are_read_and_each_mistake_names_the_entry_field_and_value():
    [same, vault] = copies.parse_destinations(
        [
            {"region": "eu-west-1", "retention": "30d"},
            {"region": "eu-west-1", "account_id": VAULT, "kms_key_id": "alias/v"},
        ]
    )
    assert same == {
        "region": "eu-west-1",
        "account_id": None,
        "role_arn": None,
        "kms_key_id": None,
        "retention": Retention(30),
    }
    assert vault["role_arn"] == "arn:aws:iam::{0}:role/OpsvaultBackupVault".format(VAULT)
    cases = [
        ([{"region": "EU"}], "destinations[0].region must be a region name such as eu-west-1, got 'EU'"),
        ([{"region": "eu-west-1", "acount_id": VAULT}], "destinations[0] has unknown key(s) acount_id"),
        (
            [{"region": "eu-west-1", "account_id": VAULT}],
            "destinations[0] copies to account {0}: it needs kms_key_id".format(VAULT),
        ),
        (
            [
                {
                    "region": "eu-west-1",
                    "account_id": VAULT,
                    "kms_key_id": "k",
                    "role_arn": "arn:aws:iam::111111111111:role/X",
                }
            ],
            "destinations[0].role_arn 'arn:aws:iam::111111111111:role/X' is not a role of account {0}".format(VAULT),
        ),
        ([{"region": "eu-west-1"}, {"region": "eu-west-1"}], "destinations[1] repeats region eu-west-1"),
        ([{"region": "eu-west-1", "retention": "0"}], "destinations[0].retention '0' must be at least one day"),
        ([], "destinations must list at least one destination"),
    ]
    for value, message in cases:
        with pytest.raises(ValueError) as raised:
            copies.parse_destinations(value)
        assert str(raised.value).startswith(message), (value, str(raised.value))


def test_one_copy_per_source_and_destination_with_the_source_tags_its_delete_on_and_its_provenance():
    sources = [
        image("ami-1"),
        snapshot("snap-1"),
        image("ami-pending", state="pending"),
        image("ami-old", delete_on="2026-11-23"),
    ]
    destinations = [destination(), destination("ap-southeast-2", retention=Retention(months=1))]

    result = plan(sources, destinations)

    assert [(item["source_id"], item["region"], item["delete_on"]) for item in result["todo"]] == [
        ("ami-1", "eu-west-1", "2026-11-30"),
        ("ami-1", "ap-southeast-2", "2026-12-20"),
        ("snap-1", "eu-west-1", "2026-11-30"),
        ("snap-1", "ap-southeast-2", "2026-12-20"),
    ]
    first = result["todo"][0]
    assert first["tags"] == dict(
        MARKER,
        SourceInstanceId="i-1",
        Name="web",
        DeleteOn="2026-11-30",
        SourceImageId="ami-1",
        SourceRegion=REGION,
        SourceAccount=ACCOUNT,
    )
    assert first["cross_account"] is False and first["share_image"] is False and first["share_snapshots"] == []
    assert first["client_token"] == copies.client_token("image", "ami-1", REGION, ACCOUNT, "eu-west-1", ACCOUNT)
    assert len(first["client_token"]) <= 64 and first["client_token"] != result["todo"][1]["client_token"]
    reasons = {item["resource"]: item["reason"] for item in result["skipped"]}
    assert reasons == {
        "ami-pending": "AMI is pending: copied once it is available",
        "ami-old": "expired on 2026-11-23: not copied",
    }


def test_a_source_with_a_copy_in_the_destination_is_not_copied_again_and_the_source_region_itself_is_skipped():
    existing = image("ami-copy", tags={"SourceImageId": "ami-1", "SourceRegion": REGION, "SourceAccount": ACCOUNT})
    here = destination(REGION)
    there = destination()
    found = described(here, there)
    found[("eu-west-1", ACCOUNT)]["copies"] = copies.existing_copies([existing], [])

    result = plan([image("ami-1")], [here, there], found)

    assert result["todo"] == []
    assert [item["reason"] for item in result["skipped"]] == [
        "destination us-east-1 (123456789012) is the source's own region and account",
        "copied already to eu-west-1 (123456789012) as ami-copy (available)",
    ]


def test_cross_account_shares_what_is_not_shared_yet_and_unshares_once_every_copy_in_the_account_is_complete():
    vault_west, vault_central = destination(account_id=VAULT, kms_key_id="k"), destination("eu-central-1", VAULT, "k")
    found = described(vault_west, vault_central)
    copy_tags = {"SourceImageId": "ami-done", "SourceRegion": REGION, "SourceAccount": ACCOUNT}
    for key in found:
        found[key]["copies"] = copies.existing_copies([image("ami-c-" + key[0], tags=copy_tags)], [])
    shared = {VAULT: {"images": {"ami-done"}, "snapshots": {"snap-of-ami-done", "snap-of-ami-1"}}}

    result = plan([image("ami-1"), image("ami-done")], [vault_west, vault_central], found, shared)

    assert [(item["source_id"], item["share_image"], item["share_snapshots"]) for item in result["todo"]] == [
        ("ami-1", True, []),
        ("ami-1", True, []),
    ]
    assert result["unshare"] == [
        {
            "kind": "image",
            "source_id": "ami-done",
            "region": REGION,
            "account_id": VAULT,
            "image_shared": True,
            "snapshot_ids": ["snap-of-ami-done"],
        }
    ]
    [after] = result["after_copy"]
    assert (after["source_id"], after["waiting"]) == ("ami-1", ["eu-central-1", "eu-west-1"])


def test_a_pending_copy_keeps_the_share_and_a_bad_destination_key_fails_that_destination_only():
    vault, broken = destination(account_id=VAULT, kms_key_id="k"), destination("eu-central-1", ACCOUNT, "bad")
    found = described(vault, broken)
    pending_copy = snapshot(
        "snap-c", state="pending", tags={"SourceSnapshotId": "snap-1", "SourceRegion": REGION, "SourceAccount": ACCOUNT}
    )
    found[("eu-west-1", VAULT)]["copies"] = copies.existing_copies([], [pending_copy])
    found[("eu-central-1", ACCOUNT)]["key_problem"] = "is Disabled, not Enabled"

    result = plan([snapshot("snap-1")], [vault, broken], found, {VAULT: {"images": set(), "snapshots": {"snap-1"}}})

    assert result["todo"] == [] and result["unshare"] == [] and result["after_copy"] == []
    [failure] = result["failures"]
    assert (failure["resource"], failure["action"], failure["code"]) == ("bad", "preflight", "KMSKeyNotUsable")
    assert (
        failure["message"]
        == "kms_key_id bad in eu-central-1 (123456789012): is Disabled, not Enabled; nothing is copied there"
    )
    [skipped] = result["skipped"]
    assert skipped["reason"] == (
        "copied already to eu-west-1 ({0}) as snap-c (pending); the share with {0} stays until the copy completes".format(
            VAULT
        )
    )


def test_preflight_names_marketplace_amis_and_snapshots_under_an_aws_managed_key_for_other_accounts_only():
    managed_key = "arn:aws:kms:us-east-1:123456789012:key/aws-ebs"
    customer_key = "arn:aws:kms:us-east-1:123456789012:key/mine"
    sources = [
        image("ami-market", ProductCodes=[{"ProductCodeId": "pc-1", "ProductCodeType": "marketplace"}]),
        image("ami-aws-key"),
        snapshot("snap-mine", Encrypted=True, KmsKeyId=customer_key),
    ]
    by_id = {
        "snap-of-ami-aws-key": {"SnapshotId": "snap-of-ami-aws-key", "Encrypted": True, "KmsKeyId": managed_key},
        "snap-mine": sources[2],
    }
    keys = {
        managed_key: {"Arn": managed_key, "KeyManager": "AWS"},
        customer_key: {"Arn": customer_key, "KeyManager": "CUSTOMER"},
    }
    assert copies.source_key_ids(sources, by_id) == sorted([managed_key, customer_key])
    same, vault = destination(), destination("eu-west-1", VAULT, "k")

    result = plan(sources, [same, vault], snapshots_by_id=by_id, source_keys=keys)

    assert sorted((item["source_id"], item["account_id"]) for item in result["todo"]) == [
        ("ami-aws-key", ACCOUNT),
        ("ami-market", ACCOUNT),
        ("snap-mine", ACCOUNT),
        ("snap-mine", VAULT),
    ]
    messages = {failure["resource"]: failure["message"] for failure in result["failures"]}
    assert messages["ami-market"] == (
        "AMI ami-market has AWS Marketplace product code(s) pc-1: AWS does not copy it to another account "
        "(to eu-west-1 ({0}))".format(VAULT)
    )
    assert messages["ami-aws-key"].startswith(
        "snapshot snap-of-ami-aws-key (of AMI ami-aws-key) is encrypted with the AWS managed key {0} (aws/ebs)".format(
            managed_key
        )
    )


def test_key_problem_reads_describe_key():
    assert copies.key_problem({"KeyState": "Enabled", "Enabled": True, "KeyUsage": "ENCRYPT_DECRYPT"}) is None
    assert copies.key_problem({"KeyState": "PendingDeletion", "Enabled": False}) == "is PendingDeletion, not Enabled"
    assert copies.key_problem({"KeyState": "Enabled", "Enabled": True, "KeySpec": "RSA_2048"}).startswith("is RSA_2048")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class PendingCopies:
    """A DescribeSnapshots stand-in: the given copies stay pending until ``done_after`` polls."""

    def __init__(self, done_after):
        self.polls = 0
        self.done_after = done_after

    def get_paginator(self, operation):
        assert operation == "describe_snapshots"
        return self

    def paginate(self, **params):
        self.polls += 1
        ids = params["Filters"][0]["Values"]
        self.result = {"Snapshots": [] if self.polls >= self.done_after else [{"SnapshotId": i} for i in ids]}
        return self

    def build_full_result(self):
        return self.result


def test_copy_slots_wait_for_a_copy_in_flight_to_finish_and_give_up_at_the_deadline():
    clock = FakeClock()
    client = PendingCopies(done_after=3)
    slots = copies.CopySlots(
        client, ["snap-{0}".format(n) for n in range(20)], deadline=100, sleep=clock.sleep, clock=clock
    )
    slots.take()
    assert client.polls == 3 and clock.now == 2 + 4
    slots.started("snap-new", "pending")
    assert "snap-new" in slots.in_flight

    stuck = copies.CopySlots(
        PendingCopies(done_after=10**6),
        ["snap-{0}".format(n) for n in range(20)],
        deadline=10,
        sleep=clock.sleep,
        clock=clock,
    )
    clock.now = 0
    with pytest.raises(copies.QueueTimeout):
        stuck.take()
    assert clock.now <= 10


def test_copy_snapshot_after_a_500_adopts_the_copy_the_request_made_instead_of_copying_twice():
    client = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s")
    item = {
        "source_id": "snap-1",
        "source_region": REGION,
        "source_account": ACCOUNT,
        "description": "copy",
        "tags": {"CreatedBy": "opsvault.aws_backup"},
        "kms_key_id": None,
    }
    with Stubber(client) as stub:
        stub.add_client_error("copy_snapshot", "InternalError", http_status_code=500)
        stub.add_response(
            "describe_snapshots",
            {"Snapshots": [{"SnapshotId": "snap-copy", "State": "pending"}]},
            {
                "OwnerIds": ["self"],
                "Filters": [
                    {"Name": "tag:SourceSnapshotId", "Values": ["snap-1"]},
                    {"Name": "tag:SourceRegion", "Values": [REGION]},
                    {"Name": "tag:SourceAccount", "Values": [ACCOUNT]},
                ],
            },
        )
        assert copies.copy_snapshot_once(client, client, item, sleep=lambda seconds: None) == ("snap-copy", "pending")
        stub.assert_no_pending_responses()
