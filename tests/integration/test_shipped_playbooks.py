"""The shipped playbooks (``ansible-playbook opsvault.aws_backup.<name>``) as AWX and cron run them.

Each playbook passes every option of its module from a ``<playbook>_<option>`` variable and leaves
every default to the module: an empty answer (what an AWX survey sends for an unanswered question)
or null means unset, while 0 and false are values that reach the module.
"""

import datetime
import functools
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.amazon.aws.plugins.doc_fragments import common as aws_common_fragment
from ansible_collections.amazon.aws.plugins.doc_fragments import region as aws_region_fragment
from ansible_collections.amazon.aws.plugins.module_utils import botocore as botocore_utils
from ansible_collections.opsvault.aws_backup.plugins.doc_fragments import assume_role as assume_role_fragment

from tests.harness import fleet
from tests.harness import moto_server
from tests.harness import s3 as s3h
from tests.harness.ansible_run import ANSIBLE_PLAYBOOK
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import environment
from tests.harness.ansible_run import run_playbook

TODAY = datetime.datetime.now(datetime.timezone.utc).date()
BUCKET = "survey-images"

# playbook: (module task, summary task, registered result, required variables)
PLAYBOOKS = {
    "ami_backup": ("Create AMIs of the tagged instances", "Summarise the backup", "ami_backup_result", ()),
    "ami_purge": ("Deregister expired AMIs and delete their snapshots", "Summarise the purge", "ami_purge_result", ()),
    "ebs_snapshot": ("Create EBS snapshots", "Summarise the snapshots", "ebs_snapshot_result", ()),
    "snapshot_purge": (
        "Delete, archive or list expired and stale snapshots",
        "Summarise the purge",
        "snapshot_purge_result",
        (),
    ),
    "s3_mirror": ("Download new and changed objects", "Summarise the mirror", "s3_mirror_result", ("bucket", "dest")),
    "backup_copy": (
        "Copy managed AMIs and snapshots to their destinations",
        "Summarise the copies",
        "backup_copy_result",
        ("destinations",),
    ),
    "vault_guard": (
        "Lock snapshots, protect AMIs and keep the Recycle Bin rules",
        "Summarise the locks",
        "vault_guard_result",
        (),
    ),
}
EC2_PLAYBOOKS = ["ami_backup", "ami_purge", "ebs_snapshot", "snapshot_purge"]

# The connection options amazon.aws's fragments add to every module, and the role to assume: they come
# from the environment (or an AWX credential) and the host, not from playbook variables.
CONNECTION_OPTIONS = (
    set(yaml.safe_load(aws_common_fragment.ModuleDocFragment.MODULES)["options"])
    | set(yaml.safe_load(aws_region_fragment.ModuleDocFragment.MODULES)["options"])
    | set(yaml.safe_load(assume_role_fragment.ModuleDocFragment.DOCUMENTATION)["options"])
)
# Over the accounts inventory these playbooks take the region, role and external id from each host.
HOST_OPTIONS = {"region": "aws_region", "assume_role_arn": "aws_role_arn", "external_id": "aws_external_id"}
ACCOUNT_PLAYBOOKS = ("ami_backup", "ami_purge", "ebs_snapshot", "snapshot_purge", "backup_copy", "vault_guard")


