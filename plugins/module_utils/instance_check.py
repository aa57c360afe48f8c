# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Checks run on instances through SSM Run Command (AWS-RunShellScript), and what passes.

A check is ``{name, command, expect}``: it passes on an instance when the command's invocation
ends ``Success`` (exit code 0) and, with ``expect``, when that regular expression is found in the
command's standard output (``re.search``, multi-line). A command reaches only a managed node (an
instance whose SSM Agent is online); an instance that is not one by the deadline fails each check,
saying so.
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html
https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
"""

import math
import re
import time

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    from botocore.exceptions import WaiterError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import PLANNED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_code
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_message

DOCUMENT = "AWS-RunShellScript"
# SendCommand takes at most 50 instance ids; DescribeInstanceInformation's InstanceIds filter as many.
BATCH = 50
POLL_DELAY = 3
PASSED, FAILED = "passed", "failed"


def parse_checks(commands):
    """The checks with their expectations compiled; ValueError naming the check and the value."""
    checks, names = [], set()
    for number, command in enumerate(commands):
        name = (command.get("name") or "").strip()
        where = "commands[{0}]".format(number)
        if not name:
            raise ValueError("{0}: name must not be empty, got {1!r}".format(where, command.get("name")))
        if name in names:
            raise ValueError("{0}: name {1!r} is used by another check".format(where, name))
        if not (command.get("command") or "").strip():
            raise ValueError(
                "{0} ({1}): command must not be empty, got {2!r}".format(where, name, command.get("command"))
            )
        expect = command.get("expect")
        try:
            pattern = re.compile(expect, re.MULTILINE) if expect is not None else None
        except re.error as exc:
            raise ValueError(
                "{0} ({1}): expect {2!r} is not a regular expression: {3}".format(where, name, expect, exc)
            )
        names.add(name)
        checks.append({"name": name, "command": command["command"], "expect": expect, "pattern": pattern})
    return checks


def batches(items, size=BATCH):
    return [items[start : start + size] for start in range(0, len(items), size)]


def send_request(check, instance_ids, timeout):
    """SendCommand's parameters for one check on a batch of instances."""
    return {
        "DocumentName": DOCUMENT,
        "InstanceIds": list(instance_ids),
        "Parameters": {"commands": [check["command"]], "executionTimeout": [str(timeout)]},
        "Comment": "opsvault.aws_backup check {0}".format(check["name"])[:100],
        "TimeoutSeconds": max(30, timeout),
    }


def _item(check, instance_id, state, reason, invocation=None):
    invocation = invocation or {}
    return {
        "instance_id": instance_id,
        "name": check["name"],
        "command": check["command"],
        "expect": check["expect"],
        "state": state,
        "passed": state == PASSED,
        "reason": reason,
        "command_id": invocation.get("CommandId"),
        "status": invocation.get("Status"),
        "response_code": invocation.get("ResponseCode"),
        "output": invocation.get("StandardOutputContent"),
        "error_output": invocation.get("StandardErrorContent"),
    }


def planned(check, instance_id):
    return _item(check, instance_id, PLANNED, "check mode: would run {0!r}".format(check["command"]))


def not_run(check, instance_id, reason):
    return _item(check, instance_id, FAILED, reason)


def judge(check, instance_id, invocation):
    """A check's result from its final invocation: the status, the exit code and the expected output."""
    status, code = invocation.get("Status"), invocation.get("ResponseCode")
    output = invocation.get("StandardOutputContent") or ""
    if status != "Success":
        detail = (invocation.get("StandardErrorContent") or "").strip().splitlines()
        reason = "{0!r} ended {1} with exit code {2}{3}".format(
            check["command"], status, code, ": " + detail[-1] if detail else ""
        )
        return _item(check, instance_id, FAILED, reason, invocation)
    if check["pattern"] is not None and not check["pattern"].search(output):
        reason = "the output of {0!r} does not match {1!r}: {2!r}".format(
            check["command"], check["expect"], output[:200]
        )
        return _item(check, instance_id, FAILED, reason, invocation)
    reason = "output matches {0!r}".format(check["expect"]) if check["expect"] is not None else "exit code 0"
    return _item(check, instance_id, PASSED, reason, invocation)


