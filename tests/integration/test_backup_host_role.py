"""The opsvault.aws_backup.backup_host role, run by ansible-playbook against localhost into a temporary root.

Every path the role writes is a role variable, so the tests point them all under ``tmp_path``:
the cron entries go to a ``cron_file`` there (``ansible.builtin.cron`` writes that file itself; it
only looks ``crontab`` up, so a stub that fails if called stands in for it on hosts without cron).
Installing the virtualenv with pip needs a package index, so the runs set
``backup_host_install_runtime: false``; a check-mode run shows the pip and ansible-galaxy tasks
with the arguments they would run with.
"""

import fcntl
import getpass
import grp
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness import fleet
from tests.harness.ansible_run import ANSIBLE_PLAYBOOK
from tests.harness.ansible_run import COLLECTIONS
from tests.harness.ansible_run import CREDENTIALS
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import PlaybookRun
from tests.harness.ansible_run import ensure_collection_link
from tests.harness.ansible_run import environment

DEFAULT_SCHEDULES = {
    "ami_backup": "0 23 * * *",
    "ami_purge": "0 1 * * *",
    "ebs_snapshot": "0 0 * * *",
    "snapshot_purge": "0 2 * * *",
    "coverage_report": "30 7 * * *",
    "restore_drill": "0 4 * * 0",
    "s3_mirror": "5 7 * * *",
}
REGIONAL_JOBS = ("ami_backup", "ami_purge", "ebs_snapshot", "snapshot_purge", "coverage_report")
# The drill works in the region of the API calls (backup_host_aws_region): one isolated network.
SINGLE_REGION_JOBS = ("restore_drill",)
# A Galaxy server that cannot answer: any install by name fails.
NO_GALAXY = {"ANSIBLE_GALAXY_SERVER": "http://127.0.0.1:9"}


class Host:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        self.user = getpass.getuser()
        self.group = grp.getgrgid(os.getgid()).gr_name
        self.home = self.root / "opt" / "opsvault-aws-backup"
        self.log_dir = self.root / "var" / "log" / "opsvault-aws-backup"
        self.cron_file = self.root / "etc" / "cron.d" / "opsvault-aws-backup"
        self.logrotate_file = self.root / "etc" / "logrotate.d" / "opsvault-aws-backup"
        self.mirror_dest = self.root / "home" / "user" / "myS3backup"
        stub_dir = tmp_path / "stub-bin"
        stub_dir.mkdir()
        crontab = stub_dir / "crontab"
        crontab.write_text("#!/bin/sh\necho 'crontab called: the role must write its cron_file' >&2\nexit 3\n")
        crontab.chmod(0o755)
        self.env = {"PATH": "{0}:{1}".format(stub_dir, os.environ["PATH"])}

    def role_vars(self, **overrides):
        values = {
            "backup_host_user": self.user,
            "backup_host_group": self.group,
            "backup_host_home": str(self.home),
            "backup_host_log_dir": str(self.log_dir),
            "backup_host_cron_file": str(self.cron_file),
            "backup_host_logrotate_file": str(self.logrotate_file),
            "backup_host_install_packages": False,
            "backup_host_install_runtime": False,
            "backup_host_s3_mirror_bucket": "seed-images",
            "backup_host_s3_mirror_dest": str(self.mirror_dest),
        }
        values.update(overrides)
        return values

    def run(self, check=False, **overrides):
        play = {
            "name": "backup host",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "backup_host",
                    "ansible.builtin.include_role": {"name": "opsvault.aws_backup.backup_host"},
                    "vars": self.role_vars(**overrides),
                }
            ],
        }
        return run_play(play, self.tmp, check=check, env=self.env)

    def cron_entries(self):
        """{job name: (schedule, user, command)} from the cron file, with the '#Ansible:' name lines."""
        entries, name = {}, None
        for line in self.cron_file.read_text().splitlines():
            if line.startswith("#Ansible: "):
                name = line[len("#Ansible: ") :]
                continue
            fields = line.split(None, 6)
            entries[name.split(" ", 1)[1]] = (" ".join(fields[:5]), fields[5], fields[6])
            name = None
        return entries

    def job_vars(self, name):
        return yaml.safe_load((self.home / "jobs" / "{0}.yml".format(name)).read_text())


