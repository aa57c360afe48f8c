"""instance_restore through real ansible-playbook runs against moto (and the counting, fault-injecting proxy)."""

import datetime

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

NOW = datetime.datetime.now(datetime.timezone.utc)
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default"}


def restore_task(name="restore", check_mode=False, **options):
    entry = {"name": name, "opsvault.aws_backup.instance_restore": options, "ignore_errors": True}
    if check_mode:
        entry["check_mode"] = True
    return entry


def backup(ec2, instance_id, days_ago, state=None, name_tag=None):
    """A managed AMI of ``instance_id``, created ``days_ago`` days ago, in the given state."""
    tags = dict(MARKER, SourceInstanceId=instance_id, DeleteOn="2999-01-01")
    if name_tag:
        tags["Name"] = name_tag
    image_id = ec2.create_image(
        InstanceId=instance_id,
        Name="backup-{0}-{1}".format(instance_id, days_ago),
        TagSpecifications=[{"ResourceType": "image", "Tags": fleet.tag_list(tags)}],
    )["ImageId"]
    fleet.set_image(ec2.meta.region_name, image_id, state=state, created=NOW - datetime.timedelta(days=days_ago))
    return image_id


def isolated_subnet(ec2, zone_suffix="a"):
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    zone = ec2.meta.region_name + zone_suffix
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="restore", Description="no inbound", VpcId=vpc)["GroupId"]
    return subnet, group


def restored_instances(ec2):
    """Every instance carrying the restore marker, by source instance id (lists, to see doubles)."""
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:RestoredBy", "Values": ["opsvault.aws_backup"]}])
    found = {}
    for reservation in reservations["Reservations"]:
        for instance in reservation["Instances"]:
            found.setdefault(fleet.tags_of(instance)["SourceInstanceId"], []).append(instance)
    return found


def mutating(stats):
    return {key: count for key, count in stats["requests"].items() if aws_proxy.is_mutating(*key.split(":", 1))}


def test_one_instance_per_source_from_its_newest_available_ami_check_mode_first_then_rerun_changes_nothing(
    aws, counting_proxy, tmp_path
):
    ec2 = aws.ec2()
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    [db] = fleet.launch(ec2, {"Backup": "", "Name": "db"})
    [fresh] = fleet.launch(ec2, {"Backup": ""})
    fleet.launch(ec2, {"Name": "not selected"})
    backup(ec2, web, 3)
    web_newest = backup(ec2, web, 1, name_tag="web")
    db_available = backup(ec2, db, 2)
    db_pending = backup(ec2, db, 0, state="pending")
    subnet, group = isolated_subnet(ec2)
    options = dict(subnet_id=subnet, security_group_ids=[group], tags={"Purpose": "recovery"})

    def run(tasks):
        play = ansible_run.aws_play(counting_proxy.endpoint, tasks)
        return ansible_run.run_playbook(play, tmp_path, endpoint=counting_proxy.endpoint)

    run_check = run([restore_task("plan", check_mode=True, **options)])
    plan = run_check.result("plan")
    assert run_check.rc == 0, plan
    stats = counting_proxy.stats()
    assert stats["total"] > 0 and stats["mutating"] == 0, mutating(stats)
    assert restored_instances(ec2) == {}
    planned = {item["source_instance_id"]: item for item in plan["instances"]}
    assert set(planned) == {web, db}
    assert planned[web]["image_id"] == web_newest and planned[web]["state"] == "planned"
    assert planned[db]["image_id"] == db_available
    assert db_pending in planned[db]["note"] and "pending" in planned[db]["note"]
    assert [(item["resource"], item["reason"]) for item in plan["skipped_resources"]] == [
        (fresh, "no managed AMI of {0}".format(fresh))
    ]
    assert "Would launch 2 instance(s)" in plan["msg"] and "Left alone 1 resource(s)" in plan["msg"]

    counting_proxy.reset()
    first = run([restore_task("restore", **options)])
    result = first.result("restore")
    assert first.rc == 0, result
    assert result["changed"] is True
    assert counting_proxy.stats()["requests"].get("ec2:RunInstances") == 2

    found = restored_instances(ec2)
    assert {source: len(instances) for source, instances in found.items()} == {web: 1, db: 1}
    instance = found[web][0]
    assert instance["ImageId"] == web_newest and found[db][0]["ImageId"] == db_available
    assert instance["InstanceType"] == "t3.micro"
    [interface] = instance["NetworkInterfaces"]
    assert instance["SubnetId"] == subnet and [g["GroupId"] for g in interface["Groups"]] == [group]
    assert interface["Attachment"]["DeleteOnTermination"] is True
    assert instance.get("PublicIpAddress") is None
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert all(mapping["Ebs"]["DeleteOnTermination"] for mapping in instance["BlockDeviceMappings"])
    assert instance.get("KeyName") is None
    tags = fleet.tags_of(instance)
    assert tags == {
        "Purpose": "recovery",
        "Name": "restore of web",
        "SourceInstanceId": web,
        "SourceImageId": web_newest,
        "RestoredBy": "opsvault.aws_backup",
        "RestoreId": result["instances"][0]["restore_id"],
    }
    [volume] = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}])[
        "Volumes"
    ]
    assert fleet.tags_of(volume) == tags
    returned = {item["source_instance_id"]: item for item in result["instances"]}
    assert returned[web]["instance_id"] == instance["InstanceId"] and returned[web]["launched"] is True

    counting_proxy.reset()
    again = run([restore_task("again", **options)])
    rerun = again.result("again")
    assert again.rc == 0 and rerun["changed"] is False, rerun
    assert counting_proxy.stats()["mutating"] == 0
    assert {item["instance_id"] for item in rerun["instances"]} == {
        returned[web]["instance_id"],
        returned[db]["instance_id"],
    }
    assert all(item["launched"] is False for item in rerun["instances"])
    assert {source: len(instances) for source, instances in restored_instances(ec2).items()} == {web: 1, db: 1}


