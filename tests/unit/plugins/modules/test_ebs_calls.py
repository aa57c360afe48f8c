"""The AWS calls of ebs_snapshot and snapshot_purge, checked with botocore's Stubber where moto cannot show them:
pagination (moto never pages), the exact create calls (one CreateSnapshots per instance, tags in the call) and
the purge's mutating calls per action, and the create retries that must never take two snapshots."""

import datetime

import pytest
from botocore.exceptions import ClientError

from ansible_collections.opsvault.aws_backup.plugins.module_utils import clients
from ansible_collections.opsvault.aws_backup.plugins.module_utils import ebs
from ansible_collections.opsvault.aws_backup.plugins.modules import ebs_snapshot
from ansible_collections.opsvault.aws_backup.plugins.modules import snapshot_purge
from tests.harness.module_options import options_of

STARTED = datetime.datetime(2026, 11, 1, 1, 0, tzinfo=datetime.timezone.utc)
MANAGED_FILTER = [{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}]


@pytest.fixture
def stubbed(stub_client):
    client, stubber = stub_client("ec2", "us-east-1")
    with stubber:
        yield client, stubber


def snapshot(snapshot_id, volume_id, state="completed", **tags):
    return {
        "SnapshotId": snapshot_id,
        "VolumeId": volume_id,
        "State": state,
        "StartTime": STARTED,
        "OwnerId": "123456789012",
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }


def purge_options(**overrides):
    return options_of(snapshot_purge, **overrides)


def test_purge_describe_follows_next_token_and_filters_server_side(stubbed):
    client, stubber = stubbed
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [snapshot("snap-1", "vol-a")], "NextToken": "page-2"},
        {"OwnerIds": ["self"], "Filters": MANAGED_FILTER},
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [snapshot("snap-2", "vol-a"), snapshot("snap-3", "vol-b")]},
        {"OwnerIds": ["self"], "Filters": MANAGED_FILTER, "NextToken": "page-2"},
    )
    stubber.add_response(
        "describe_images",
        {"Images": [{"ImageId": "ami-1"}], "NextToken": "images-2"},
        {"Owners": ["self"]},
    )
    stubber.add_response(
        "describe_images", {"Images": [{"ImageId": "ami-2"}]}, {"Owners": ["self"], "NextToken": "images-2"}
    )

    stubber.add_response(
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-1", "LockState": "governance"}], "NextToken": "locks-2"},
        {"MaxResults": 1000},
    )
    stubber.add_response(
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-3", "LockState": "compliance"}]},
        {"MaxResults": 1000, "NextToken": "locks-2"},
    )

    data = snapshot_purge.describe_region(client, purge_options())

    assert [item["SnapshotId"] for item in data["snapshots"]] == ["snap-1", "snap-2", "snap-3"]
    assert [item["ImageId"] for item in data["images"]] == ["ami-1", "ami-2"]
    assert sorted(data["locks"]) == ["snap-1", "snap-3"]


def test_purge_describe_for_stale_unattached_lists_volumes_and_running_instances(stubbed):
    client, stubber = stubbed
    stubber.add_response("describe_snapshots", {"Snapshots": []}, {"OwnerIds": ["self"], "Filters": []})
    stubber.add_response("describe_images", {"Images": []}, {"Owners": ["self"]})
    stubber.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-a"}], "NextToken": "v2"}, {})
    stubber.add_response("describe_volumes", {"Volumes": [{"VolumeId": "vol-b"}]}, {"NextToken": "v2"})
    stubber.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": [{"InstanceId": "i-1"}, {"InstanceId": "i-2"}]}]},
        {"Filters": [{"Name": "instance-state-name", "Values": ["running"]}]},
    )
    stubber.add_response("describe_locked_snapshots", {"Snapshots": []}, {"MaxResults": 1000})

    data = snapshot_purge.describe_region(client, purge_options(stale="unattached", stale_include_unmanaged=True))

    assert [volume["VolumeId"] for volume in data["volumes"]] == ["vol-a", "vol-b"]
    assert data["running"] == {"i-1", "i-2"}


