"""Many accounts and regions: the accounts inventory against moto's Organizations, and the shipped
playbooks over it, each host assuming its account's role (moto's AssumeRole as strict as AWS's)."""

import json
import os
import subprocess
from pathlib import Path

import ansible_runner
import boto3
import botocore.exceptions
import pytest
import yaml

from moto.backends import get_backend

from ansible_collections.opsvault.aws_backup.plugins.module_utils import iam_actions
from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import organization
from tests.harness.iam_enforcement import enforce_iam
from tests.harness.moto_server import ACCOUNT_ID

REGIONS = ["eu-west-1", "us-east-1", "ap-southeast-2"]
BACKUP_TASK = "Create AMIs of the tagged instances"


@pytest.fixture
def org(aws):
    """The management account (123456789012), ``prod`` (in OU Workloads, sub-OU Web) and ``old`` (suspended)."""
    org = organization.Organization(aws.endpoint, {"prod": "ACTIVE", "old": "SUSPENDED"}, ous={"Workloads": ["prod"]})
    web = org.client.create_organizational_unit(ParentId=org.ous["Workloads"], Name="Web")["OrganizationalUnit"]["Id"]
    org.client.move_account(
        AccountId=org.accounts["prod"], SourceParentId=org.ous["Workloads"], DestinationParentId=web
    )
    org.ous["Web"] = web
    org.accounts["management"] = ACCOUNT_ID
    return org


def write_inventory(tmp_path, endpoint, name="org.accounts.yml", **config):
    path = tmp_path / name
    config = dict({"plugin": "opsvault.aws_backup.accounts", "endpoint_url": endpoint, "region": "us-east-1"}, **config)
    path.write_text(json.dumps(config))
    return path