@functools.lru_cache(maxsize=None)
def module_options():
    """{module: {option: spec}} of the collection's modules, from ansible-doc, connection options left out."""
    names = ["opsvault.aws_backup." + name for name in PLAYBOOKS]
    process = subprocess.run(
        [str(Path(ANSIBLE_PLAYBOOK).parent / "ansible-doc"), "--json", *names],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    docs = json.loads(process.stdout)
    return {
        name.rsplit(".", 1)[1]: {
            option: spec for option, spec in docs[name]["doc"]["options"].items() if option not in CONNECTION_OPTIONS
        }
        for name in names
    }


def optional_variables(playbook):
    required = PLAYBOOKS[playbook][3]
    return ["{0}_{1}".format(playbook, option) for option in module_options()[playbook] if option not in required]


def shipped_tasks(playbook):
    [play] = yaml.safe_load((REPO / "playbooks" / "{0}.yml".format(playbook)).read_text())
    return {task["name"]: task for task in play["tasks"]}


@pytest.fixture(autouse=True)
def invocation(monkeypatch):
    """Each task result carries ``invocation``: the arguments the module ran with, defaults included."""
    monkeypatch.setenv("ANSIBLE_INJECT_INVOCATION", "true")


@pytest.fixture
def shipped(shipped_playbook):
    """``shipped(playbook, extra_vars, check=False)``: the run and its module task's result."""

    def run(playbook, extra_vars, check=False):
        playbook_run, _stats = shipped_playbook(playbook, extra_vars, check=check)
        return playbook_run, playbook_run.result(PLAYBOOKS[playbook][0])

    return run


def required_vars(playbook, tmp_path):
    if playbook == "s3_mirror":
        return {"s3_mirror_bucket": BUCKET, "s3_mirror_dest": str(tmp_path / "mirror")}
    if playbook == "backup_copy":
        return {"backup_copy_destinations": [{"region": "eu-west-1"}]}
    return {}


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_each_module_option_is_passed_from_its_variable_and_the_module_owns_the_default(playbook):
    module_task, summary_task, result, required = PLAYBOOKS[playbook]
    tasks = shipped_tasks(playbook)
    args = dict(tasks[module_task]["opsvault.aws_backup." + playbook])
    if playbook in ACCOUNT_PLAYBOOKS:
        host_args = {option: args.pop(option, None) for option in HOST_OPTIONS}
        assert host_args == {o: "{{{{ {0} | default(omit, true) }}}}".format(v) for o, v in HOST_OPTIONS.items()}

    assert sorted(args) == sorted(module_options()[playbook])
    for option, value in args.items():
        variable = "{0}_{1}".format(playbook, option)
        if option in required:
            expected = ["{{{{ {0} }}}}".format(variable)]
        else:
            expected = [
                "{{{{ {0} | default(omit, true) }}}}".format(variable),
                "{{{{ omit if {0} | default('') in [none, ''] else {0} }}}}".format(variable),
            ]
        assert value in expected, (option, value)
    # Text, lists and dicts may drop every falsy value; a number or a yes/no must keep 0 and false.
    for option, spec in module_options()[playbook].items():
        if spec["type"] in ("int", "bool") or option in ("retention", "min_interval", "stale_min_age", "max_delete"):
            assert "default(omit, true)" not in args[option], option

    assert tasks[summary_task]["ansible.builtin.debug"] == {"msg": "{{{{ {0}.msg }}}}".format(result)}


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_playbook_header_documents_each_variable(playbook):
    header = (REPO / "playbooks" / "{0}.yml".format(playbook)).read_text().split("\n- name:", 1)[0]
    for option in module_options()[playbook]:
        assert re.search(r"^#\s+{0}_{1}\s".format(playbook, option), header, re.M), option


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_unanswered_survey_questions_run_with_the_module_defaults(aws, shipped, tmp_path, playbook):
    """Every optional variable sent as "" gives the module the same arguments as no variable at all."""
    if playbook == "s3_mirror":
        aws.client("s3").create_bucket(Bucket=BUCKET)
    required = required_vars(playbook, tmp_path)
    _run, unset = shipped(playbook, required, check=True)
    unanswered = dict({variable: "" for variable in optional_variables(playbook)}, **required)

    run, empty = shipped(playbook, unanswered, check=True)

    assert empty["invocation"]["module_args"] == unset["invocation"]["module_args"]
    for option, spec in module_options()[playbook].items():
        if option not in PLAYBOOKS[playbook][3]:
            assert empty["invocation"]["module_args"][option] == spec.get("default"), option
    if playbook != "s3_mirror":
        assert empty["regions"] == ["us-east-1"]
    summary = run.result(PLAYBOOKS[playbook][1])["msg"]
    assert summary and summary == empty["msg"]


def test_ami_purge_with_empty_keep_min_keep_last_and_as_of_keeps_the_newest_backup(aws, shipped):
    """The report: ``{"ami_purge_keep_min": ""}`` failed with "keep_min must be at least 1, got 0"."""
    east = aws.ec2("us-east-1")
    [instance] = fleet.launch(east, {"Backup": ""})
    marker = {"CreatedBy": "opsvault.aws_backup", "SourceInstanceId": instance, "BackupPolicy": "default"}
    images = {}
    for age, delete_on in ((20, -13), (10, -3)):
        tags = dict(marker, DeleteOn=(TODAY + datetime.timedelta(days=delete_on)).isoformat())
        image_id = east.create_image(
            InstanceId=instance,
            Name="web-{0}-{1}".format(instance, age),
            NoReboot=True,
            TagSpecifications=[{"ResourceType": kind, "Tags": fleet.tag_list(tags)} for kind in ("image", "snapshot")],
        )["ImageId"]
        fleet.set_image(
            "us-east-1", image_id, created=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=age)
        )
        images[age] = image_id
    unanswered = {
        "ami_purge_regions": "",
        "ami_purge_as_of": "",
        "ami_purge_keep_min": "",
        "ami_purge_keep_last": "",
        "ami_purge_adopt_legacy": "",
        "ami_purge_max_concurrency": "",
    }

    run, result = shipped("ami_purge", unanswered)

    assert result["regions"] == ["us-east-1"] and result["as_of"] == TODAY.isoformat()
    assert [item["image_id"] for item in result["deregistered"]] == [images[20]]
    assert set(fleet.images(east)) == {images[10]}
    assert run.result("Summarise the purge")["msg"] == result["msg"]


