"""provision_backup_host: the seed 003 stack, created in moto by the real playbook."""

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.iam_actions import policy_document
from tests.harness import fleet
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import environment
from tests.harness.ansible_run import run_playbook

REGION = "eu-west-1"
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
TEMPLATE = REPO / "playbooks" / "files" / "backup_host.cfn.yml"


def provision(aws, tmp_path, **extra_vars):
    return run_playbook(
        "opsvault.aws_backup.provision_backup_host",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars=dict({"provision_backup_host_region": REGION}, **extra_vars),
    )


def test_provision_creates_the_stack_and_the_instance_has_the_profile(aws, tmp_path):
    run = provision(aws, tmp_path, provision_backup_host_bucket_name="seed-images")
    assert run.rc == 0, run.stdout
    outputs = run.result("Create or update the backup host stack")["stack_outputs"]

    cfn = aws.client("cloudformation", REGION)
    [stack] = cfn.describe_stacks(StackName="opsvault-backup-host")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"

    ec2 = aws.ec2(REGION)
    instance = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert instance["IamInstanceProfile"]["Arn"] == outputs["InstanceProfileArn"]
    assert instance["InstanceType"] == "t2.micro"
    assert "KeyName" not in instance
    expected_image = aws.client("ssm", REGION).get_parameter(Name=AL2023)["Parameter"]["Value"]
    assert instance["ImageId"] == expected_image

    [group] = ec2.describe_security_groups(GroupIds=[outputs["SecurityGroupId"]])["SecurityGroups"]
    assert group["IpPermissions"] == []

    s3 = aws.client("s3", REGION)
    assert outputs["BucketName"] == "seed-images"
    [rule] = s3.get_bucket_encryption(Bucket="seed-images")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    iam = aws.client("iam", REGION)
    profile_name = outputs["InstanceProfileArn"].rsplit("/", 1)[1]
    profile = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == [outputs["RoleName"]]
    policy_arn = "arn:aws:iam::{0}:policy/opsvault-aws-backup-host".format(fleet.ACCOUNT_ID)
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in stack["Parameters"]}
    assert parameters["BackupPolicyArn"] == policy_arn
    version = iam.get_policy_version(PolicyArn=policy_arn, VersionId="v1")["PolicyVersion"]["Document"]
    document = json.loads(urllib.parse.unquote(version)) if isinstance(version, str) else version
    assert document == policy_document(
        [
            "ami_backup",
            "ami_purge",
            "ebs_snapshot",
            "snapshot_purge",
            "backup_coverage",
            "restore_drill",
            {"name": "s3_mirror", "bucket": "seed-images"},
        ]
    )

    rerun = provision(aws, tmp_path, provision_backup_host_bucket_name="seed-images")
    assert rerun.rc == 0, rerun.stdout
    # moto compares the SSM parameter's name with its resolved value and so always updates; AWS reports
    # no change. What matters holds in both: the host is not replaced.
    assert rerun.result("Create or update the backup host stack")["stack_outputs"] == outputs
    assert len(ec2.describe_instances()["Reservations"]) == 1
    assert rerun.result("Create the least-privilege policy of the backup jobs")["changed"] is False


def test_template_has_no_key_pair_no_inbound_rule_and_uses_the_ssm_parameter():
    import yaml

    template = yaml.safe_load(TEMPLATE.read_text())
    resources = template["Resources"]
    instance = resources["Host"]["Properties"]
    assert "KeyName" not in instance
    assert template["Parameters"]["ImageIdParameter"]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert template["Parameters"]["ImageIdParameter"]["Default"] == AL2023
    assert template["Parameters"]["InstanceType"]["Default"] == "t2.micro"
    groups = [r for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroup"]
    assert len(groups) == 1 and "SecurityGroupIngress" not in groups[0]["Properties"]
    assert not [r for r in resources.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    # moto's CloudFormation ignores a role's ManagedPolicyArns: checked here.
    role = resources["HostRole"]["Properties"]
    ssm_arn = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}
    assert role["ManagedPolicyArns"] == {
        "Fn::If": ["HasBackupPolicy", [ssm_arn, {"Ref": "BackupPolicyArn"}], [ssm_arn]]
    }
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    # moto's CloudFormation ignores a bucket's PublicAccessBlockConfiguration: checked here.
    bucket = resources["Bucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # moto's CloudFormation ignores SecurityGroupIds on AWS::EC2::Instance: the attachment is checked here.
    assert (
        instance["SecurityGroupIds"] == [{"Fn::GetAtt": ["HostSecurityGroup", "GroupId"]}]
        and "SecurityGroups" not in instance
    )
    # moto's CloudFormation does not implement AWS::S3::BucketPolicy: the TLS-only statement is checked here.
    [statement] = resources["BucketTlsOnlyPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cfn_lint_accepts_the_template():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    if not cfn_lint.exists():
        pytest.fail("cfn-lint is not installed in the test virtualenv (requirements-test.txt)")
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, env=environment(), check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_chains_provision_ssm_setup_and_first_backup():
    """The site playbook's plays, in order (its SSM connection cannot run against moto)."""
    process = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--list-tasks", "opsvault.aws_backup.site"],
        capture_output=True,
        text=True,
        env=environment(),
        check=False,
    )
    assert process.returncode == 0, process.stderr
    plays = [
        line.split(": ", 1)[1].split("\t")[0]
        for line in process.stdout.splitlines()
        if line.strip().startswith("play #")
    ]
    assert plays == [
        "Provision the backup host with CloudFormation",
        "Reach the backup host through Session Manager",
        "Wait for the backup host to register with Session Manager",
        "Create the IAM identity of the backup host",
        "Configure the backup host",
        "Run the first backups",
    ]
    assert "Create or update the backup host stack" in process.stdout
    assert "opsvault.aws_backup.backup_host : Schedule each job" in process.stdout