def plain(value):
    """ansible-inventory's JSON without its ``{"__ansible_unsafe": ...}`` wrappers."""
    if isinstance(value, dict):
        return (
            plain(value["__ansible_unsafe"])
            if set(value) == {"__ansible_unsafe"}
            else {k: plain(v) for k, v in value.items()}
        )
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def inventory_list(path, endpoint, env=None):
    env = ansible_run.environment(endpoint, dict({"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}, **(env or {})))
    process = subprocess.run(
        [ansible_run.ANSIBLE_PLAYBOOK.replace("ansible-playbook", "ansible-inventory"), "-i", str(path), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return process.returncode, (plain(json.loads(process.stdout)) if process.returncode == 0 else None), process.stderr


def hosts_of(listing):
    return set(listing["_meta"]["hostvars"])


def members(listing, group):
    return set(listing.get(group, {}).get("hosts", []))


def test_organization_gives_one_host_per_active_account_and_region(aws, org, tmp_path):
    rc, listing, stderr = inventory_list(
        write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS), aws.endpoint
    )
    assert rc == 0, stderr
    active = [org.accounts["management"], org.accounts["prod"]]
    assert hosts_of(listing) == {"{0}-{1}".format(account, region) for account in active for region in REGIONS}
    host = listing["_meta"]["hostvars"]["{0}-eu-west-1".format(org.accounts["prod"])]
    assert {key: value for key, value in host.items() if key.startswith("aws_")} == {
        "aws_account_id": org.accounts["prod"],
        "aws_account_name": "prod",
        "aws_region": "eu-west-1",
        "aws_role_arn": "arn:aws:iam::{0}:role/OpsvaultBackup".format(org.accounts["prod"]),
        "aws_external_id": None,
        "aws_organizational_units": [],
    }
    assert host["ansible_connection"] == "local"
    assert members(listing, "account_" + org.accounts["prod"]) == {
        "{0}-{1}".format(org.accounts["prod"], region) for region in REGIONS
    }
    assert members(listing, "region_ap_southeast_2") == {"{0}-ap-southeast-2".format(account) for account in active}
    assert not any(org.accounts["old"] in name for name in hosts_of(listing))


def test_organizational_units_take_the_accounts_below_with_a_group_per_ou(aws, org, tmp_path):
    path = write_inventory(
        tmp_path, aws.endpoint, organizational_units=[org.ous["Workloads"]], regions=["eu-west-1"], external_id="x-1"
    )
    rc, listing, stderr = inventory_list(path, aws.endpoint)
    assert rc == 0, stderr
    prod_host = "{0}-eu-west-1".format(org.accounts["prod"])
    assert hosts_of(listing) == {prod_host}
    workloads = "ou_" + org.ous["Workloads"][3:].replace("-", "_")
    web = "ou_" + org.ous["Web"][3:].replace("-", "_")
    assert members(listing, workloads) == members(listing, web) == {prod_host}
    variables = listing["_meta"]["hostvars"][prod_host]
    assert variables["aws_organizational_units"] == [org.ous["Workloads"], org.ous["Web"]]
    assert variables["aws_external_id"] == "x-1"


def test_regions_all_are_the_regions_enabled_in_each_account(aws, org, tmp_path):
    organization.create_role(org.accounts["prod"])
    path = write_inventory(
        tmp_path, aws.endpoint, accounts=[{"id": org.accounts["prod"], "name": "prod"}], regions=["all"]
    )
    rc, listing, stderr = inventory_list(path, aws.endpoint)
    assert rc == 0, stderr
    described = aws.ec2().describe_regions(AllRegions=True)["Regions"]
    enabled = [r["RegionName"] for r in described if r["OptInStatus"] in ("opt-in-not-required", "opted-in")]
    assert 0 < len(enabled) < len(described)  # moto has regions that are not opted in
    assert hosts_of(listing) == {"{0}-{1}".format(org.accounts["prod"], region) for region in enabled}


@pytest.mark.parametrize(
    "config, named",
    [
        (
            {"role_arn_template": "arn:aws:iam::{account}:role/OpsvaultBackup"},
            "'arn:aws:iam::{account}:role/OpsvaultBackup'",
        ),
        ({"role_arn_template": "arn:aws:iam::role/OpsvaultBackup"}, "'arn:aws:iam::role/OpsvaultBackup'"),
        ({"organizational_units": ["ou-zzzz-12345678"]}, "'ou-zzzz-12345678'"),
        ({"accounts": [{"id": "1234"}]}, "'1234'"),
        ({"regions": ["eu-west-1", "all"]}, "'all' cannot be combined"),
    ],
)
def test_bad_input_fails_the_inventory_naming_the_value(aws, org, tmp_path, config, named):
    config = dict({"organization": True, "regions": REGIONS}, **config)
    if "accounts" in config:
        config.pop("organization")
    rc, _listing, stderr = inventory_list(write_inventory(tmp_path, aws.endpoint, **config), aws.endpoint)
    assert rc != 0
    assert named in stderr


def seed(aws, org, names, per_region=2):
    """Tagged instances in each named account and region (in its own moto backend); ``{account: ids}``."""
    launched = {}
    for name in names:
        for region in REGIONS:
            ec2 = organization.ec2_in(aws.endpoint, org.role_arn(name), region)
            launched.setdefault(org.accounts[name], set()).update(
                fleet.launch(ec2, {"Backup": "yes"}, count=per_region)
            )
    return launched


def amis_by_account(aws, org, names):
    found = {}
    for name in names:
        for region in REGIONS:
            ec2 = organization.ec2_in(aws.endpoint, org.role_arn(name), region)
            for image in fleet.images(ec2).values():
                found.setdefault(org.accounts[name], []).append(fleet.tags_of(image)["SourceInstanceId"])
    return found


def run_backup(aws, tmp_path, inventory, options=("-f", "6"), env=None):
    return ansible_run.run_playbook(
        "opsvault.aws_backup.ami_backup",
        tmp_path,
        endpoint=aws.endpoint,
        inventory=inventory,
        extra_vars={"ami_backup_hosts": "all"},
        options=list(options),
        env=env,
    )


def test_ami_backup_and_purge_over_the_inventory_work_in_each_account_own_backend(aws, org, tmp_path):
    for name in ("management", "prod"):
        organization.create_role(org.accounts[name])
    launched = seed(aws, org, ["management", "prod"])
    inventory = write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS)

    # Two slices, as AWX job slicing runs them: together they cover every host exactly once.
    results = {}
    for limit in ("all[0:2]", "all[3:5]"):
        run = run_backup(aws, tmp_path, inventory, options=["-f", "6", "--limit", limit])
        assert run.rc == 0, run.stdout[-3000:]
        sliced = run.by_host(BACKUP_TASK)
        assert len(sliced) == 3 and not set(sliced) & set(results)
        results.update(sliced)

    assert len(results) == 6 and all(result["changed"] for result in results.values())
    for host, result in results.items():
        assert result["regions"] == [host.split("-", 1)[1]]
    made = amis_by_account(aws, org, ["management", "prod"])
    for account, instances in launched.items():
        assert sorted(made[account]) == sorted(instances)  # one AMI per instance, none of another account's

    purge = ansible_run.run_playbook(
        "opsvault.aws_backup.ami_purge",
        tmp_path,
        endpoint=aws.endpoint,
        inventory=inventory,
        extra_vars={"ami_purge_hosts": "all", "ami_purge_as_of": "2099-01-01"},
        options=["-f", "6"],
        check=True,
    )
    assert purge.rc == 0, purge.stdout[-3000:]
    for host, result in purge.by_host("Deregister expired AMIs and delete their snapshots").items():
        image_ids = {item["resource"] for item in result["skipped_resources"]}  # each the newest of its source
        account_images = set(fleet.images(organization.ec2_in(aws.endpoint, *role_and_region(org, host))))
        assert len(image_ids) == 2 and image_ids == account_images, host


def role_and_region(org, host):
    account, region = host.split("-", 1)
    return "arn:aws:iam::{0}:role/{1}".format(account, organization.ROLE_NAME), region


def test_an_account_whose_role_is_missing_fails_only_its_own_hosts(aws, org, tmp_path):
    organization.create_role(org.accounts["management"])
    seed(aws, org, ["management"])
    inventory = write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS)

    results_dir = tmp_path / "results"
    env = {"ANSIBLE_CALLBACKS_ENABLED": "opsvault.aws_backup.host_results", "OPSVAULT_RESULTS_DIR": str(results_dir)}
    run = run_backup(aws, tmp_path, inventory, env=env)

    assert run.rc != 0
    results = run.by_host(BACKUP_TASK)
    prod_role = org.role_arn("prod")
    for host, result in results.items():
        if host.startswith(org.accounts["prod"]):
            assert result["failed"] and prod_role in result["msg"] and "AccessDenied" in result["msg"]
        else:
            assert not result.get("failed") and len(result["images"]) == 2
    prod_hosts = {"{0}-{1}".format(org.accounts["prod"], region) for region in REGIONS}
    stats = run.output["stats"]
    assert {host for host, counts in stats.items() if counts["failures"]} == prod_hosts
    # One file per host, whole; read together they name the failed hosts and hold every result.
    files = {path.stem: json.loads(path.read_text()) for path in results_dir.iterdir()}
    assert set(files) == set(results) and {name for name, entry in files.items() if entry["failed"]} == prod_hosts
    management = files["{0}-eu-west-1".format(ACCOUNT_ID)]
    assert (management["account_id"], management["region"]) == (ACCOUNT_ID, "eu-west-1")
    [task] = management["tasks"]
    assert task["action"] == "opsvault.aws_backup.ami_backup" and len(task["result"]["images"]) == 2
    assert prod_role in files["{0}-us-east-1".format(org.accounts["prod"])]["tasks"][0]["result"]["msg"]


def test_an_external_id_the_role_refuses_fails_naming_role_and_value(aws, org, play):
    arn = organization.create_role(org.accounts["prod"], trust=organization.trust_policy(external_id="right"))
    tasks = [
        {
            "name": "Wrong id",
            "opsvault.aws_backup.ami_backup": {"assume_role_arn": arn, "external_id": "wrong"},
            "ignore_errors": True,
        },
        {"name": "Right id", "opsvault.aws_backup.ami_backup": {"assume_role_arn": arn, "external_id": "right"}},
        {
            "name": "Bad ARN",
            "opsvault.aws_backup.ami_backup": {"assume_role_arn": "arn:aws:iam::prod:role/x"},
            "ignore_errors": True,
        },
    ]
    run = play(tasks, region="eu-west-1")
    wrong = run.result("Wrong id")
    assert wrong["failed"] and arn in wrong["msg"] and "'wrong'" in wrong["msg"]
    assert run.result("Right id")["regions"] == ["eu-west-1"]
    bad = run.result("Bad ARN")
    assert bad["failed"] and "assume_role_arn" in bad["msg"] and "'arn:aws:iam::prod:role/x'" in bad["msg"]


def test_member_account_role_playbook_makes_a_role_only_the_backup_host_can_assume(aws, org, tmp_path):
    backup_host_role = organization.create_role(ACCOUNT_ID, name="opsvault-aws-backup")
    run = ansible_run.run_playbook(
        "opsvault.aws_backup.member_account_role",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars={"member_account_role_trusted_arn": backup_host_role, "member_account_role_external_id": "ext-7"},
        env={"AWS_REGION": "us-east-1"},
    )
    assert run.rc == 0, run.stdout[-3000:]
    iam = aws.client("iam")
    role = iam.get_role(RoleName="OpsvaultBackup")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": backup_host_role},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-7"}},
        }
    ]
    policy = iam.get_role_policy(RoleName="OpsvaultBackup", PolicyName="opsvault-aws-backup")["PolicyDocument"]
    assert {"ec2:CreateImage", "ec2:DeregisterImage", "ec2:CreateSnapshot"} <= {
        action for statement in policy["Statement"] for action in statement["Action"]
    }
    # Only a session of the backup host's role, with the external id, gets in.
    host = fleet.client(aws.endpoint, "sts", "us-east-1").assume_role(RoleArn=backup_host_role, RoleSessionName="host")
    keys = host["Credentials"]
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=aws.endpoint,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
    )
    assert sts.assume_role(RoleArn=role["Arn"], RoleSessionName="backup", ExternalId="ext-7")["Credentials"]
    for caller, params in ((sts, {}), (fleet.client(aws.endpoint, "sts", "us-east-1"), {"ExternalId": "ext-7"})):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            caller.assume_role(RoleArn=role["Arn"], RoleSessionName="backup", **params)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_the_example_inventory_lists_the_organisation(aws, org, tmp_path, monkeypatch):
    example = yaml.safe_load((ansible_run.REPO / "docs" / "accounts.yml.example").read_text())
    assert example["organization"] is True and example["cache"] is True
    example.update(endpoint_url=aws.endpoint, region="us-east-1", cache_connection=str(tmp_path / "cache"))
    path = write_inventory(tmp_path, aws.endpoint, name="example.accounts.yml", **example)
    monkeypatch.setenv("OPSVAULT_EXTERNAL_ID", "ext-9")
    for _run in range(2):  # the second answer comes from the cache
        rc, listing, stderr = inventory_list(path, aws.endpoint)
        assert rc == 0, stderr
        assert len(hosts_of(listing)) == 2 * len(example["regions"])
        assert members(listing, "name_prod") == {"{0}-{1}".format(org.accounts["prod"], r) for r in example["regions"]}
        assert {host["aws_external_id"] for host in listing["_meta"]["hostvars"].values()} == {"ext-9"}
    assert list((tmp_path / "cache").iterdir())


