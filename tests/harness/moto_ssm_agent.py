"""SSM Run Command as AWS runs it: only on managed instances, with each instance's own output.

moto 5.2.5 answers SendCommand for any instance id, even one that does not exist, adds every
instance of the region to a command without ``Targets``, and every invocation is ``Success`` at
once with an empty output; it has no DescribeInstanceInformation.
On AWS a command reaches an instance only through the SSM Agent running on it:

* SendCommand fails with ``InvalidInstanceId`` when an instance is not running, not in the
  region, or has no agent registered with Systems Manager (not a managed node).
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html ("Errors")
* DescribeInstanceInformation lists the managed nodes, with ``PingStatus`` ``Online`` while the
  agent reports in; the ``InstanceIds`` filter narrows it.
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DescribeInstanceInformation.html
* An invocation is ``Pending``/``InProgress`` after SendCommand, then ``Success`` (exit code 0) or
  ``Failed`` (any other exit code), with the script's standard output and error (the first
  24,000 characters) and the exit code in ``ResponseCode``. AWS-RunShellScript runs the
  ``commands`` lines as one shell script: the exit code is the last line's.
  https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html
  https://docs.aws.amazon.com/systems-manager/latest/userguide/monitor-commands.html

moto has no agent, so this module stands in for one, and says what it is: a test registers an
agent for the instances launched from an AMI (``install_agent(image_id, outputs)``), with the
output of each command line it knows (``{line: (exit_code, stdout)}``). A line the agent does not
know fails as a shell does, with exit code 127 and ``command not found``. Instances launched from
an AMI without an agent are not managed nodes. Nothing runs: the outputs are the test's.
A test can also make a line take as long as it needs (``hold(line)``): the invocations of a script
with that line stay ``InProgress`` until ``release(line)``.
"""

import datetime

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import SSMException
from moto.ssm.responses import SimpleSystemManagerResponse

# {image id: {command line: (exit code, stdout)}}: the simulated agents, emptied by ``reset``.
AGENTS = {}
# Command lines whose invocations stay InProgress until released.
HELD = set()
OUTPUT_LIMIT = 24000
_PATCHED = False


def install_agent(image_id, outputs):
    """Instances launched from ``image_id`` run an SSM Agent answering each known line with ``(exit code, stdout)``."""
    AGENTS[image_id] = dict(outputs)


def hold(line):
    """The invocations of a script with ``line`` stay ``InProgress`` until ``release(line)``."""
    HELD.add(line)


def release(line):
    HELD.discard(line)


def reset():
    AGENTS.clear()
    HELD.clear()


class InvalidInstanceId(SSMException):
    def __init__(self):
        super().__init__(
            "InvalidInstanceId",
            "Instances not in a valid state for account. The instance is not running, not in this region, or "
            "its SSM Agent is not registered with Systems Manager.",
        )


def _instance(account_id, region, instance_id):
    for reservation in ec2_backends[account_id][region].reservations.values():
        for instance in reservation.instances:
            if instance.id == instance_id:
                return instance
    return None


def _managed(account_id, region, instance_id):
    instance = _instance(account_id, region, instance_id)
    return instance is not None and instance.state == "running" and instance.image_id in AGENTS


def _run(script_lines, outputs):
    """``(exit code, stdout, stderr)`` of AWS-RunShellScript's lines, as the simulated agent answers them."""
    code, stdout, stderr = 0, [], []
    for number, line in enumerate(script_lines, start=1):
        if line in outputs:
            code, text = outputs[line]
            stdout.append(text)
        else:
            code = 127
            stderr.append("/var/lib/amazon/ssm/_script.sh: line {0}: {1}: command not found\n".format(number, line))
    return code, "".join(stdout)[:OUTPUT_LIMIT], "".join(stderr)[:OUTPUT_LIMIT]


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original_send_command = SimpleSystemManagerResponse.send_command
    original_get_command_invocation = SimpleSystemManagerResponse.get_command_invocation

    def send_command(self):
        instance_ids = self._get_param("InstanceIds", [])
        if not all(_managed(self.current_account, self.region, instance_id) for instance_id in instance_ids):
            raise InvalidInstanceId()
        answer = original_send_command(self)
        command = self.ssm_backend.get_command_by_id(answer.result["Command"]["CommandId"])
        if not self._get_param("Targets"):
            # moto also adds every instance of the region when no Targets are given; AWS runs on InstanceIds only.
            command.instance_ids = list(instance_ids)
            command.invocations = [item for item in command.invocations if item["InstanceId"] in instance_ids]
            command.completed_count = command.target_count = len(instance_ids)
        lines = (self._get_param("Parameters", {}) or {}).get("commands", [])
        for invocation in command.invocations:
            image_id = _instance(self.current_account, self.region, invocation["InstanceId"]).image_id
            code, stdout, stderr = _run(lines, AGENTS[image_id])
            final = "Success" if code == 0 else "Failed"
            invocation.update(
                Status="Pending",
                StatusDetails="Pending",
                ResponseCode=-1,
                StandardOutputContent="",
                StandardErrorContent="",
                final=(final, code, stdout, stderr, tuple(lines)),
            )
        return ActionResult({"Command": command.response_object()})

    def get_command_invocation(self):
        answer = original_get_command_invocation(self)
        invocation = answer.result
        if "final" in invocation:
            # The first look finds the command still running on the instance; the next, its result (unless held).
            final, code, stdout, stderr, lines = invocation["final"]
            if invocation["Status"] == "Pending" or HELD.intersection(lines):
                invocation.update(Status="InProgress", StatusDetails="InProgress")
            else:
                invocation.update(
                    Status=final,
                    StatusDetails=final,
                    ResponseCode=code,
                    StandardOutputContent=stdout,
                    StandardErrorContent=stderr,
                )
        return ActionResult({key: value for key, value in invocation.items() if key != "final"})

    def describe_instance_information(self):
        filters = {item["Key"]: item["Values"] for item in self._get_param("Filters", []) or []}
        backend = ec2_backends[self.current_account][self.region]
        nodes = []
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if "InstanceIds" in filters and instance.id not in filters["InstanceIds"]:
                    continue
                if _managed(self.current_account, self.region, instance.id):
                    nodes.append(
                        {
                            "InstanceId": instance.id,
                            "PingStatus": "Online",
                            "LastPingDateTime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                            "PlatformType": "Linux",
                            "ResourceType": "EC2Instance",
                            "AgentVersion": "3.3.0.0",
                        }
                    )
        return ActionResult({"InstanceInformationList": nodes})

    SimpleSystemManagerResponse.send_command = send_command
    SimpleSystemManagerResponse.get_command_invocation = get_command_invocation
    SimpleSystemManagerResponse.describe_instance_information = describe_instance_information
    _PATCHED = True