def test_as_of_picks_an_older_ami_and_a_source_asked_for_without_backup_fails_naming_it(aws, play):
    ec2 = aws.ec2()
    [web] = fleet.launch(ec2, {"Backup": ""})
    [bare] = fleet.launch(ec2, {"Backup": ""})
    [failed_only] = fleet.launch(ec2, {"Backup": ""})
    old = backup(ec2, web, 10)
    backup(ec2, web, 1)
    broken = backup(ec2, failed_only, 10, state="failed")
    subnet, _group = isolated_subnet(ec2)
    as_of = (NOW - datetime.timedelta(days=5)).date().isoformat()

    run = play([restore_task(instance_ids=[web, bare, failed_only], subnet_id=subnet, as_of=as_of, wait=True)])
    result = run.result("restore")

    assert result["failed"] is True
    [instance] = result["instances"]
    assert (instance["source_instance_id"], instance["image_id"]) == (web, old)
    assert instance["recovery_seconds"] is not None and instance["recovery_seconds"] >= 0
    errors = {error["resource"]: error for error in result["errors"]}
    assert set(errors) == {bare, failed_only}
    assert errors[bare]["code"] == "NoAvailableBackup"
    assert errors[bare]["message"] == "no managed AMI of {0} on or before {1}".format(bare, as_of)
    assert errors[failed_only][
        "message"
    ] == "no available AMI of {0} on or before {1}: the newest, {2}, is failed".format(failed_only, as_of, broken)
    assert {source: len(found) for source, found in restored_instances(ec2).items()} == {web: 1}


def test_bad_input_fails_naming_the_value_and_launches_nothing(aws, play):
    ec2, west = aws.ec2(), aws.ec2("eu-west-1")
    [web] = fleet.launch(ec2, {"Backup": ""})
    [db] = fleet.launch(ec2, {"Backup": ""})
    backup(ec2, web, 1)
    db_image = backup(ec2, db, 1)
    subnet, _group = isolated_subnet(ec2)
    west_subnet, _west_group = isolated_subnet(west)
    unknown = "i-0123456789abcdef0"

    run = play(
        [
            restore_task("unknown id", instance_ids=[web, unknown], subnet_id=subnet),
            restore_task("image of another source", instance_ids=[web], image_ids=[db_image], subnet_id=subnet),
            restore_task("subnet of another region", instance_ids=[web], subnet_id=west_subnet),
        ]
    )

    unknown_id = run.result("unknown id")
    assert unknown_id["failed"] is True
    assert unknown_id["msg"] == (
        "instance_ids: {0} is neither an instance nor the source of a managed AMI in us-east-1".format(unknown)
    )
    other = run.result("image of another source")
    assert other["failed"] is True
    assert other["msg"] == "image_ids: {0} in us-east-1 is a backup of {1}, not of {2} (instance_ids)".format(
        db_image, db, web
    )
    wrong_region = run.result("subnet of another region")
    assert wrong_region["failed"] is True
    [error] = wrong_region["errors"]
    assert error["code"] == "InvalidSubnetID.NotFound"
    assert error["message"] == "subnet_id {0} is not a subnet in us-east-1".format(west_subnet)
    assert restored_instances(ec2) == {} and restored_instances(west) == {}


def test_a_500_after_run_instances_succeeded_still_gives_exactly_one_instance_per_source(aws, counting_proxy, tmp_path):
    regions = ["us-east-1", "eu-west-1"]
    sources, networks = {}, {}
    for region in regions:
        ec2 = aws.ec2(region)
        sources[region] = fleet.launch(ec2, {"Backup": ""}, count=6)
        for instance_id in sources[region]:
            backup(ec2, instance_id, 1)
        subnet, group = isolated_subnet(ec2)
        networks[region] = {"subnet_id": subnet, "security_group_ids": [group]}
    counting_proxy.configure(error_after_rate=0.5, fault_actions=["RunInstances"], seed=7)

    play = ansible_run.aws_play(counting_proxy.endpoint, [restore_task(regions=regions, networks=networks)])
    run = ansible_run.run_playbook(play, tmp_path, endpoint=counting_proxy.endpoint)
    result = run.result("restore")

    assert run.rc == 0, result
    stats = counting_proxy.stats()
    assert aws_proxy.count(stats, action="RunInstances", outcome="error_after") > 0
    for region in regions:
        found = restored_instances(aws.ec2(region))
        assert {source: len(instances) for source, instances in found.items()} == {s: 1 for s in sources[region]}
    assert len({item["instance_id"] for item in result["instances"]}) == 12