def test_purge_legacy_scope_filters_on_the_delete_on_tag_key():
    assert snapshot_purge.snapshot_filters(purge_options(adopt_legacy=True)) == [
        {"Name": "tag-key", "Values": ["DeleteOn"]}
    ]


@pytest.mark.parametrize(
    "action, operation, params",
    [
        ("delete", "delete_snapshot", {"SnapshotId": "snap-1"}),
        ("archive", "modify_snapshot_tier", {"SnapshotId": "snap-1", "StorageTier": "archive"}),
    ],
)
def test_purge_makes_one_mutating_call_per_snapshot_for_its_action(stubbed, action, operation, params):
    client, stubber = stubbed
    stubber.add_response(operation, {}, params)
    item = {"snapshot_id": "snap-1", "region": "us-east-1"}
    assert snapshot_purge.apply(client, item, action) is item


def test_a_snapshot_already_gone_counts_as_deleted(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound", "The snapshot does not exist.")
    item = {"snapshot_id": "snap-1", "region": "us-east-1"}
    assert snapshot_purge.apply(client, item, "delete") is item


def test_pending_and_already_archived_snapshots_cause_no_call_when_archiving(stubbed):
    client, stubber = stubbed
    now = datetime.datetime(2026, 11, 23, tzinfo=datetime.timezone.utc)
    expired = {"CreatedBy": "opsvault.aws_backup", "DeleteOn": "2026-11-05"}
    old = dict(snapshot("snap-old", "vol-a", **expired), StartTime=STARTED - datetime.timedelta(days=3))
    archived = dict(snapshot("snap-archived", "vol-a", **expired), StorageTier="archive")
    pending = dict(snapshot("snap-pending", "vol-b", state="pending", **expired))
    newest = dict(snapshot("snap-newest", "vol-a", **expired), StartTime=now)
    options = dict(purge_options(action="archive"), as_of=now.date())
    plan = ebs.plan_snapshot_purge("us-east-1", [old, archived, pending, newest], [], [], set(), options, now)
    stubber.add_response("modify_snapshot_tier", {}, {"SnapshotId": "snap-old", "StorageTier": "archive"})

    for item in plan["todo"]:
        snapshot_purge.apply(client, item, "archive")

    assert {entry["snapshot_id"] for entry in plan["skipped"]} == {"snap-archived", "snap-pending", "snap-newest"}


def backup_options(**overrides):
    given = dict(dict(tag_key="Backup", instance_tag_key="Team", instance_tag_value="db"), **overrides)
    return options_of(ebs_snapshot, **given)


def test_snapshot_describe_pages_and_filters_server_side(stubbed):
    client, stubber = stubbed
    volume_filters = [{"Name": "tag-key", "Values": ["Backup"]}]
    instance_filters = [
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        {"Name": "tag:Team", "Values": ["db"]},
    ]
    stubber.add_response(
        "describe_volumes", {"Volumes": [{"VolumeId": "vol-a"}], "NextToken": "t"}, {"Filters": volume_filters}
    )
    stubber.add_response(
        "describe_volumes", {"Volumes": [{"VolumeId": "vol-b"}]}, {"Filters": volume_filters, "NextToken": "t"}
    )
    stubber.add_response(
        "describe_instances", {"Reservations": [{"Instances": [{"InstanceId": "i-1"}]}]}, {"Filters": instance_filters}
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [snapshot("snap-1", "vol-a")], "NextToken": "s"},
        {"OwnerIds": ["self"], "Filters": MANAGED_FILTER},
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [snapshot("snap-2", "vol-b")]},
        {"OwnerIds": ["self"], "Filters": MANAGED_FILTER, "NextToken": "s"},
    )
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [snapshot("snap-p", "vol-a", state="pending")]},
        {"OwnerIds": ["self"], "Filters": [{"Name": "status", "Values": ["pending"]}]},
    )

    data = ebs_snapshot.describe_region(client, backup_options())

    assert [volume["VolumeId"] for volume in data["volumes"]] == ["vol-a", "vol-b"]
    assert [item["SnapshotId"] for item in data["managed"]] == ["snap-1", "snap-2"]
    assert [item["SnapshotId"] for item in data["pending"]] == ["snap-p"]
    assert [item["InstanceId"] for item in data["instances"]] == ["i-1"]