ACCOUNTS_FEATURE = {"name": "accounts", "organization": False, "organizational_units": True}


def as_backup_host(aws, org, document):
    """The backup host as an IAM user with ``document``, and prod's role with ami_backup's policy, trusting
    that user, one instance to back up in it; returns the user's credentials as environment variables."""
    iam = aws.client("iam")
    user_arn = iam.create_user(UserName="backup-host")["User"]["Arn"]
    iam.put_user_policy(UserName="backup-host", PolicyName="opsvault-aws-backup", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName="backup-host")["AccessKey"]
    role_arn = organization.create_role(org.accounts["prod"])
    fleet.launch(organization.ec2_in(aws.endpoint, role_arn, "eu-west-1"), {"Backup": "yes"})
    member_iam = get_backend("iam")[org.accounts["prod"]]["aws"]
    member_iam.put_role_policy(
        organization.ROLE_NAME, "opsvault-aws-backup", json.dumps(iam_actions.policy_document("ami_backup"))
    )
    # From now on only the backup host may assume the role.
    member_iam.get_role_by_arn(role_arn).assume_role_policy_document = json.dumps(
        organization.trust_policy(principal=user_arn)
    )
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_backup_over_the_inventory_works_under_exactly_the_generated_policies(aws, org, tmp_path):
    credentials = as_backup_host(aws, org, iam_actions.policy_document(ACCOUNTS_FEATURE))
    inventory = write_inventory(
        tmp_path, aws.endpoint, organizational_units=[org.ous["Workloads"]], regions=["eu-west-1"]
    )
    with enforce_iam(aws.endpoint):
        run = run_backup(aws, tmp_path, inventory, env=credentials)
    assert run.rc == 0, run.stdout[-3000:]
    [result] = run.by_host(BACKUP_TASK).values()
    assert len(result["images"]) == 1 and result["images"][0]["image_id"]


