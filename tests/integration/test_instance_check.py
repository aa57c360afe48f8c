"""instance_check through real ansible-playbook runs against moto, whose SSM answers as a simulated SSM Agent
(tests/harness/moto_ssm_agent.py): a command reaches only a managed instance and returns that instance's output."""

from tests.harness import fleet
from tests.harness import moto_ssm_agent
from tests.harness.ansible_run import task

NGINX = {"name": "nginx", "command": "systemctl is-active nginx", "expect": "^active$"}
CONFIG = {"name": "config", "command": "sha256sum /etc/app.conf", "expect": "^5e1d"}


def instance_from_image(ec2, agent_outputs=None):
    """A running instance launched from an AMI of its own, with a simulated SSM Agent when outputs are given."""
    [builder] = fleet.launch(ec2)
    image_id = ec2.create_image(InstanceId=builder, Name="image-of-" + builder)["ImageId"]
    if agent_outputs is not None:
        moto_ssm_agent.install_agent(image_id, agent_outputs)
    reservation = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    return reservation["Instances"][0]["InstanceId"]


def test_a_check_passes_only_when_the_command_succeeds_and_its_output_matches(aws, play):
    ec2 = aws.ec2()
    healthy = instance_from_image(
        ec2, {NGINX["command"]: (0, "active\n"), CONFIG["command"]: (0, "5e1d0c  /etc/app.conf\n")}
    )
    stopped_nginx = instance_from_image(
        ec2, {NGINX["command"]: (3, "inactive\n"), CONFIG["command"]: (0, "99aa00  /etc/app.conf\n")}
    )
    unmanaged = instance_from_image(ec2)

    run = play(
        [
            task(
                "instance_check",
                name="check",
                ignore_errors=True,
                instance_ids=[healthy, stopped_nginx, unmanaged],
                commands=[NGINX, CONFIG],
                wait_timeout=4,
            )
        ]
    )

    result = run.result("check")
    assert result["failed"] is True and result["changed"] is False
    outcome = {(item["name"], item["instance_id"]): item for item in result["checks"]}
    assert {key: item["passed"] for key, item in outcome.items()} == {
        ("nginx", healthy): True,
        ("config", healthy): True,
        ("nginx", stopped_nginx): False,
        ("config", stopped_nginx): False,
        ("nginx", unmanaged): False,
        ("config", unmanaged): False,
    }
    assert outcome[("nginx", healthy)]["output"] == "active\n"
    assert outcome[("nginx", stopped_nginx)]["status"] == "Failed"
    assert outcome[("nginx", stopped_nginx)]["response_code"] == 3
    assert "does not match '^5e1d'" in outcome[("config", stopped_nginx)]["reason"]
    assert outcome[("nginx", unmanaged)]["command_id"] is None
    assert "not a managed node" in outcome[("nginx", unmanaged)]["reason"]
    codes = {(error["resource"], error["code"]) for error in result["errors"]}
    assert codes == {
        (stopped_nginx, "CommandFailed"),
        (stopped_nginx, "UnexpectedOutput"),
        (unmanaged, "NotManaged"),
    }
    assert len(result["errors"]) == 4


def test_an_unknown_command_fails_as_a_shell_does_and_check_mode_runs_nothing(aws, play):
    ec2 = aws.ec2()
    instance = instance_from_image(ec2, {})
    checks = [{"name": "service", "command": "systemctl is-active app"}]

    planned = play(
        [task("instance_check", name="plan", instance_ids=[instance], commands=checks)],
        check=True,
    ).result("plan")
    ran = play(
        [
            task(
                "instance_check",
                name="run",
                ignore_errors=True,
                instance_ids=[instance],
                commands=checks,
            )
        ]
    ).result("run")

    assert [item["state"] for item in planned["checks"]] == ["planned"] and planned["errors"] == []
    [failed] = ran["checks"]
    assert (failed["status"], failed["response_code"]) == ("Failed", 127)
    assert "command not found" in failed["error_output"] and "command not found" in failed["reason"]


def test_bad_input_names_the_check_and_the_value(aws, play):
    run = play(
        [
            task(
                "instance_check",
                name="bad",
                ignore_errors=True,
                instance_ids=["i-0123456789abcdef0"],
                commands=[{"name": "web", "command": "curl -s localhost", "expect": "(unclosed"}],
            )
        ]
    )

    result = run.result("bad")
    assert result["failed"] is True
    assert "commands[0] (web): expect '(unclosed' is not a regular expression" in result["msg"]