def run_play(play, workdir, check=False, env=None):
    path = Path(workdir) / "playbook.yml"
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    command = [ANSIBLE_PLAYBOOK, str(path)] + (["--check"] if check else [])
    process = subprocess.run(
        command, cwd=str(workdir), env=environment(extra=env), capture_output=True, text=True, timeout=600, check=False
    )
    return PlaybookRun(process)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


def test_role_writes_cron_entries_wrapper_vars_and_logrotate_then_rerun_changes_nothing(host):
    first = host.run()
    assert first.rc == 0, first.stdout
    wrapper = host.home / "bin" / "run-job"

    entries = host.cron_entries()
    assert {name: entry[0] for name, entry in entries.items()} == DEFAULT_SCHEDULES
    for name, (_schedule, user, command) in entries.items():
        assert user == host.user
        assert command == "{0} {1} opsvault.aws_backup.{1}".format(wrapper, name)

    for name in ("ami_backup", "ami_purge", "ebs_snapshot", "snapshot_purge"):
        assert host.job_vars(name) == {"{0}_regions".format(name): ["all"]}
    assert host.job_vars("s3_mirror") == {
        "s3_mirror_bucket": "seed-images",
        "s3_mirror_prefix": "",
        "s3_mirror_dest": str(host.mirror_dest),
    }

    assert wrapper.stat().st_mode & stat.S_IXUSR
    script = wrapper.read_text()
    assert "flock -n 9" in script
    assert "{0}/venv/bin/ansible-playbook".format(host.home) in script
    assert "export ANSIBLE_COLLECTIONS_PATH={0}/collections".format(host.home) in script
    assert "export AWS_REGION=us-east-1" in script
    assert subprocess.run(["sh", "-n", str(wrapper)], check=False).returncode == 0

    logrotate = host.logrotate_file.read_text()
    assert "{0}/*.log {{".format(host.log_dir) in logrotate
    assert "    rotate 14\n" in logrotate and "    daily\n" in logrotate and "    copytruncate\n" in logrotate
    assert "    su {0} {1}\n".format(host.user, host.group) in logrotate

    for directory in ("jobs", "bin", "locks", "collections"):
        assert (host.home / directory).is_dir()
    assert host.log_dir.is_dir()
    assert not (host.home / "venv").exists()

    second = host.run()
    assert second.rc == 0, second.stdout
    assert second.changed_tasks() == []


def test_removing_a_job_removes_its_cron_entry_and_vars_file(host):
    assert host.run().rc == 0
    jobs = yaml.safe_load((Path(__file__).parents[2] / "roles/backup_host/defaults/main.yml").read_text())[
        "backup_host_jobs"
    ]
    kept = [job for job in jobs if job["name"] in ("ami_backup", "ebs_snapshot", "snapshot_purge")]
    custom = dict(jobs[0], name="weekly_ami", schedule="0 3 * * 0", vars={"ami_backup_tag_value": "ProductionWeekly"})

    run = host.run(backup_host_jobs=kept + [custom], backup_host_s3_mirror_bucket="")
    assert run.rc == 0, run.stdout

    entries = host.cron_entries()
    assert sorted(entries) == ["ami_backup", "ebs_snapshot", "snapshot_purge", "weekly_ami"]
    assert entries["weekly_ami"][0] == "0 3 * * 0"
    assert host.job_vars("weekly_ami") == {"ami_backup_regions": ["all"], "ami_backup_tag_value": "ProductionWeekly"}
    assert sorted(path.name for path in (host.home / "jobs").iterdir()) == [
        "ami_backup.yml",
        "ebs_snapshot.yml",
        "snapshot_purge.yml",
        "weekly_ami.yml",
    ]

    disabled = host.run(backup_host_jobs=kept + [dict(custom, disabled=True)], backup_host_s3_mirror_bucket="")
    assert disabled.rc == 0, disabled.stdout
    lines = host.cron_file.read_text().splitlines()
    weekly = lines[lines.index("#Ansible: opsvault.aws_backup weekly_ami") + 1]
    assert weekly.startswith("#0 3 * * 0 ")


