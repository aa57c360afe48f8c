"""Run real ``ansible-playbook`` processes and read their task results (ansible.posix.json callback)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "build" / "collections"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def ensure_collection_link():
    link = COLLECTIONS / "ansible_collections" / "opsvault" / "aws_backup"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)
    return COLLECTIONS


class PlaybookRun:
    """An ansible-playbook run (json callback): each task's result keeps its own keys, and the task's
    name is added as ``task_name`` (a result may carry a ``name`` of its own, as pip's does)."""

    def __init__(self, process):
        self.rc = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        try:
            self.output = json.loads(process.stdout)
        except ValueError:
            raise AssertionError(
                "ansible-playbook printed no JSON (rc {0}):\n{1}\n{2}".format(self.rc, self.stdout, self.stderr)
            )
        self.tasks = [
            dict(result, task_name=task["task"]["name"])
            for play in self.output["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
        ]

    def result(self, name):
        """The result of the (last) task with this name."""
        matches = [task for task in self.tasks if task["task_name"] == name]
        if not matches:
            raise AssertionError("no task named {0!r}; tasks: {1}".format(name, [t["task_name"] for t in self.tasks]))
        return matches[-1]

    def role_result(self, name):
        """The result of the (last) task with this name, a role's task named without its ``role : `` prefix."""
        matches = [task for task in self.tasks if short_name(task) == name]
        if not matches:
            raise AssertionError("no task named {0!r}; tasks: {1}".format(name, [short_name(t) for t in self.tasks]))
        return matches[-1]

    def by_host(self, name):
        """``{host: result}`` of the task with this name, on every host it ran on."""
        return {
            host: result
            for play in self.output["plays"]
            for task in play["tasks"]
            if task["task"]["name"] == name
            for host, result in task["hosts"].items()
        }

    def changed_tasks(self):
        """The names (without a role prefix) of the tasks that reported a change."""
        return [short_name(task) for task in self.tasks if task.get("changed")]

    def __repr__(self):
        return "PlaybookRun(rc={0}, tasks={1})".format(self.rc, [t["task_name"] for t in self.tasks])


def short_name(task):
    """A task's name without the ``role : `` prefix Ansible gives the tasks of a role."""
    return task["task_name"].split(" : ", 1)[-1]


def environment(endpoint=None, extra=None):
    env = dict(os.environ)
    env.update(CREDENTIALS)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ensure_collection_link()),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="False",
    )
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_URL", "AWS_ENDPOINT_URL"):
        env.pop(key, None)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env.update(extra or {})
    return env


def playbook_command(playbook, workdir, extra_vars=None, check=False, inventory=None, options=()):
    """The ansible-playbook command line of ``run_playbook``'s arguments (a list of plays is written out)."""
    if isinstance(playbook, list):
        path = Path(workdir) / "playbook-{0}.yml".format(len(list(Path(workdir).glob("playbook-*.yml"))))
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        playbook = str(path)
    command = [ANSIBLE_PLAYBOOK, playbook] + (["-i", str(inventory)] if inventory else []) + list(options)
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if check:
        command.append("--check")
    return command


def start_playbook(playbook, workdir, endpoint=None, extra_vars=None, env=None, output=None):
    """Start ``run_playbook``'s run without waiting, in a session of its own (``processes.kill_tree`` ends it);
    its standard output and error go to the file ``output`` (default: nowhere). Returns the Popen."""
    with open(output or os.devnull, "w") as stream:
        return subprocess.Popen(
            playbook_command(playbook, workdir, extra_vars),
            cwd=str(workdir),
            env=environment(endpoint, env),
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_playbook(
    playbook, workdir, endpoint=None, extra_vars=None, check=False, env=None, timeout=600, inventory=None, options=()
):
    """Run a playbook (a path, an FQCN, or a list of plays to write out) and return a PlaybookRun;
    ``inventory`` is an inventory source, ``options`` more ansible-playbook arguments (``["-f", "10"]``)."""
    command = playbook_command(playbook, workdir, extra_vars, check, inventory, options)
    process = subprocess.run(
        command,
        cwd=str(workdir),
        env=environment(endpoint, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(process)


def aws_play(endpoint, tasks, region="us-east-1", name="test"):
    """A localhost play whose AWS modules, ours and amazon.aws's, reach moto via the action group."""
    return [
        {
            "name": name,
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {
                "group/opsvault.aws_backup.aws": {
                    "endpoint_url": endpoint,
                    "region": region,
                    "access_key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
                    "secret_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                }
            },
            "tasks": tasks,
        }
    ]


def task(module, name=None, check_mode=None, ignore_errors=None, **options):
    """A task of one of our modules by FQCN, registered as ``result``; ``check_mode`` and
    ``ignore_errors`` are the task keywords, set only when given."""
    entry = {"name": name or module, "opsvault.aws_backup." + module: options, "register": "result"}
    if check_mode is not None:
        entry["check_mode"] = check_mode
    if ignore_errors is not None:
        entry["ignore_errors"] = ignore_errors
    return entry
