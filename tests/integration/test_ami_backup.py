"""ami_backup through real ansible-playbook runs against moto."""

import datetime

from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import moto_server
from tests.harness.ansible_run import run_playbook

TODAY = datetime.datetime.now(datetime.timezone.utc).date()


def backup_task(name="backup", **options):
    return ansible_run.task("ami_backup", name, **options)


def managed_images(ec2):
    return {
        fleet.tags_of(image)["SourceInstanceId"]: image
        for image in fleet.images(ec2).values()
        if fleet.tags_of(image).get("CreatedBy") == "opsvault.aws_backup"
    }


def test_backup_selects_by_tag_applies_retention_reboot_and_tags_then_rerun_creates_nothing(aws, play):
    east, west = aws.ec2("us-east-1"), aws.ec2("eu-west-1")
    [web] = fleet.launch(east, {"Backup": "", "Name": "web-1", "Retention": "2w", "Team": "ops"})
    [bad] = fleet.launch(east, {"Backup": "", "Retention": "forever"})
    [rebooted] = fleet.launch(east, {"Backup": "", "Name": "db", "BackupReboot": "yes", "Retention": "+6 months"})
    [stopped] = fleet.launch(east, {"Backup": ""}, state="stopped")
    fleet.launch(east, {"Name": "not-selected"})
    [far] = fleet.launch(west, {"Backup": "", "Retention": "1y"})

    run = play(
        [
            backup_task(
                regions=["us-east-1", "eu-west-1"], copy_tags=["Team"], extra_tags={"CostCenter": "42"}, retention="3"
            )
        ]
    )
    result = run.result("backup")
    assert run.rc == 0, result
    assert result["changed"] is True

    east_images, west_images = managed_images(east), managed_images(west)
    assert set(east_images) == {web, bad, rebooted}
    assert set(west_images) == {far}
    assert len(fleet.images(east)) == 3 and len(fleet.images(west)) == 1

    six_months = TODAY.replace(year=TODAY.year + (TODAY.month + 5) // 12, month=(TODAY.month + 5) % 12 + 1)
    expected_delete_on = {
        web: (TODAY + datetime.timedelta(days=14)).isoformat(),
        bad: (TODAY + datetime.timedelta(days=3)).isoformat(),
        far: TODAY.replace(year=TODAY.year + 1).isoformat(),
    }
    for instance_id, day in expected_delete_on.items():
        image = east_images.get(instance_id) or west_images[instance_id]
        assert fleet.tags_of(image)["DeleteOn"] == day
    assert fleet.tags_of(east_images[rebooted])["DeleteOn"][:7] == six_months.isoformat()[:7]

    web_tags = fleet.tags_of(east_images[web])
    assert web_tags == {
        "CreatedBy": "opsvault.aws_backup",
        "DeleteOn": expected_delete_on[web],
        "BackupPolicy": "default",
        "SourceInstanceId": web,
        "Region": "us-east-1",
        "Name": "web-1",
        "Team": "ops",
        "CostCenter": "42",
    }
    assert east_images[web]["Name"].startswith("web-1-" + web + "-")
    snapshot_id = east_images[web]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    [snapshot] = east.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert fleet.tags_of(snapshot) == web_tags

    no_reboot = {request["InstanceId"]: request["NoReboot"] for request in moto_server.CREATE_IMAGE_REQUESTS}
    assert no_reboot == {web: True, bad: True, rebooted: False, far: True}
    returned = {image["instance_id"]: image for image in result["images"]}
    assert returned[rebooted]["reboot"] is True and returned[web]["reboot"] is False
    assert returned[web]["image_id"] == east_images[web]["ImageId"]
    assert returned[far]["region"] == "eu-west-1"

    assert result["skipped_resources"] == [
        {"resource": stopped, "region": "us-east-1", "reason": "instance is stopped; instance_states is running"}
    ]
    assert any(bad in warning and "'forever'" in warning for warning in result["warnings"])
    assert result["errors"] == []

    rerun = play([backup_task(regions=["us-east-1", "eu-west-1"])]).result("backup")
    assert rerun["changed"] is False
    assert rerun["images"] == []
    assert sorted(item["resource"] for item in rerun["skipped_resources"]) == sorted([web, bad, rebooted, stopped, far])
    assert len(fleet.images(east)) == 3 and len(fleet.images(west)) == 1


def test_selection_by_key_value_in_all_regions_with_stopped_instances_and_wait(aws, play):
    east, west = aws.ec2("us-east-1"), aws.ec2("ap-southeast-2")
    [daily_running] = fleet.launch(east, {"Backup": "ProductionDaily"})
    [daily_stopped] = fleet.launch(west, {"Backup": "ProductionDaily"}, state="stopped")
    fleet.launch(east, {"Backup": "ProductionWeekly"})

    result = play(
        [backup_task(regions="all", tag_value="ProductionDaily", instance_states=["running", "stopped"], wait=True)]
    ).result("backup")

    assert result["changed"] is True and result["errors"] == []
    assert len(result["regions"]) > 10 and {"us-east-1", "ap-southeast-2"} <= set(result["regions"])
    assert {(image["instance_id"], image["state"]) for image in result["images"]} == {
        (daily_running, "available"),
        (daily_stopped, "available"),
    }
    assert set(managed_images(east)) == {daily_running}
    assert set(managed_images(west)) == {daily_stopped}
    assert fleet.tags_of(managed_images(east)[daily_running])["BackupPolicy"] == "ProductionDaily"


def test_check_mode_returns_the_plan_and_creates_nothing(aws, play):
    east = aws.ec2("us-east-1")
    [instance] = fleet.launch(east, {"Backup": "", "Name": "app"})

    result = play([backup_task()], check=True).result("backup")

    assert result["changed"] is True
    [planned] = result["images"]
    assert planned["instance_id"] == instance and planned["image_id"] is None and planned["state"] == "planned"
    assert planned["tags"]["CreatedBy"] == "opsvault.aws_backup"
    assert fleet.images(east) == {}
    assert moto_server.CREATE_IMAGE_REQUESTS == []
    assert result["msg"].startswith("us-east-1: check mode, nothing changed. Would create 1 AMI(s): ")
    assert "created" not in result["msg"].lower().replace("would create", "")


def test_bad_options_fail_before_any_change_naming_the_value(aws, play):
    east = aws.ec2("us-east-1")
    fleet.launch(east, {"Backup": ""})
    cases = {
        "negative retention": ({"retention": "-7"}, "'-7'"),
        "unknown region": ({"regions": ["us-east-1", "eu-west-9"]}, "'eu-west-9'"),
        "empty tag_key": ({"tag_key": " "}, "tag_key must not be empty"),
        "bad min_interval": ({"min_interval": "soon"}, "min_interval 'soon' is not a duration"),
        "empty regions": ({"regions": []}, "regions [] names no region"),
        "blank regions": ({"regions": [""]}, "regions [''] names no region"),
        "reserved extra tag": ({"extra_tags": {"DeleteOn": "2099-01-01"}}, "DeleteOn"),
        "name without id": ({"name_template": "{name}-{timestamp}"}, "'{name}-{timestamp}'"),
        "bad state": ({"instance_states": ["terminated"]}, "terminated"),
    }
    tasks = [dict(backup_task(name, **options), ignore_errors=True) for name, (options, _expected) in cases.items()]

    run = play(tasks)

    for name, (_options, expected) in cases.items():
        result = run.result(name)
        assert result.get("failed") is True, (name, result)
        assert expected in result["msg"], (name, result["msg"])
    assert fleet.images(east) == {}
    assert moto_server.CREATE_IMAGE_REQUESTS == []


def test_shipped_playbook_runs_by_fqcn(aws, tmp_path):
    east = aws.ec2("us-east-1")
    [instance] = fleet.launch(east, {"Backup": "Nightly"})
    fleet.launch(east, {"Backup": "Weekly"})

    run = run_playbook(
        "opsvault.aws_backup.ami_backup",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars={"ami_backup_tag_value": "Nightly", "ami_backup_retention": "30d"},
        env={"AWS_REGION": "us-east-1"},
    )

    assert run.rc == 0, run.stdout
    result = run.result("Create AMIs of the tagged instances")
    assert [image["instance_id"] for image in result["images"]] == [instance]
    assert set(managed_images(east)) == {instance}
    assert (
        fleet.tags_of(managed_images(east)[instance])["DeleteOn"] == (TODAY + datetime.timedelta(days=30)).isoformat()
    )
    assert "us-east-1: Created 1 AMI(s)" in run.result("Summarise the backup")["msg"]


def test_shipped_playbook_treats_empty_survey_answers_as_unset_and_zero_interval_as_off(aws, tmp_path):
    east = aws.ec2("us-east-1")
    [instance] = fleet.launch(east, {"Backup": ""})
    unanswered = {
        "ami_backup_regions": "",
        "ami_backup_tag_value": "",
        "ami_backup_retention": "",
        "ami_backup_min_interval": 0,
    }

    for attempt in range(2):
        run = run_playbook(
            "opsvault.aws_backup.ami_backup",
            tmp_path,
            endpoint=aws.endpoint,
            extra_vars=unanswered,
            env={"AWS_REGION": "us-east-1"},
        )
        assert run.rc == 0, (attempt, run.stdout)

    images = [image for image in fleet.images(east).values() if fleet.tags_of(image)["SourceInstanceId"] == instance]
    assert len(images) == 2
    assert {fleet.tags_of(image)["DeleteOn"] for image in images} == {(TODAY + datetime.timedelta(days=7)).isoformat()}


def test_module_defaults_for_amazon_aws_only_fail_naming_our_group_before_any_call(aws, tmp_path):
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/amazon.aws.aws": {"region": "us-east-1", "endpoint_url": aws.endpoint}},
            "tasks": [dict(backup_task(), ignore_errors=True)],
        }
    ]

    run = run_playbook(play, tmp_path, env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})

    result = run.result("backup")
    assert result["failed"] is True
    assert "no region given" in result["msg"] and "group/opsvault.aws_backup.aws" in result["msg"]


def test_the_first_amis_are_created_while_the_instances_are_still_being_described(aws, counting_proxy, tmp_path):
    east = aws.ec2("us-east-1")
    # One instance per launch, as most fleets are launched: DescribeInstances pages count reservations.
    launched = [instance_id for _number in range(160) for instance_id in fleet.launch(east, {"Backup": ""})]
    counting_proxy.configure(latency_ms=20)
    run = run_playbook(
        ansible_run.aws_play(counting_proxy.endpoint, [backup_task(regions=["us-east-1"])]),
        tmp_path,
        endpoint=counting_proxy.endpoint,
    )
    assert run.rc == 0, run.stdout
    stats = counting_proxy.stats()
    # Pages of 10, 20, 40, 80, then the last 10: the first AMIs go out before the last page is asked for.
    assert stats["requests"]["ec2:DescribeInstances"] == 5
    assert stats["timeline"]["first"]["ec2:CreateImage"] < stats["timeline"]["last"]["ec2:DescribeInstances"]
    assert stats["requests"]["ec2:CreateImage"] == 160
    assert set(managed_images(east)) == set(launched) and len(fleet.images(east)) == 160
    assert sorted(image["instance_id"] for image in run.result("backup")["images"]) == sorted(launched)