def test_cron_command_runs_the_playbook_with_the_job_vars_under_flock(aws, host):
    """The cron entry's command, run as cron would, backs up through the real playbook against moto."""
    ensure_collection_link()
    [instance] = fleet.launch(aws.ec2(), {"Backup": "ProductionDaily", "Name": "web"})
    jobs = [
        {
            "name": "ami_backup",
            "schedule": "0 23 * * *",
            "playbook": "opsvault.aws_backup.ami_backup",
            "vars": {"ami_backup_tag_value": "ProductionDaily", "ami_backup_retention": "30d"},
        }
    ]
    environment = dict(CREDENTIALS, AWS_ENDPOINT_URL=aws.endpoint)
    run = host.run(
        backup_host_jobs=jobs,
        backup_host_s3_mirror_bucket="",
        backup_host_venv=str(Path(sys.executable).parent.parent),
        backup_host_collections_dir=str(COLLECTIONS),
        backup_host_environment=environment,
    )
    assert run.rc == 0, run.stdout
    command = host.cron_entries()["ami_backup"][2]
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "SHELL": "/bin/sh"}

    first = subprocess.run(command, shell=True, env=cron_env, capture_output=True, text=True, timeout=300, check=False)
    log = (host.log_dir / "ami_backup.log").read_text()
    assert first.returncode == 0, log
    images = [
        image for image in fleet.images(aws.ec2()).values() if fleet.tags_of(image).get("SourceInstanceId") == instance
    ]
    assert len(images) == 1
    assert fleet.tags_of(images[0])["BackupPolicy"] == "ProductionDaily"
    assert "ami_backup: start opsvault.aws_backup.ami_backup" in log
    assert "ami_backup: end rc=0" in log

    with open(host.home / "locks" / "ami_backup.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        overlapping = subprocess.run(
            command, shell=True, env=cron_env, capture_output=True, text=True, timeout=60, check=False
        )
    log = (host.log_dir / "ami_backup.log").read_text()
    assert overlapping.returncode == 0
    assert "ami_backup: not started, the previous run still holds" in log
    assert log.count("ami_backup: start") == 1


def test_check_mode_shows_the_runtime_install_and_writes_nothing(host):
    run = host.run(check=True, backup_host_install_runtime=True)
    assert run.rc == 0, run.stdout

    assert run.role_result("Install ansible and boto3 into the virtualenv")["changed"] is True
    assert run.role_result("Copy the collection tarball to the host")["changed"] is True
    galaxy = run.role_result("Install the collection tarball offline")
    assert galaxy["skipped"] is True
    assert galaxy["cmd"] == [
        str(host.home / "venv" / "bin" / "ansible-galaxy"),
        "collection",
        "install",
        "--offline",
        "-p",
        str(host.home / "collections"),
        str(host.home / "opsvault-aws_backup.tar.gz"),
    ]
    assert run.role_result("Install the other collections the jobs use").get("skipped") is True
    assert "Schedule each job" in run.changed_tasks()
    assert not host.root.exists()


def default_jobs():
    return yaml.safe_load((REPO / "roles/backup_host/defaults/main.yml").read_text())["backup_host_jobs"]


def job_regions(host, names):
    return {name: host.job_vars(name).get("{0}_regions".format(name)) for name in names}


def test_every_job_works_in_the_same_regions_by_default(host):
    """Every regional default job gets backup_host_regions (every enabled region) in its vars."""
    names = [job["name"] for job in default_jobs() if job["name"] not in SINGLE_REGION_JOBS]
    assert sorted(names) == sorted(REGIONAL_JOBS)

    run = host.run(backup_host_s3_mirror_bucket="")
    assert run.rc == 0, run.stdout

    assert job_regions(host, names) == dict.fromkeys(names, ["all"])
    assert "export AWS_REGION=us-east-1" in (host.home / "bin" / "run-job").read_text()