def test_volume_mode_is_one_create_snapshot_with_the_tags_in_the_call(stubbed):
    client, stubber = stubbed
    item = {
        "mode": "volume",
        "region": "us-east-1",
        "volume_id": "vol-a",
        "instance_id": "i-1",
        "device": "/dev/sdf",
        "delete_on": "2026-11-30",
        "retention": "7",
        "description": "opsvault.aws_backup default backup of vol-a (/dev/sdf on i-1)",
        "tags": {"CreatedBy": "opsvault.aws_backup", "VolumeId": "vol-a"},
    }
    stubber.add_response(
        "create_snapshot",
        {"SnapshotId": "snap-new", "State": "pending"},
        {
            "VolumeId": "vol-a",
            "Description": item["description"],
            "TagSpecifications": [
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": "CreatedBy", "Value": "opsvault.aws_backup"},
                        {"Key": "VolumeId", "Value": "vol-a"},
                    ],
                }
            ],
        },
    )

    [result] = ebs.create_snapshots(client, item)

    assert result["snapshot_id"] == "snap-new" and result["state"] == "pending" and result["device"] == "/dev/sdf"


def test_instance_mode_is_one_create_snapshots_per_instance_with_the_tags_in_the_call(stubbed):
    client, stubber = stubbed
    item = {
        "mode": "instance",
        "region": "us-east-1",
        "instance_id": "i-1",
        "volumes": [{"volume_id": "vol-a", "device": "/dev/sdf"}, {"volume_id": "vol-b", "device": "/dev/sdg"}],
        "exclude_boot_volume": True,
        "delete_on": "2026-11-30",
        "retention": "7",
        "description": "opsvault.aws_backup default backup of i-1 (crash-consistent set of its volumes)",
        "tags": {"CreatedBy": "opsvault.aws_backup", "InstanceId": "i-1"},
    }
    stubber.add_response(
        "create_snapshots",
        {
            "Snapshots": [
                {"SnapshotId": "snap-a", "VolumeId": "vol-a", "State": "pending"},
                {"SnapshotId": "snap-b", "VolumeId": "vol-b", "State": "pending"},
            ]
        },
        {
            "InstanceSpecification": {"InstanceId": "i-1", "ExcludeBootVolume": True},
            "Description": item["description"],
            "TagSpecifications": [
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": "CreatedBy", "Value": "opsvault.aws_backup"},
                        {"Key": "InstanceId", "Value": "i-1"},
                    ],
                }
            ],
        },
    )

    results = ebs.create_snapshots(client, item)

    assert [(r["snapshot_id"], r["volume_id"], r["device"], r["state"]) for r in results] == [
        ("snap-a", "vol-a", "/dev/sdf", "pending"),
        ("snap-b", "vol-b", "/dev/sdg", "pending"),
    ]


