"""The restore_drill playbook (and role) through real ansible-playbook runs against moto."""

import datetime
import json
import time

from moto.ec2.models.instances import Instance

from tests.harness import fleet
from tests.harness import moto_ssm_agent
from tests.harness import processes
from tests.harness.ansible_run import run_playbook
from tests.harness.ansible_run import short_name
from tests.harness.ansible_run import start_playbook
from tests.integration.test_instance_restore import backup

REGION = "us-east-1"
TODAY = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
LIVE = ["pending", "running", "stopping", "stopped", "shutting-down"]
GONE = ("deleted", "deleting")
PLAYBOOK = "opsvault.aws_backup.restore_drill"


def drill_variables(tmp_path, **variables):
    return dict({"restore_drill_report_path": str(tmp_path / "drill")}, **variables)


def drill(aws, tmp_path, **variables):
    return run_playbook(
        PLAYBOOK,
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars=drill_variables(tmp_path, **variables),
        env={"AWS_REGION": REGION},
    )


def ssm_instance_profile(aws, name="drill-ssm"):
    """An instance profile for the restored instances (the simulated SSM Agent does not look at it)."""
    iam = aws.client("iam", REGION)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def leftovers(ec2):
    """What any drill made that still exists: instances, volumes, interfaces, groups, subnets and VPCs."""
    tagged = [{"Name": "tag-key", "Values": ["RestoreDrill"]}]
    instances = [
        instance["InstanceId"]
        for reservation in ec2.describe_instances(Filters=tagged + [{"Name": "instance-state-name", "Values": LIVE}])[
            "Reservations"
        ]
        for instance in reservation["Instances"]
    ]
    vpcs = [vpc["VpcId"] for vpc in ec2.describe_vpcs(Filters=tagged)["Vpcs"]]
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": vpcs}])["NetworkInterfaces"]
    endpoints = ec2.describe_vpc_endpoints(Filters=tagged)["VpcEndpoints"]
    return {
        "endpoints": [item["VpcEndpointId"] for item in endpoints if item["State"].lower() not in GONE],
        "instances": instances,
        "volumes": [volume["VolumeId"] for volume in ec2.describe_volumes(Filters=tagged)["Volumes"]],
        "interfaces": [interface["NetworkInterfaceId"] for interface in interfaces] if vpcs else [],
        "groups": [group["GroupId"] for group in ec2.describe_security_groups(Filters=tagged)["SecurityGroups"]],
        "subnets": [subnet["SubnetId"] for subnet in ec2.describe_subnets(Filters=tagged)["Subnets"]],
        "vpcs": vpcs,
    }


NOTHING = {"endpoints": [], "instances": [], "volumes": [], "interfaces": [], "groups": [], "subnets": [], "vpcs": []}


def interrupted_drill(ec2, image_id):
    """What a drill killed between launch and cleanup leaves: its network and a running restored instance."""
    tags = [{"Key": "RestoreDrill", "Value": "20260101T000000Z"}]
    vpc = ec2.create_vpc(CidrBlock="10.254.0.0/24", TagSpecifications=[{"ResourceType": "vpc", "Tags": tags}])
    vpc_id = vpc["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc_id, CidrBlock="10.254.0.0/24", TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}]
    )["Subnet"]["SubnetId"]
    ec2.create_security_group(
        GroupName="old-drill",
        Description="old",
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags}],
    )
    ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}],
    )


def test_a_drill_of_two_instances_passes_tags_the_backups_reports_and_leaves_nothing_also_after_an_interrupted_one(
    aws, tmp_path
):
    ec2 = aws.ec2(REGION)
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    [db] = fleet.launch(ec2, {"Backup": "", "Name": "db"})
    web_image, db_image = backup(ec2, web, 1), backup(ec2, db, 1)
    interrupted_drill(ec2, web_image)
    assert leftovers(ec2)["instances"]

    # An AWX survey left empty sends the sample size as "": all of the sources.
    run = drill(aws, tmp_path, restore_drill_sample="")

    assert run.rc == 0, run.stdout[-3000:]
    assert leftovers(ec2) == NOTHING
    report = json.loads((tmp_path / "drill.json").read_text())
    assert (int(report["passed"]), int(report["failed"])) == (2, 0)
    assert {item["source"]: item["backup"] for item in report["items"]} == {web: web_image, db: db_image}
    assert all(item["recovery_seconds"] is not None for item in report["items"])
    markdown = (tmp_path / "drill.md").read_text()
    assert "2 passed, 0 failed" in markdown and web in markdown and db_image in markdown
    for image_id in (web_image, db_image):
        [image] = ec2.describe_images(ImageIds=[image_id])["Images"]
        assert fleet.tags_of(image)["LastRestoreTest"] == TODAY + ":passed"