@pytest.mark.parametrize("action", iam_actions.actions(ACCOUNTS_FEATURE))
def test_without_any_one_action_the_inventory_or_the_backup_fails_naming_it(aws, org, tmp_path, action):
    document = iam_actions.policy_document(ACCOUNTS_FEATURE)
    for statement in document["Statement"]:
        statement["Action"] = [item for item in statement["Action"] if item != action] or ["ec2:DescribeTags"]
    credentials = as_backup_host(aws, org, document)
    inventory = write_inventory(
        tmp_path, aws.endpoint, organizational_units=[org.ous["Workloads"]], regions=["eu-west-1"]
    )
    with enforce_iam(aws.endpoint):
        if action.startswith("organizations:"):
            rc, _listing, output = inventory_list(inventory, aws.endpoint, env=credentials)
        else:
            run = run_backup(aws, tmp_path, inventory, env=credentials)
            rc, output = run.rc, json.dumps(run.by_host(BACKUP_TASK))
    assert rc != 0
    assert action in output


def test_the_root_id_takes_every_account_and_an_unknown_root_is_named(aws, org, tmp_path):
    path = write_inventory(tmp_path, aws.endpoint, organizational_units=[org.root_id], regions=["eu-west-1"])
    rc, listing, stderr = inventory_list(path, aws.endpoint)
    assert rc == 0, stderr
    assert hosts_of(listing) == {"{0}-eu-west-1".format(org.accounts[name]) for name in ("management", "prod")}
    path = write_inventory(tmp_path, aws.endpoint, organizational_units=["r-zz99"], regions=["eu-west-1"])
    rc, _listing, stderr = inventory_list(path, aws.endpoint)
    assert rc != 0 and "'r-zz99'" in stderr


