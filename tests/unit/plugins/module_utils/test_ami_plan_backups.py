import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import DEFAULT_NAME_TEMPLATE
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import ami_name
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import check_name_template
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import image_for_plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import instance_for_plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_backups
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import sanitise_name
from ansible_collections.opsvault.aws_backup.plugins.modules import ami_backup
from tests.harness.module_options import options_of

NOW = datetime.datetime(2026, 11, 23, 1, 0, 0, tzinfo=datetime.timezone.utc)


def options(**params):
    return options_of(ami_backup, **params)


def instance(instance_id, state="running", **tags):
    return {
        "InstanceId": instance_id,
        "State": {"Name": state},
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }


def image(image_id, source, created, state="available", managed=True):
    tags = [{"Key": "SourceInstanceId", "Value": source}]
    if managed:
        tags.append({"Key": "CreatedBy", "Value": "opsvault.aws_backup"})
    return {"ImageId": image_id, "State": state, "CreationDate": created, "Tags": tags}


def test_plan_per_instance_with_retention_reboot_and_tags():
    plan = plan_backups(
        "eu-west-1",
        [
            instance("i-b", Backup="", Name="db", Retention="+6 months", BackupReboot="Yes", Team="dba"),
            instance("i-a", Backup=""),
        ],
        [],
        options(copy_tags=["Team"], extra_tags={"CostCenter": "7"}),
        NOW,
    )
    assert plan["skipped"] == [] and plan["warnings"] == []
    first, second = plan["todo"]
    assert (first["instance_id"], first["name"], first["reboot"], first["delete_on"]) == (
        "i-a",
        "i-a-20261123T010000Z",
        False,
        "2026-11-30",
    )
    assert (second["instance_id"], second["name"], second["reboot"], second["delete_on"]) == (
        "i-b",
        "db-i-b-20261123T010000Z",
        True,
        "2027-05-23",
    )
    assert second["tags"] == {
        "Team": "dba",
        "CostCenter": "7",
        "Name": "db",
        "SourceInstanceId": "i-b",
        "Region": "eu-west-1",
        "CreatedBy": "opsvault.aws_backup",
        "DeleteOn": "2027-05-23",
        "BackupPolicy": "default",
    }


def test_bad_retention_tag_warns_naming_instance_and_value_and_uses_default():
    plan = plan_backups(
        "us-east-1",
        [instance("i-a", Backup="", Retention="forever")],
        [],
        options(retention="30d"),
        NOW,
    )
    assert plan["todo"][0]["delete_on"] == "2026-12-23"
    assert len(plan["warnings"]) == 1
    assert plan["warnings"][0].startswith("instance i-a in us-east-1: Retention tag ignored")
    assert "'forever'" in plan["warnings"][0] and "'30 days'" in plan["warnings"][0]


def test_results_show_the_retention_as_a_period_not_the_raw_tag():
    plan = plan_backups("us-east-1", [instance("i-a", Backup="", Retention="3w")], [], options(), NOW)
    assert (plan["todo"][0]["retention"], plan["todo"][0]["delete_on"]) == ("21 days", "2026-12-14")
    plan = plan_backups("us-east-1", [instance("i-a", Backup="")], [], options(retention="6m"), NOW)
    assert plan["todo"][0]["retention"] == "6 months"


def test_instances_in_other_states_are_skipped_with_reason():
    plan = plan_backups("us-east-1", [instance("i-a", "stopped", Backup="")], [], options(), NOW)
    assert plan["todo"] == []
    assert plan["skipped"] == [
        {"resource": "i-a", "region": "us-east-1", "reason": "instance is stopped; instance_states is running"}
    ]
    plan = plan_backups(
        "us-east-1", [instance("i-a", "stopped", Backup="")], [], options(instance_states=["running", "stopped"]), NOW
    )
    assert [item["instance_id"] for item in plan["todo"]] == ["i-a"]