def test_s3_mirror_with_empty_max_concurrency_and_filters_mirrors_the_bucket(aws, shipped, tmp_path):
    """The report: ``{"s3_mirror_max_concurrency": ""}`` failed like keep_min did."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3h.put(s3, BUCKET, {"img/a.jpg": b"a", "img/b.png": b"b"})
    dest = tmp_path / "mirror"
    extra_vars = {
        "s3_mirror_bucket": BUCKET,
        "s3_mirror_dest": str(dest),
        "s3_mirror_prefix": "",
        "s3_mirror_include": "",
        "s3_mirror_exclude": "",
        "s3_mirror_delete": "",
        "s3_mirror_max_delete": "",
        "s3_mirror_max_concurrency": "",
    }

    run, result = shipped("s3_mirror", extra_vars)

    assert result["counts"]["downloaded"] == 2
    assert s3h.local_files(dest) == {"img/a.jpg": b"a", "img/b.png": b"b"}
    assert run.result("Summarise the mirror")["msg"] == result["msg"]


def test_zero_and_false_are_values_not_unanswered_questions(aws, shipped, tmp_path):
    """``max_delete: 0`` must not become "no limit", nor ``fsync: false`` the default true."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    extra_vars = dict(
        required_vars("s3_mirror", tmp_path), s3_mirror_delete=True, s3_mirror_max_delete=0, s3_mirror_fsync=False
    )
    _run, mirror = shipped("s3_mirror", extra_vars, check=True)
    assert mirror["invocation"]["module_args"]["max_delete"] == "0"
    assert mirror["invocation"]["module_args"]["fsync"] is False

    _run, backup = shipped("ami_backup", {"ami_backup_min_interval": 0, "ami_backup_wait": False}, check=True)
    assert backup["invocation"]["module_args"]["min_interval"] == "0"
    assert backup["invocation"]["module_args"]["wait"] is False


@pytest.mark.parametrize(
    "playbook, regions",
    [
        ("ami_purge", "eu-west-1,us-east-1"),
        ("ami_purge", "eu-west-1, us-east-1"),
        ("ami_backup", "eu-west-1, us-east-1"),
        ("ebs_snapshot", "eu-west-1, us-east-1"),
        ("snapshot_purge", "eu-west-1, us-east-1"),
    ],
)
def test_regions_as_survey_text_reach_each_region(shipped, playbook, regions):
    _run, result = shipped(playbook, {"{0}_regions".format(playbook): regions}, check=True)
    assert sorted(result["regions"]) == ["eu-west-1", "us-east-1"]