def test_a_failing_check_fails_the_job_tags_the_backup_failed_and_still_cleans_up(aws, tmp_path, monkeypatch):
    ec2 = aws.ec2(REGION)
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    [broken] = fleet.launch(ec2, {"Backup": "", "Name": "broken"})
    [none] = fleet.launch(ec2, {"Backup": ""})
    web_image, broken_image = backup(ec2, web, 1), backup(ec2, broken, 1)
    healthy = Instance.instance_status

    def impaired(self):
        if self.image_id == broken_image:
            return {"Status": "impaired", "Details": [{"Name": "reachability", "Status": "failed"}]}
        return healthy.fget(self)

    monkeypatch.setattr(Instance, "instance_status", property(impaired))

    run = drill(aws, tmp_path, restore_drill_wait_timeout=1)

    assert run.rc != 0
    assert leftovers(ec2) == NOTHING
    report = json.loads((tmp_path / "drill.json").read_text())
    results = {item["source"]: item for item in report["items"]}
    assert {source: item["passed"] for source, item in results.items()} == {web: True, broken: False, none: False}
    assert "did not pass its status checks" in results[broken]["reason"]
    assert results[none]["reason"] == "no managed AMI of {0}".format(none)
    tags = {image["ImageId"]: fleet.tags_of(image).get("LastRestoreTest") for image in fleet.images(ec2).values()}
    assert tags[web_image] == TODAY + ":passed" and tags[broken_image] == TODAY + ":failed"
    failure = run.role_result("Fail when a drill item failed")
    assert broken in failure["msg"] and none in failure["msg"]


def test_a_check_command_that_fails_fails_its_item_and_the_job_and_the_drill_still_cleans_up(aws, tmp_path):
    ec2 = aws.ec2(REGION)
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    [db] = fleet.launch(ec2, {"Backup": "", "Name": "db"})
    web_image, db_image = backup(ec2, web, 1), backup(ec2, db, 1)
    moto_ssm_agent.install_agent(web_image, {"systemctl is-active app": (0, "active\n"), "cat /etc/role": (0, "web\n")})
    moto_ssm_agent.install_agent(db_image, {"systemctl is-active app": (3, "failed\n"), "cat /etc/role": (0, "db\n")})
    profile = ssm_instance_profile(aws)
    commands = [
        {"name": "app", "command": "systemctl is-active app", "expect": "^active$"},
        {"name": "role", "command": "cat /etc/role"},
    ]

    run = drill(aws, tmp_path, restore_drill_commands=commands, restore_drill_instance_profile=profile)

    assert run.rc != 0
    assert leftovers(ec2) == NOTHING
    report = json.loads((tmp_path / "drill.json").read_text())
    results = {item["source"]: item for item in report["items"]}
    assert {source: item["passed"] for source, item in results.items()} == {web: True, db: False}
    checks = {source: {check["name"]: check["passed"] for check in item["checks"]} for source, item in results.items()}
    assert checks == {
        web: {"status checks": True, "app": True, "role": True},
        db: {"status checks": True, "app": False, "role": True},
    }
    assert "'systemctl is-active app' ended Failed with exit code 3" in results[db]["reason"]
    assert all(item["recovery_seconds"] is not None for item in report["items"])
    markdown = (tmp_path / "drill.md").read_text()
    assert "| {0} | {1} | app | FAILED: ".format(db, results[db]["restored"]) in markdown
    assert "| {0} | {1} | app | passed: ".format(web, results[web]["restored"]) in markdown
    tags = {image["ImageId"]: fleet.tags_of(image).get("LastRestoreTest") for image in fleet.images(ec2).values()}
    assert tags[web_image] == TODAY + ":passed" and tags[db_image] == TODAY + ":failed"
    assert db in run.role_result("Fail when a drill item failed")["msg"]
    endpoints = run.role_result("Create the drill's SSM endpoints")
    assert sorted(item["item"] for item in endpoints["results"]) == ["ec2messages", "ssm", "ssmmessages"]


