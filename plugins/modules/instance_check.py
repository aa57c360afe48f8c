#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: instance_check
short_description: Run check commands on EC2 instances through SSM Run Command and compare their output
version_added: 0.3.0
description:
  - Runs each of O(commands) on each of O(instance_ids) with SSM Run Command (the C(AWS-RunShellScript)
    document), waits for each command invocation to end, and compares its output with what is expected.
  - A check passes on an instance when the command ends with exit code 0 and, with O(commands[].expect), when
    that regular expression is found in the command's standard output.
  - A command reaches only a managed node, an instance whose SSM Agent is online. The module waits up to
    O(wait_timeout) seconds for the agents (a new instance registers within minutes); an instance that is not
    a managed node by then fails each of its checks, saying so.
  - The task fails when a check failed, after every check was run, listing each failure in RV(errors); the
    results are in RV(checks) either way, for the next task (the restore drill's report reads them).
author:
  - opsvault.aws_backup contributors (@opsvault)
options:
  instance_ids:
    description: The instances to check, in the region of the task.
    type: list
    elements: str
    required: true
  commands:
    description: The checks, each run on every instance.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The check's name in the results and the report; unique.
        type: str
        required: true
      command:
        description: A shell command line, run by C(AWS-RunShellScript) as root.
        type: str
        required: true
      expect:
        description:
          - A regular expression (Python syntax, C(^) and C($) match at each line) that must be found in the
            command's standard output. Omitted, exit code 0 is enough.
        type: str
  wait_timeout:
    description: Seconds for the SSM Agents to come online, and then for each command to end.
    type: int
    default: 600
notes:
  - Requires C(ssm:DescribeInstanceInformation), C(ssm:SendCommand) (on the instances and the document
    C(AWS-RunShellScript)) and C(ssm:GetCommandInvocation).
  - The instances need an instance profile that allows SSM (for example the AWS managed policy
    C(AmazonSSMManagedInstanceCore)) and a route to the SSM endpoints; in a VPC without internet access, VPC
    endpoints for C(ssm), C(ssmmessages) and C(ec2messages) (the restore drill creates them in its network).
  - Supports check mode, which returns each check as V(planned) and runs nothing.
extends_documentation_fragment:
  - opsvault.aws_backup.assume_role
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Check that the restored web server is up and its configuration intact
  opsvault.aws_backup.instance_check:
    instance_ids: "{{ restored.instances | map(attribute='instance_id') }}"
    commands:
      - name: nginx
        command: systemctl is-active nginx
        expect: "^active$"
      - name: config
        command: sha256sum /etc/nginx/nginx.conf
        expect: "^0f343b0931126a20f133d67c2b018a3b[0-9a-f]{32} "
  register: checked
  ignore_errors: true

- name: Show each check
  ansible.builtin.debug:
    msg: "{{ checked.checks | map(attribute='reason') }}"
"""

RETURN = r"""
checks:
  description: One item per check and instance, in the order of O(commands), then O(instance_ids).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id: {description: "The instance", type: str, sample: i-0123456789abcdef0}
    name: {description: "The check's name", type: str, sample: nginx}
    command: {description: "The command line", type: str, sample: systemctl is-active nginx}
    expect: {description: "The regular expression expected in the output, or null", type: str}
    state: {description: "V(passed), V(failed), or V(planned) in check mode", type: str, sample: passed}
    passed: {description: "Whether the check passed", type: bool}
    reason: {description: "Why it passed or failed, to read in a report", type: str}
    command_id: {description: "The SSM command id (null when the command was not sent)", type: str}
    status: {description: "The invocation's final status (V(Success), V(Failed), V(TimedOut)...)", type: str}
    response_code: {description: "The command's exit code", type: int}
    output: {description: "Its standard output (the first 24,000 characters)", type: str}
    error_output: {description: "Its standard error (the first 24,000 characters)", type: str}
skipped_resources:
  description: Always empty; every check is run or fails.
  returned: always
  type: list
  elements: dict
errors:
  description: Each failed check, with the instance, the code (V(UnexpectedOutput), V(CommandFailed), V(NotManaged), or the AWS error code) and the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"resource": "i-0123456789abcdef0", "region": "eu-west-1", "action": "check", "code": "UnexpectedOutput", "message": "..."}]
msg:
  description: A summary to read in a job log.
  returned: always
  type: str
regions:
  description: The region the checks ran in.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.opsvault.aws_backup.plugins.module_utils import instance_check
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_config
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import aws_module
from ansible_collections.opsvault.aws_backup.plugins.module_utils.options import at_least
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import Summary
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import finish

ARGUMENT_SPEC = dict(
    instance_ids=dict(type="list", elements="str", required=True),
    commands=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            name=dict(type="str", required=True),
            command=dict(type="str", required=True),
            expect=dict(type="str"),
        ),
    ),
    wait_timeout=dict(type="int", default=600),
)
MAX_CONCURRENCY = 16


def parse_options(params, check_mode):
    if not params["instance_ids"]:
        raise ValueError("instance_ids must name at least one instance, got []")
    return {
        "instance_ids": list(dict.fromkeys(params["instance_ids"])),
        "checks": instance_check.parse_checks(params["commands"]),
        "wait_timeout": at_least("wait_timeout", params["wait_timeout"], 1),
    }


def main():
    module, options = aws_module(ARGUMENT_SPEC, parse_options)
    [(region, client)] = clients_for(module, "ssm", client_config(MAX_CONCURRENCY)).items()
    checks, instance_ids = options["checks"], options["instance_ids"]
    if module.check_mode:
        results = [instance_check.planned(check, instance_id) for check in checks for instance_id in instance_ids]
        errors = []
    else:
        results, errors = instance_check.run_checks(
            client, region, checks, instance_ids, options["wait_timeout"], MAX_CONCURRENCY
        )
    passed = [result for result in results if result["passed"]]
    summary = Summary(module.check_mode)
    describe = "{0[name]} on {0[instance_id]}".format
    summary.done("passed", "run", "check(s)", passed if not module.check_mode else results, describe)
    summary.errors(errors)
    result = dict(changed=False, checks=results, skipped_resources=[], errors=errors, regions=[region])
    result["msg"] = "{0}: {1}".format(region, summary.text())
    finish(module, result)


if __name__ == "__main__":
    main()