def test_s3_mirror_without_its_bucket_fails_naming_the_variable(aws, tmp_path):
    run = run_playbook(
        "opsvault.aws_backup.s3_mirror",
        tmp_path,
        endpoint=aws.endpoint,
        extra_vars={"s3_mirror_dest": str(tmp_path / "mirror")},
        env={"AWS_REGION": "us-east-1"},
    )
    assert run.rc != 0
    failed = [task for task in run.tasks if task.get("failed")]
    assert failed and "s3_mirror_bucket" in failed[0]["msg"], run.stdout


# What the README and the docs tell users to do, checked against what the collection does.


def test_only_the_collection_group_of_module_defaults_reaches_its_modules(aws, tmp_path):
    """group/opsvault.aws_backup.aws sets our modules and amazon.aws's; group/amazon.aws.aws only amazon.aws's."""

    def play(group):
        defaults = {"endpoint_url": aws.endpoint, "region": "eu-west-1"}
        tasks = [
            {"name": "amazon.aws module", "amazon.aws.aws_caller_info": {}},
            {
                "name": "collection module",
                "opsvault.aws_backup.ami_purge": {},
                "register": "result",
                "check_mode": True,
            },
        ]
        plays = [
            {
                "name": "defaults",
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {group: defaults},
                "tasks": tasks,
            }
        ]
        # No endpoint and no region from the environment: only module_defaults can give them.
        return run_playbook(plays, tmp_path, env={"AWS_REGION": "", "AWS_DEFAULT_REGION": ""})

    ours = play("group/opsvault.aws_backup.aws")
    assert ours.rc == 0, ours.stdout
    assert ours.result("collection module")["regions"] == ["eu-west-1"]

    theirs = play("group/amazon.aws.aws")
    assert theirs.result("amazon.aws module").get("failed") is not True
    missed = theirs.result("collection module")
    assert missed.get("failed") is True and "group/opsvault.aws_backup.aws" in missed["msg"], missed


def test_the_moto_server_of_the_readme_starts_answers_and_stops(tmp_path):
    port = moto_server.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.moto_server", "--port", str(port)],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "moto listening on http://127.0.0.1:{0}".format(port)
        ec2 = fleet.client("http://127.0.0.1:{0}".format(port), "ec2", "us-east-1")
        assert "us-east-1" in [region["RegionName"] for region in ec2.describe_regions()["Regions"]]
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) is not None


def test_boto3_minimum_is_amazon_aws_s_everywhere_it_is_stated():
    minimum = botocore_utils.MINIMUM_BOTO3_VERSION
    assert botocore_utils.MINIMUM_BOTOCORE_VERSION == minimum
    stated = {
        "requirements.txt": (REPO / "requirements.txt").read_text(),
        "roles/backup_host/defaults/main.yml": (REPO / "roles/backup_host/defaults/main.yml").read_text(),
        "roles/backup_host/meta/argument_specs.yml": (REPO / "roles/backup_host/meta/argument_specs.yml").read_text(),
        "README.md": (REPO / "README.md").read_text(),
    }
    # "boto3>=X" in requirement specifiers, "`boto3` and `botocore` X or newer" in prose.
    version = re.compile(r"\bboto(?:3|core)`?(?: and `botocore`)?\s*(?:>=\s*)?(\d+\.\d+\.\d+)")
    for name, text in stated.items():
        assert set(version.findall(text)) == {minimum}, name


USER_FACING = ["README.md", "docs", "roles/backup_host", "playbooks"]


def test_user_facing_text_describes_what_to_do_not_internal_reference_documents():
    paths = [REPO / name for name in USER_FACING]
    files = [path for top in paths for path in ([top] if top.is_file() else sorted(top.rglob("*"))) if path.is_file()]
    files = [path for path in files if path.suffix not in (".png", ".jpg", ".svg")]
    assert files
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert not re.search(r"\bseed", line, re.I), "{0}:{1}: {2}".format(path.relative_to(REPO), number, line)