def test_a_sample_size_that_is_not_a_number_fails_naming_the_value_before_any_change(aws, tmp_path):
    ec2 = aws.ec2(REGION)
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    backup(ec2, web, 1)

    run = drill(aws, tmp_path, restore_drill_sample="two")

    assert run.rc != 0
    assert 'restore_drill_sample must be a whole number of instances (empty or 0: all), got "two"' in (
        run.role_result("Check the sample size")["msg"]
    )
    assert leftovers(ec2) == NOTHING and not (tmp_path / "drill.json").exists()


def checked_instance(ec2, ssm, process, log, timeout=120):
    """The restored instance a drill's check command was sent to, polled for while the run goes on."""
    deadline = time.monotonic() + timeout
    tagged = [{"Name": "tag-key", "Values": ["RestoreDrill"]}, {"Name": "instance-state-name", "Values": ["running"]}]
    while True:
        assert process.poll() is None, "the drill ended (rc {0}) before it was killed:\n{1}".format(
            process.returncode, log.read_text()[-3000:]
        )
        for reservation in ec2.describe_instances(Filters=tagged)["Reservations"]:
            for instance in reservation["Instances"]:
                if ssm.list_commands(InstanceId=instance["InstanceId"])["Commands"]:
                    return instance
        assert time.monotonic() < deadline, "no check command reached a restored instance in {0} s".format(timeout)
        time.sleep(0.5)


def first_result(run, name):
    """The result of the first task with this name: in a drill, the sweep before the restore."""
    return next(task for task in run.tasks if short_name(task) == name)


def test_a_drill_killed_between_launch_and_cleanup_leaves_its_resources_and_the_next_drill_sweeps_them(aws, tmp_path):
    ec2, ssm = aws.ec2(REGION), aws.client("ssm", REGION)
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    web_image = backup(ec2, web, 1)
    # The check command runs until released: the drill is caught with its instance launched and not cleaned up.
    moto_ssm_agent.install_agent(web_image, {"systemctl is-active app": (0, "active\n")})
    moto_ssm_agent.hold("systemctl is-active app")
    commands = [{"name": "app", "command": "systemctl is-active app", "expect": "^active$"}]
    variables = drill_variables(
        tmp_path, restore_drill_commands=commands, restore_drill_instance_profile=ssm_instance_profile(aws)
    )
    log = tmp_path / "killed-drill.log"
    process = start_playbook(PLAYBOOK, tmp_path, aws.endpoint, variables, env={"AWS_REGION": REGION}, output=log)
    try:
        restored = checked_instance(ec2, ssm, process, log)
    finally:
        killed = processes.kill_tree(process)
        moto_ssm_agent.release("systemctl is-active app")

    # SIGKILL for the whole tree, the module in its own session too: nothing of the first run cleaned up.
    assert any("AnsiballZ_instance_check" in command for command in killed.values()), killed
    left = leftovers(ec2)
    assert all(left.values()), left
    assert restored["InstanceId"] in left["instances"] and len(left["endpoints"]) == 3
    [killed_vpc] = left["vpcs"]
    killed_run = fleet.tags_of(restored)["RestoreDrill"]
    assert not (tmp_path / "drill.json").exists()

    run = drill(aws, tmp_path)

    assert run.rc == 0, run.stdout[-3000:]
    assert leftovers(ec2) == NOTHING
    [instance] = ec2.describe_instances(InstanceIds=[restored["InstanceId"]])["Reservations"][0]["Instances"]
    assert instance["State"]["Name"] == "terminated"
    report = json.loads((tmp_path / "drill.json").read_text())
    assert report["run_id"] != killed_run and (int(report["passed"]), int(report["failed"])) == (1, 0)
    assert [item["backup"] for item in report["items"]] == [web_image]
    # The report lists what the drill restored, not what it swept: the sweep's own results say that.
    assert first_result(run, "Terminate the drill's instances")["terminate_success"] == [restored["InstanceId"]]
    swept = {
        name: sorted(item["item"][key] for item in first_result(run, name)["results"])
        for name, key in [
            ("Delete the drill's VPC endpoints", "vpc_endpoint_id"),
            ("Delete the drill's security groups", "group_id"),
            ("Delete the drill's subnets", "id"),
            ("Delete the drill's VPCs", "id"),
        ]
    }
    assert swept == {
        "Delete the drill's VPC endpoints": sorted(left["endpoints"]),
        "Delete the drill's security groups": sorted(left["groups"]),
        "Delete the drill's subnets": sorted(left["subnets"]),
        "Delete the drill's VPCs": [killed_vpc],
    }