def error_of(result, region, code=None):
    """The ``errors`` entry of a failed check; ``code``, the AWS error code when the command did not run."""
    if code is None:
        code = "UnexpectedOutput" if result["status"] == "Success" else "Command" + (result["status"] or "NotRun")
    message = "check {0} on {1}: {2}".format(result["name"], result["instance_id"], result["reason"])
    return error_entry(result["instance_id"], region, "check", code=code, message=message)


def wait_managed(client, instance_ids, timeout, clock=time.monotonic, sleep=time.sleep):
    """The instances whose SSM Agent is online, polled until all are or ``timeout`` seconds pass."""
    deadline, online = clock() + timeout, set()
    while True:
        for batch in batches(sorted(set(instance_ids) - online)):
            pages = client.get_paginator("describe_instance_information").paginate(
                Filters=[{"Key": "InstanceIds", "Values": batch}]
            )
            for page in pages:
                online.update(
                    node["InstanceId"]
                    for node in page.get("InstanceInformationList", [])
                    if node.get("PingStatus") == "Online"
                )
        if online >= set(instance_ids) or clock() + POLL_DELAY > deadline:
            return online
        sleep(POLL_DELAY)


def wait_invocation(client, command_id, instance_id, timeout):
    """The invocation of ``command_id`` on ``instance_id`` once it has ended (botocore's command_executed waiter)."""
    waiter = client.get_waiter("command_executed")
    config = {"Delay": POLL_DELAY, "MaxAttempts": max(1, int(math.ceil(timeout / float(POLL_DELAY))))}
    try:
        waiter.wait(CommandId=command_id, InstanceId=instance_id, WaiterConfig=config)
    except WaiterError as exc:
        # A Failed/Cancelled/TimedOut invocation stops the waiter: its last answer is the result.
        if exc.last_response and "Status" in exc.last_response:
            return exc.last_response
        raise
    return client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


def run_checks(client, region, checks, instance_ids, timeout, max_workers):
    """Every check on every instance: ``(results, errors)``, results in the order of checks, then instances."""
    online = wait_managed(client, instance_ids, timeout)
    results, errors, pending = {}, [], []

    def failed(check, instance_id, reason, code):
        result = not_run(check, instance_id, reason)
        results[(check["name"], instance_id)] = result
        errors.append(error_of(result, region, code))

    for instance_id in [instance_id for instance_id in instance_ids if instance_id not in online]:
        reason = (
            "{0} is not a managed node after {1} s: no SSM Agent online (it needs an instance profile that allows "
            "SSM, and a route to the SSM endpoints)".format(instance_id, timeout)
        )
        for check in checks:
            failed(check, instance_id, reason, "NotManaged")
    for check in checks:
        for batch in batches([instance_id for instance_id in instance_ids if instance_id in online]):
            try:
                command_id = client.send_command(**send_request(check, batch, timeout))["Command"]["CommandId"]
            except (BotoCoreError, ClientError) as exc:
                for instance_id in batch:
                    failed(check, instance_id, "SendCommand failed: {0}".format(error_message(exc)), error_code(exc))
                continue
            pending.extend((check, command_id, instance_id) for instance_id in batch)

    def finished(work):
        check, command_id, instance_id = work
        return judge(check, instance_id, wait_invocation(client, command_id, instance_id, timeout))

    for (check, command_id, instance_id), result, exc in run_concurrently(finished, pending, max_workers):
        if exc:
            reason = "no result of command {0} in {1} s: {2}".format(command_id, timeout, error_message(exc))
            failed(check, instance_id, reason, error_code(exc))
            continue
        results[(check["name"], instance_id)] = result
        if result["state"] == FAILED:
            errors.append(error_of(result, region))
    return [results[(check["name"], instance_id)] for check in checks for instance_id in instance_ids], errors