def test_s3_mirror_assumes_the_role_it_is_given(aws, org, play, tmp_path):
    arn = organization.create_role(org.accounts["prod"])
    keys = fleet.client(aws.endpoint, "sts", "us-east-1").assume_role(RoleArn=arn, RoleSessionName="seed")
    prod_s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=aws.endpoint,
        aws_access_key_id=keys["Credentials"]["AccessKeyId"],
        aws_secret_access_key=keys["Credentials"]["SecretAccessKey"],
        aws_session_token=keys["Credentials"]["SessionToken"],
    )
    prod_s3.create_bucket(Bucket="prod-images")
    prod_s3.put_object(Bucket="prod-images", Key="a.txt", Body=b"from prod")
    task = {"bucket": "prod-images", "dest": str(tmp_path / "mirror")}

    run = play(
        [
            {
                "name": "No such role",
                "opsvault.aws_backup.s3_mirror": dict(task, assume_role_arn=org.role_arn("old")),
                "ignore_errors": True,
            },
            {"name": "In prod", "opsvault.aws_backup.s3_mirror": dict(task, assume_role_arn=arn)},
        ]
    )

    missing = run.result("No such role")
    assert missing["failed"] and org.role_arn("old") in missing["msg"]
    assert run.result("In prod")["changed"]
    assert (tmp_path / "mirror" / "a.txt").read_bytes() == b"from prod"