def test_backup_host_regions_reaches_every_job_unless_the_job_names_its_own(host):
    jobs = default_jobs()
    jobs[1] = dict(jobs[1], vars={"ami_purge_regions": "us-east-1"})
    run = host.run(backup_host_regions=["eu-west-1", "us-east-1"], backup_host_jobs=jobs)
    assert run.rc == 0, run.stdout
    assert job_regions(host, REGIONAL_JOBS) == {
        "ami_backup": ["eu-west-1", "us-east-1"],
        "ami_purge": "us-east-1",
        "ebs_snapshot": ["eu-west-1", "us-east-1"],
        "snapshot_purge": ["eu-west-1", "us-east-1"],
        "coverage_report": ["eu-west-1", "us-east-1"],
    }
    assert "s3_mirror_regions" not in host.job_vars("s3_mirror")
    assert "restore_drill_regions" not in host.job_vars("restore_drill")

    run = host.run(backup_host_regions=[], backup_host_aws_region="eu-west-1")
    assert run.rc == 0, run.stdout
    assert job_regions(host, REGIONAL_JOBS) == dict.fromkeys(REGIONAL_JOBS)
    assert "export AWS_REGION=eu-west-1" in (host.home / "bin" / "run-job").read_text()


def collection_version():
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def installed_version(collections_dir):
    manifest = Path(collections_dir) / "ansible_collections" / "opsvault" / "aws_backup" / "MANIFEST.json"
    return json.loads(manifest.read_text())["collection_info"]["version"]


def galaxy(*args, cwd):
    command = [str(Path(ANSIBLE_PLAYBOOK).parent / "ansible-galaxy"), *args]
    process = subprocess.run(
        command,
        cwd=str(cwd),
        env=environment(extra=NO_GALAXY),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return process


def runtime_options(**overrides):
    """The real runtime install, offline: the test's own virtualenv (its pip already has pip, its
    ansible-galaxy installs the collection), so neither a package index nor Galaxy is needed."""
    return dict(
        backup_host_install_runtime=True,
        backup_host_venv=str(Path(sys.executable).parent.parent),
        backup_host_pip_packages=["pip"],
        backup_host_pip_extra_args="--no-index",
        **overrides,
    )


def test_runtime_install_copies_this_collection_to_the_host_and_installs_it_without_galaxy(host):
    host.env.update(NO_GALAXY)
    first = host.run(**runtime_options())
    assert first.rc == 0, first.stdout

    install = first.role_result("Install the collection tarball offline")
    assert install["changed"] is True
    assert install["cmd"][-1] == str(host.home / "opsvault-aws_backup.tar.gz") and "--offline" in install["cmd"]
    commands = [task["cmd"] for task in first.tasks if isinstance(task.get("cmd"), list)]
    assert not [arg for cmd in commands for arg in cmd if re.match(r"^(opsvault|amazon)[.]aws(_backup)?(:.*)?$", arg)]
    assert installed_version(host.home / "collections") == collection_version()
    installed = host.home / "collections" / "ansible_collections" / "opsvault" / "aws_backup"
    assert (installed / "playbooks" / "ami_backup.yml").is_file()
    assert (installed / "plugins" / "modules" / "ami_purge.py").is_file()

    second = host.run(**runtime_options())
    assert second.rc == 0, second.stdout
    assert second.changed_tasks() == []
    assert second.role_result("Install the collection tarball offline").get("skipped") is True


@pytest.mark.parametrize("kind", ["tarball", "installed collection"])
def test_collection_source_may_be_a_tarball_or_an_installed_collection(host, tmp_path, kind):
    built = tmp_path / "built"
    galaxy("collection", "build", "--output-path", str(built), str(REPO), cwd=tmp_path)
    [tarball] = built.glob("opsvault-aws_backup-*.tar.gz")
    source = tarball
    if kind == "installed collection":
        galaxy(
            "collection",
            "install",
            "--offline",
            "--force",
            "-p",
            str(tmp_path / "controller"),
            str(tarball),
            cwd=tmp_path,
        )
        source = tmp_path / "controller" / "ansible_collections" / "opsvault" / "aws_backup"
    host.env.update(NO_GALAXY)

    run = host.run(**runtime_options(backup_host_collection_source=str(source)))

    assert run.rc == 0, run.stdout
    assert run.role_result("Install the collection tarball offline")["changed"] is True
    assert installed_version(host.home / "collections") == collection_version()


def test_runtime_install_creates_the_virtualenv_with_pip_offline(host):
    """The real pip task, offline: a package the base Python already has, so no index is needed."""
    options = dict(
        backup_host_install_runtime=True,
        backup_host_python=sys._base_executable,
        backup_host_pip_packages=["pip"],
        backup_host_pip_extra_args="--no-index",
        backup_host_copy_collection=False,
    )
    first = host.run(**options)
    assert first.rc == 0, first.stdout
    assert first.role_result("Install ansible and boto3 into the virtualenv")["changed"] is True
    venv_python = host.home / "venv" / "bin" / "python"
    assert (
        subprocess.run([str(venv_python), "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0
    )
    assert first.role_result("Install the other collections the jobs use").get("skipped") is True
    assert first.role_result("Copy the collection tarball to the host").get("skipped") is True

    second = host.run(**options)
    assert second.rc == 0, second.stdout
    assert second.changed_tasks() == []


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"backup_host_jobs": [{"name": "nightly", "schedule": "0 23 * * *"}]},
            "missing required arguments: playbook found in backup_host_jobs",
        ),
        ({"backup_host_logrotate_rotate": "often"}, "backup_host_logrotate_rotate"),
        (
            {
                "backup_host_jobs": [
                    {"name": "nightly", "schedule": "0 23 * *", "playbook": "opsvault.aws_backup.ami_backup"}
                ]
            },
            "each schedule must have the five cron fields (['0 23 * *'",
        ),
        (
            {"backup_host_jobs": [{"name": "../etc/x", "schedule": "0 1 * * *", "playbook": "x.yml"}]},
            "names must be unique and made of letters, digits, _ and - (['../etc/x'",
        ),
    ],
)
def test_bad_variables_are_rejected_before_anything_is_written(host, overrides, message):
    run = host.run(**overrides)
    assert run.rc != 0
    failed = [task for task in run.tasks if task.get("failed")]
    assert failed, run.stdout
    assert message in failed[0]["msg"], failed[0]["msg"]
    if "backup_host_logrotate_rotate" in overrides:
        assert "int" in failed[0]["msg"]
    assert not host.root.exists()


