import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import restore
from ansible_collections.opsvault.aws_backup.plugins.modules import instance_restore
from tests.harness.module_options import options_of

NETWORK = {"subnet_id": "subnet-1", "security_group_ids": ["sg-1"]}


def options(**params):
    return options_of(instance_restore, **dict({"subnet_id": "subnet-1", "security_group_ids": ["sg-1"]}, **params))


def image(image_id, source, created, state="available", managed=True, **tags):
    tags = dict(tags, SourceInstanceId=source)
    if managed:
        tags["CreatedBy"] = "opsvault.aws_backup"
    return {
        "ImageId": image_id,
        "State": state,
        "CreationDate": created,
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-1", "VolumeSize": 8, "VolumeType": "gp3"}},
            {"DeviceName": "/dev/sdb", "VirtualName": "ephemeral0"},
        ],
    }


def instance(instance_id, instance_type="m5.large"):
    return {"InstanceId": instance_id, "InstanceType": instance_type}


def plan(images, instances=(), restored=(), network=None, **params):
    return restore.plan_instance_restores(
        "eu-west-1", images, list(instances), list(restored), network or NETWORK, options(**params)
    )


def test_newest_available_ami_of_each_source_and_a_pending_newest_is_passed_over_with_a_note():
    region_plan = plan(
        [
            image("ami-old", "i-a", "2026-11-20T01:00:00.000Z"),
            image("ami-new", "i-a", "2026-11-22T01:00:00.000Z", Name="web"),
            image("ami-ok", "i-b", "2026-11-21T01:00:00.000Z"),
            image("ami-pending", "i-b", "2026-11-22T01:00:00.000Z", state="pending"),
            image("ami-unmanaged", "i-b", "2026-11-23T01:00:00.000Z", managed=False),
        ],
        [instance("i-a"), instance("i-b"), instance("i-c")],
    )
    chosen = {item["source_instance_id"]: item["image_id"] for item in region_plan["todo"]}
    assert chosen == {"i-a": "ami-new", "i-b": "ami-ok"}
    assert region_plan["notes"] == [
        "the newest AMI of i-b, ami-pending, is pending: restored from the newest available one, ami-ok"
    ]
    assert [(entry["resource"], entry["reason"]) for entry in region_plan["skipped"]] == [
        ("i-c", "no managed AMI of i-c")
    ]
    assert region_plan["errors"] == []


def test_the_run_request_requires_imdsv2_deletes_every_volume_on_termination_and_tags_in_the_call():
    [item] = plan(
        [image("ami-new", "i-a", "2026-11-22T01:00:00.000Z", Name="web")], [instance("i-a")], tags={"T": "1"}
    )["todo"]
    request = item["request"]
    assert request["MetadataOptions"] == {"HttpTokens": "required", "HttpEndpoint": "enabled"}
    assert request["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3", "DeleteOnTermination": True}}
    ]
    assert request["NetworkInterfaces"] == [
        {
            "DeviceIndex": 0,
            "SubnetId": "subnet-1",
            "AssociatePublicIpAddress": False,
            "DeleteOnTermination": True,
            "Groups": ["sg-1"],
        }
    ]
    assert request["InstanceType"] == "m5.large" and "KeyName" not in request
    assert [spec["ResourceType"] for spec in request["TagSpecifications"]] == ["instance", "volume"]
    assert item["tags"] == {
        "T": "1",
        "Name": "restore of web",
        "SourceInstanceId": "i-a",
        "SourceImageId": "ami-new",
        "RestoredBy": "opsvault.aws_backup",
        "RestoreId": item["restore_id"],
    }
    assert request["ClientToken"] == restore.client_token("ami-new", item["restore_id"])
    assert len(request["ClientToken"]) == 64


def test_the_request_id_is_stable_for_the_same_options_and_changes_with_them():
    first, again = options(), options()
    assert first["restore_id"] == again["restore_id"]
    assert options(instance_type="t3.micro")["restore_id"] != first["restore_id"]
    assert options(restore_id="drill-1")["restore_id"] == "drill-1"