RESULTS_CALLBACK = {"ANSIBLE_CALLBACKS_ENABLED": "opsvault.aws_backup.host_results"}
COVERAGE_TASK = "Describe every source and backup and give each a status"


def run_coverage(endpoint, tmp_path, inventory, env):
    return ansible_run.run_playbook(
        "opsvault.aws_backup.coverage_report",
        tmp_path,
        endpoint=endpoint,
        inventory=inventory,
        extra_vars={"coverage_report_hosts": "all"},
        options=["-f", "6"],
        env=dict(RESULTS_CALLBACK, **env),
    )


def merge_report(aws, tmp_path, location):
    """The coverage report merging the host results at ``location`` (run on localhost); its files and result."""
    out = tmp_path / "merged"
    run = ansible_run.run_playbook(
        "opsvault.aws_backup.coverage_report",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars={"coverage_report_host_results": location, "coverage_report_dir": str(out)},
        env={"AWS_REGION": "us-east-1"},
    )
    assert run.rc == 0, run.stdout[-3000:]
    return run.result(COVERAGE_TASK), out


def test_the_merged_coverage_report_lists_every_host_and_names_the_failed_ones(aws, org, counting_proxy, tmp_path):
    organization.create_role(org.accounts["management"])
    launched = seed(aws, org, ["management"], per_region=1)
    inventory = write_inventory(tmp_path, counting_proxy.endpoint, organization=True, regions=REGIONS)
    counting_proxy.configure(down_regions=["ap-southeast-2"])
    run = run_coverage(
        counting_proxy.endpoint, tmp_path, inventory, {"OPSVAULT_RESULTS_DIR": str(tmp_path / "results")}
    )
    assert run.rc != 0  # prod's role is missing, and a region is down
    per_host = run.by_host(COVERAGE_TASK)
    assert len(per_host) == 6

    result, out = merge_report(aws, tmp_path, str(tmp_path / "results"))

    prod_hosts = {"{0}-{1}".format(org.accounts["prod"], region) for region in REGIONS}
    region_down = "{0}-ap-southeast-2".format(ACCOUNT_ID)
    report = json.loads((out / "coverage.json").read_text())
    assert report["kind"] == "organisation"
    assert {row["host"] for row in report["hosts"]} == set(per_host)
    assert set(report["failed_hosts"]) == set(result["failed_hosts"]) == prod_hosts | {region_down}
    for row in report["hosts"]:
        assert (row["account_id"], row["region"]) == tuple(row["host"].split("-", 1))
        if row["host"] in prod_hosts:
            assert row["status"] == "failed" and org.role_arn("prod") in row["message"] and row["coverage"] is None
        elif row["host"] == region_down:
            assert row["status"] == "failed" and row["message"] == per_host[region_down]["msg"]
        else:
            # The launched instance has no backup: the host's own report, summed into the page.
            assert row["status"] == "ok" and row["coverage"] == {"percent": 0.0, "ok": 0, "total": 1}
            assert per_host[row["host"]]["coverage"]["total"] == 1
    assert report["coverage"]["total"] == 2
    assert report["coverage"]["accounts"][org.accounts["prod"]]["failed_hosts"] == 3
    reservations = aws.ec2("ap-southeast-2").describe_instances()["Reservations"]
    in_down_region = {instance["InstanceId"] for r in reservations for instance in r["Instances"]}
    assert {item["resource"] for item in report["problems"]} == launched[ACCOUNT_ID] - in_down_region
    assert len(in_down_region) == 1
    assert {item["account_id"] for item in report["problems"]} == {ACCOUNT_ID}
    markdown, page = (out / "coverage.md").read_text(), (out / "coverage.html").read_text()
    for host in prod_hosts | {region_down}:
        assert host in markdown.split("## Coverage")[0]  # under "Failed hosts"
        assert 'data-failed-host="{0}"'.format(host) in page
    assert "4 failed" in result["msg"] and "6 host(s)" in result["msg"]