@pytest.mark.parametrize(
    "answers",
    [{}, {"setup_backup_host_manage_iam": "", "setup_backup_host_instance_id": ""}],
    ids=["unset", "unanswered survey questions"],
)
def test_setup_playbook_creates_the_iam_identity_and_schedules_the_jobs(aws, host, answers):
    """opsvault.aws_backup.setup_backup_host, by FQCN: the iam role against moto, then the host (localhost).
    An empty answer, as an AWX survey sends, means unset: the IAM identity is still created."""
    extra_vars = dict(
        host.role_vars(),
        **answers,
        setup_backup_host_hosts="localhost",
        setup_backup_host_become=False,
        ansible_connection="local",
        ansible_python_interpreter=sys.executable,
        iam_role_name="backup-host",
        iam_attach_ssm_policy=False,
    )
    env = dict(host.env, AWS_ENDPOINT_URL=aws.endpoint, AWS_REGION="us-east-1")
    command = [
        ANSIBLE_PLAYBOOK,
        "-i",
        "localhost,",
        "opsvault.aws_backup.setup_backup_host",
        "-e",
        json.dumps(extra_vars),
    ]
    process = subprocess.run(
        command, cwd=str(host.tmp), env=environment(extra=env), capture_output=True, text=True, timeout=600, check=False
    )
    run = PlaybookRun(process)
    assert run.rc == 0, run.stdout

    iam = aws.client("iam")
    profile = iam.get_instance_profile(InstanceProfileName="backup-host")["InstanceProfile"]
    assert [role["RoleName"] for role in profile["Roles"]] == ["backup-host"]
    policy = iam.get_policy(PolicyArn="arn:aws:iam::{0}:policy/backup-host".format(fleet.ACCOUNT_ID))["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert "arn:aws:s3:::seed-images" in json.dumps(version["Document"])
    assert sorted(host.cron_entries()) == sorted(DEFAULT_SCHEDULES)