VOLUME_ITEM = {
    "mode": "volume",
    "region": "us-east-1",
    "volume_id": "vol-a",
    "instance_id": "i-1",
    "device": "/dev/sdf",
    "delete_on": "2026-11-30",
    "retention": "7",
    "description": "opsvault.aws_backup default backup of vol-a (/dev/sdf on i-1)",
    "tags": {
        "CreatedBy": "opsvault.aws_backup",
        "Description": "opsvault.aws_backup default backup of vol-a (/dev/sdf on i-1)",
    },
}
TAKEN_FILTERS = [
    {"Name": "volume-id", "Values": ["vol-a"]},
    {"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]},
]


def no_sleep(seconds):
    assert 0 < seconds <= 20


def taken(snapshot_id, description=VOLUME_ITEM["description"]):
    return snapshot(snapshot_id, "vol-a", "pending", CreatedBy="opsvault.aws_backup", Description=description)


def test_a_create_that_failed_after_aws_took_it_is_adopted_not_repeated(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshot", "InternalError", "Internal error", http_status_code=500)
    stubber.add_response(
        "describe_snapshots",
        {"Snapshots": [taken("snap-earlier"), taken("snap-other", "another label"), taken("snap-taken")]},
        {"OwnerIds": ["self"], "Filters": TAKEN_FILTERS},
    )

    [result] = ebs.create_once(client, client, VOLUME_ITEM, {"snap-earlier"}, sleep=no_sleep)

    assert result["snapshot_id"] == "snap-taken" and result["volume_id"] == "vol-a" and result["device"] == "/dev/sdf"


def test_a_create_that_failed_before_aws_took_it_is_sent_again(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshot", "Unavailable", "Service unavailable", http_status_code=503)
    stubber.add_response("describe_snapshots", {"Snapshots": []}, {"OwnerIds": ["self"], "Filters": TAKEN_FILTERS})
    stubber.add_client_error("create_snapshot", "RequestLimitExceeded", "Request limit exceeded.", http_status_code=503)
    stubber.add_response("create_snapshot", {"SnapshotId": "snap-new", "State": "pending"})

    [result] = ebs.create_once(client, client, VOLUME_ITEM, set(), sleep=no_sleep)

    assert result["snapshot_id"] == "snap-new"


def test_a_refused_create_is_not_retried_and_endless_throttling_gives_up(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("create_snapshot", "UnauthorizedOperation", "not authorized", http_status_code=403)
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        ebs.create_once(client, client, VOLUME_ITEM, set(), sleep=no_sleep)

    for _attempt in range(3):
        stubber.add_client_error(
            "create_snapshot", "RequestLimitExceeded", "Request limit exceeded.", http_status_code=503
        )
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ebs.create_once(client, client, VOLUME_ITEM, set(), attempts=3, sleep=no_sleep)


def test_an_instance_set_taken_before_a_lost_connection_is_adopted(stubbed):
    client, stubber = stubbed
    item = {
        "mode": "instance",
        "region": "us-east-1",
        "instance_id": "i-1",
        "volumes": [{"volume_id": "vol-a", "device": "/dev/sdf"}, {"volume_id": "vol-b", "device": "/dev/sdg"}],
        "exclude_boot_volume": True,
        "delete_on": "2026-11-30",
        "retention": "7",
        "description": "opsvault.aws_backup default backup of i-1 (crash-consistent set of its volumes)",
        "tags": {"CreatedBy": "opsvault.aws_backup", "InstanceId": "i-1"},
    }
    label = {"CreatedBy": "opsvault.aws_backup", "InstanceId": "i-1", "Description": item["description"]}
    stubber.add_client_error("create_snapshots", "InternalError", "Internal error", http_status_code=500)
    stubber.add_response(
        "describe_snapshots",
        {
            "Snapshots": [
                snapshot("snap-b", "vol-b", "pending", **label),
                snapshot("snap-a", "vol-a", "pending", **label),
            ]
        },
        {
            "OwnerIds": ["self"],
            "Filters": [
                {"Name": "tag:InstanceId", "Values": ["i-1"]},
                {"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]},
            ],
        },
    )

    results = ebs.create_once(client, client, item, set(), sleep=no_sleep)

    assert [(r["snapshot_id"], r["volume_id"], r["device"]) for r in results] == [
        ("snap-a", "vol-a", "/dev/sdf"),
        ("snap-b", "vol-b", "/dev/sdg"),
    ]


def test_create_calls_go_through_clients_that_never_retry_by_themselves(monkeypatch):
    job = ebs_snapshot.EbsSnapshot.__new__(ebs_snapshot.EbsSnapshot)
    made = []

    def make_clients(regions, **retries):
        made.append((regions, retries))
        return {region: "creator in " + region for region in regions}

    job.make_clients, job.clients, job.known = make_clients, {"us-east-1": "describer"}, {"us-east-1": {"snap-old"}}
    job.max_concurrency, job.errors = 2, []
    calls = []
    monkeypatch.setattr(ebs, "create_once", lambda *args: calls.append(args) or [{"snapshot_id": "snap-new"}])

    assert job.apply_all([VOLUME_ITEM]) == [{"snapshot_id": "snap-new"}]
    assert made == [(["us-east-1"], {"total_max_attempts": 1})]
    assert calls == [("creator in us-east-1", "describer", VOLUME_ITEM, {"snap-old"})]
    assert clients.client_config(4, total_max_attempts=1).retries["total_max_attempts"] == 1