def test_host_results_go_to_an_s3_prefix_and_the_merge_reads_them(aws, org, tmp_path):
    organization.create_role(org.accounts["management"])
    seed(aws, org, ["management"], per_region=1)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="backup-reports")
    inventory = write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS)
    url = "s3://backup-reports/coverage/day-1/"
    run = run_coverage(aws.endpoint, tmp_path, inventory, {"OPSVAULT_RESULTS_S3_URL": url})
    hosts = set(run.by_host(COVERAGE_TASK))

    listed = s3.list_objects_v2(Bucket="backup-reports")["Contents"]
    assert {item["Key"] for item in listed} == {"coverage/day-1/{0}.json".format(host) for host in hosts}
    for host in hosts:
        entry = json.loads(
            s3.get_object(Bucket="backup-reports", Key="coverage/day-1/{0}.json".format(host))["Body"].read()
        )
        account, region = host.split("-", 1)
        assert (entry["host"], entry["account_id"], entry["region"]) == (host, account, region)
        assert entry["failed"] == (account == org.accounts["prod"])
        [task] = entry["tasks"]
        assert task["action"] == "opsvault.aws_backup.backup_coverage"
        assert task["result"]["msg"] == run.by_host(COVERAGE_TASK)[host]["msg"]

    result, out = merge_report(aws, tmp_path, url)
    assert {row["host"] for row in result["hosts"]} == hosts
    assert set(result["failed_hosts"]) == {host for host in hosts if host.startswith(org.accounts["prod"])}
    assert json.loads((out / "coverage.json").read_text())["sources"] == [url]


def test_two_slices_through_ansible_runner_cover_every_host_once_and_merge_into_one_report(aws, org, tmp_path):
    """As AWX runs a sliced job: ansible-runner, one slice per ``--limit``, each leaving its hosts' results."""
    for name in ("management", "prod"):
        organization.create_role(org.accounts[name])
    launched = seed(aws, org, ["management", "prod"], per_region=1)
    inventory = write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS)
    env = ansible_run.environment(aws.endpoint, dict(RESULTS_CALLBACK, OPSVAULT_RESULTS_DIR=str(tmp_path / "results")))
    env.pop("ANSIBLE_STDOUT_CALLBACK")  # ansible-runner's own, as in AWX
    env["PATH"] = str(Path(ansible_run.ANSIBLE_PLAYBOOK).parent) + os.pathsep + env["PATH"]

    slices = []
    for number, limit in enumerate(("all[0:2]", "all[3:5]")):
        private_data_dir = tmp_path / "slice-{0}".format(number)
        private_data_dir.mkdir()
        runner = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            playbook="opsvault.aws_backup.ami_backup",
            inventory=str(inventory),
            limit=limit,
            forks=10,
            extravars={"ami_backup_hosts": "all"},
            envvars=env,
            quiet=True,
        )
        assert (runner.status, runner.rc) == ("successful", 0), runner.stdout.read()[-3000:]
        backed_up = {
            event["event_data"]["host"]
            for event in runner.events
            if event["event"] == "runner_on_ok" and event["event_data"].get("task") == BACKUP_TASK
        }
        assert backed_up == set(runner.stats["ok"])
        slices.append(backed_up)

    assert len(slices[0]) == len(slices[1]) == 3 and not slices[0] & slices[1]
    every_host = {"{0}-{1}".format(org.accounts[n], r) for n in ("management", "prod") for r in REGIONS}
    assert slices[0] | slices[1] == every_host
    made = amis_by_account(aws, org, ["management", "prod"])
    assert {account: sorted(ids) for account, ids in made.items()} == {
        account: sorted(ids) for account, ids in launched.items()
    }

    result, out = merge_report(aws, tmp_path, str(tmp_path / "results"))
    report = json.loads((out / "coverage.json").read_text())
    assert {row["host"] for row in report["hosts"]} == every_host and report["failed_hosts"] == []
    assert all(row["actions"] == ["opsvault.aws_backup.ami_backup"] for row in report["hosts"])
    assert result["counts"]["hosts"] == 6