def test_min_interval_skips_instances_with_a_recent_live_managed_backup():
    images = [
        image("ami-recent", "i-a", "2026-11-23T00:30:00.000Z"),
        image("ami-old", "i-b", "2026-11-22T23:00:00.000Z"),
        image("ami-failed", "i-c", "2026-11-23T00:50:00.000Z", state="failed"),
        image("ami-pending", "i-d", "2026-11-23T00:55:00.000Z", state="pending"),
        image("ami-unmanaged", "i-e", "2026-11-23T00:55:00.000Z", managed=False),
    ]
    instances = [instance(i, Backup="") for i in ("i-a", "i-b", "i-c", "i-d", "i-e")]
    plan = plan_backups("us-east-1", instances, images, options(), NOW)
    assert [item["instance_id"] for item in plan["todo"]] == ["i-b", "i-c", "i-e"]
    assert [(item["resource"], item["image_id"]) for item in plan["skipped"]] == [
        ("i-a", "ami-recent"),
        ("i-d", "ami-pending"),
    ]
    assert "within min_interval" in plan["skipped"][0]["reason"]
    plan = plan_backups("us-east-1", instances, images, options(min_interval="0"), NOW)
    assert len(plan["todo"]) == 5


def test_without_tag_value_the_policy_is_the_selector_tags_own_value():
    instances = [instance("i-a", Backup="Weekly"), instance("i-b", Backup=""), instance("i-c", Backup="  ")]
    plan = plan_backups("us-east-1", instances, [], options(), NOW)
    assert [item["tags"]["BackupPolicy"] for item in plan["todo"]] == ["Weekly", "default", "default"]


def test_a_bad_min_interval_names_the_option_and_value():
    with pytest.raises(ValueError, match="min_interval 'soon' is not a duration"):
        options(min_interval="soon")


def test_policy_is_the_selector_value():
    plan = plan_backups(
        "us-east-1", [instance("i-a", Backup="ProductionDaily")], [], options(tag_value="ProductionDaily"), NOW
    )
    assert plan["todo"][0]["tags"]["BackupPolicy"] == "ProductionDaily"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("web server #1 (blue)", "web server 1 (blue)"),
        ("db::primary", "db-primary"),
        ("--x--", "x"),
        ("réseau/ä", "r-seau/"),
    ],
)
def test_sanitise_name(text, expected):
    assert sanitise_name(text) == expected


def test_long_names_keep_id_and_timestamp():
    fields = {
        "name": "n" * 300,
        "instance_id": "i-0123456789abcdef0",
        "policy": "p",
        "region": "r",
        "timestamp": "20261123T010000Z",
        "date": "d",
    }
    name = ami_name(DEFAULT_NAME_TEMPLATE, fields)
    assert len(name) == 128
    assert name.endswith("-i-0123456789abcdef0-20261123T010000Z")


def test_name_template_must_be_unique_per_instance_and_run():
    check_name_template("{policy}/{name}/{instance_id}/{timestamp}")
    with pytest.raises(ValueError, match="must contain"):
        check_name_template("{name}-{date}")
    with pytest.raises(ValueError, match="unknown|not valid"):
        check_name_template("{name}-{instance_id}-{timestamp}-{owner}")


def test_items_cut_to_what_the_planner_reads_give_the_same_plan():
    whole = [
        dict(
            instance("i-a", Backup="", Name="web", Retention="30d", BackupReboot="yes"),
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-1"}}],
            NetworkInterfaces=[{"NetworkInterfaceId": "eni-1"}],
        ),
        instance("i-b", state="stopped", Backup=""),
        instance("i-c", Backup="", Retention="bad"),
        instance("i-d", Backup="", Retention="bad"),
    ]
    images = [image("ami-1", "i-z", "2026-11-20T00:00:00.000Z")]
    cut = [instance_for_plan(item) for item in whole]
    assert set(cut[0]) == {"InstanceId", "State", "Tags"} and cut[0]["Tags"]["Retention"] == "30d"
    assert cut[0]["State"] is instance_for_plan(whole[2])["State"]  # one dict per state name
    expected = plan_backups("eu-west-1", whole, images, options(), NOW)
    assert plan_backups("eu-west-1", cut, [image_for_plan(i) for i in images], options(), NOW) == expected
    assert len(expected["warnings"]) == 2  # a bad Retention warns for each instance, even when cached
    delete_on = {item["instance_id"]: item["delete_on"] for item in expected["todo"]}
    assert delete_on["i-c"] is delete_on["i-d"]  # one DeleteOn text per date