def test_as_of_and_explicit_ids_without_backup_are_errors_and_a_rerun_finds_the_launched_instance():
    images = [image("ami-old", "i-a", "2026-11-01T01:00:00.000Z"), image("ami-new", "i-a", "2026-11-22T01:00:00.000Z")]
    region_plan = plan(images, [instance("i-a"), instance("i-b")], instance_ids=["i-a", "i-b"], as_of="2026-11-10")
    assert [item["image_id"] for item in region_plan["todo"]] == ["ami-old"]
    [error] = region_plan["errors"]
    assert (error["resource"], error["code"], error["message"]) == (
        "i-b",
        "NoAvailableBackup",
        "no managed AMI of i-b on or before 2026-11-10",
    )

    token = region_plan["todo"][0]["client_token"]
    launched = dict(instance("i-new"), ClientToken=token, State={"Name": "running"})
    rerun = plan(images, [instance("i-a")], [launched], instance_ids=["i-a", "i-b"], as_of="2026-11-10")
    assert rerun["todo"] == []
    assert [(item["instance_id"], item["launched"]) for item in rerun["existing"]] == [("i-new", False)]


def test_image_ids_must_be_available_backups_of_the_sources_asked_for():
    images = [
        image("ami-a", "i-a", "2026-11-22T01:00:00.000Z"),
        image("ami-p", "i-b", "2026-11-22T01:00:00.000Z", "pending"),
    ]
    assert plan(images, image_ids=["ami-a"], instance_ids=["i-b"])["bad_input"] == [
        "image_ids: ami-a in eu-west-1 is a backup of i-a, not of i-b (instance_ids)"
    ]
    assert plan(images, image_ids=["ami-p"])["bad_input"] == [
        "image_ids: ami-p in eu-west-1 is pending; only available AMIs are restored"
    ]
    gone = plan(images, image_ids=["ami-a"])
    assert gone["errors"][0]["message"] == "instance_type is not set and the source i-a is gone, so its type is unknown"
    assert [item["instance_type"] for item in plan(images, image_ids=["ami-a"], instance_type="t3.micro")["todo"]] == [
        "t3.micro"
    ]


def test_unknown_ids_are_named_with_their_option():
    found = {"i-a", "ami-a"}
    assert restore.unknown_inputs(options(instance_ids=["i-a", "i-x"], image_ids=["ami-y"]), found, ["eu-west-1"]) == [
        "instance_ids: i-x is neither an instance nor the source of a managed AMI in eu-west-1",
        "image_ids: ami-y is not a managed AMI of this account in eu-west-1",
    ]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"networks": {"eu-west-1": {"subnet_id": "subnet-2"}}}, "set one of subnet_id and networks"),
        ({"subnet_id": None, "networks": {"eu-west-1": {"subnets": "x"}}}, "networks 'eu-west-1'"),
        ({"as_of": "yesterday"}, "as_of 'yesterday' is not a date"),
        ({"tags": {"RestoredBy": "me"}}, "tags may not set RestoredBy"),
    ],
)
def test_bad_options_name_the_option_and_value(params, message):
    with pytest.raises(ValueError, match=message):
        options(**params)


def test_wait_gives_each_instance_its_recovery_time_and_none_for_those_not_ok_in_time():
    clock = {"now": 100.0}

    class Client:
        calls = 0

        def describe_instance_status(self, InstanceIds, IncludeAllInstances):
            assert IncludeAllInstances is True and len(InstanceIds) <= restore.STATUS_BATCH
            self.calls += 1
            ok = {"Status": "ok"}
            statuses = []
            for instance_id in InstanceIds:
                ready = instance_id == "i-fast" or (instance_id == "i-slow" and self.calls >= 3)
                statuses.append(
                    {
                        "InstanceId": instance_id,
                        "InstanceStatus": ok if ready else {"Status": "initializing"},
                        "SystemStatus": ok,
                    }
                )
            return {"InstanceStatuses": statuses}

    def sleep(seconds):
        clock["now"] += seconds

    recovered = restore.wait_status_ok(
        Client(),
        {"i-fast": 95.0, "i-slow": 90.0, "i-never": 90.0},
        timeout=60,
        delay=15,
        clock=lambda: clock["now"],
        sleep=sleep,
    )
    assert recovered == {"i-fast": 5.0, "i-slow": 40.0, "i-never": None}


def test_choose_reads_states_as_the_purge_rule_does():
    backups = restore.image_backups([image("ami-f", "i-a", "2026-11-22T01:00:00.000Z", state="failed")])["i-a"]
    assert restore.choose(backups) == (None, "no available AMI of this source: the newest, ami-f, is failed")
    assert restore.choose([], datetime.date(2026, 1, 1), "i-z") == (
        None,
        "no managed AMI of i-z on or before 2026-01-01",
    )