def test_ebs_snapshot_and_snapshot_purge_over_the_inventory_work_in_each_account_own_backend(aws, org, tmp_path):
    for name in ("management", "prod"):
        organization.create_role(org.accounts[name])
    seed(aws, org, ["management", "prod"], per_region=1)
    volumes = {}
    for name in ("management", "prod"):
        for region in REGIONS:
            ec2 = organization.ec2_in(aws.endpoint, org.role_arn(name), region)
            volumes["{0}-{1}".format(org.accounts[name], region)] = {
                volume["VolumeId"] for volume in ec2.describe_volumes()["Volumes"]
            }
    inventory = write_inventory(tmp_path, aws.endpoint, organization=True, regions=REGIONS)

    run = ansible_run.run_playbook(
        "opsvault.aws_backup.ebs_snapshot",
        tmp_path,
        endpoint=aws.endpoint,
        inventory=inventory,
        extra_vars={"ebs_snapshot_hosts": "all"},
        options=["-f", "6"],
    )
    assert run.rc == 0, run.stdout[-3000:]
    results = run.by_host("Create EBS snapshots")
    assert set(results) == set(volumes)
    for host, result in results.items():
        assert result["regions"] == [host.split("-", 1)[1]]
        assert {snapshot["volume_id"] for snapshot in result["snapshots"]} == volumes[host], result["snapshots"]
        ec2 = organization.ec2_in(aws.endpoint, *role_and_region(org, host))
        made = {
            s["VolumeId"]
            for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
            if host.startswith(s["OwnerId"])
        }
        assert made == volumes[host]  # in the host's own account and region, none of another's

    purge = ansible_run.run_playbook(
        "opsvault.aws_backup.snapshot_purge",
        tmp_path,
        endpoint=aws.endpoint,
        inventory=inventory,
        extra_vars={"snapshot_purge_hosts": "all", "snapshot_purge_as_of": "2099-01-01"},
        options=["-f", "6"],
        check=True,
    )
    assert purge.rc == 0, purge.stdout[-3000:]
    for host, result in purge.by_host("Delete, archive or list expired and stale snapshots").items():
        # Each is the newest of its volume: kept, whatever the date.
        kept = {item["resource"] for item in result["skipped_resources"]}
        assert kept == {snapshot["snapshot_id"] for snapshot in results[host]["snapshots"]}, host


def test_host_results_that_cannot_be_written_are_an_error_naming_the_location(aws, org, tmp_path):
    organization.create_role(org.accounts["prod"])
    inventory = write_inventory(tmp_path, aws.endpoint, accounts=[{"id": org.accounts["prod"]}], regions=["eu-west-1"])
    run = run_coverage(aws.endpoint, tmp_path, inventory, {"OPSVAULT_RESULTS_S3_URL": "s3://no-such-bucket/daily/"})
    assert run.rc == 0, run.stdout[-3000:]  # the work itself went through
    assert "could not write the results of 1 host(s) to s3://no-such-bucket/daily/" in run.stderr
    assert "NoSuchBucket" in run.stderr
