"""The regional engine with a small job of its own: fan-out, check mode, errors, the summary."""

import pytest
from botocore.exceptions import ClientError

from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import RegionalJob
from ansible_collections.opsvault.aws_backup.plugins.module_utils.engine import plan
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import MSG_ITEMS
from tests.harness.module_options import ModuleExit
from tests.harness.module_options import StandInModule

REGIONS = ["eu-west-1", "us-east-1", "ap-south-1"]


def denied(operation):
    return ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}, operation)


class CountingJob(RegionalJob):
    action = "touch"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.applied = []

    def describe(self, region):
        if region == "ap-south-1":
            raise denied("DescribeThings")
        return ["{0}-{1}".format(region, number) for number in range(self.options["per_region"])]

    def plan_region(self, region, described):
        todo = [{"resource": thing, "region": region} for thing in described if not thing.endswith("-0")]
        skipped = [{"resource": thing, "region": region, "reason": "the first one"} for thing in described[:1]]
        return plan(todo=todo, skipped=skipped, warnings=["{0}: a warning".format(region)])

    def apply(self, item):
        if item["resource"] == "us-east-1-2":
            raise denied("Touch")
        self.applied.append(item["resource"])
        return dict(item, state="touched")

    def result_keys(self, done):
        return dict(changed=bool(done), touched=done)

    def summarise(self, summary, result):
        summary.done("touched", "touch", "thing(s)", result["touched"], lambda item: item["resource"])


def run(check_mode=False, per_region=4):
    module = StandInModule(check_mode=check_mode)
    job = CountingJob(module, {"per_region": per_region}, REGIONS, clients={})
    with pytest.raises(ModuleExit) as exit_:
        job.run()
    return job, module, exit_.value


def test_a_failing_region_is_reported_the_others_are_done_round_robin_and_the_task_fails():
    job, module, exit_ = run()
    assert exit_.failed is True
    assert job.applied == ["eu-west-1-1", "us-east-1-1", "eu-west-1-2", "eu-west-1-3", "us-east-1-3"]
    result = exit_.result
    assert [(e["resource"], e["region"], e["action"], e["code"]) for e in result["errors"]] == [
        ("ap-south-1", "ap-south-1", "describe", "UnauthorizedOperation"),
        ("us-east-1-2", "us-east-1", "touch", "UnauthorizedOperation"),
    ]
    assert [item["resource"] for item in result["skipped_resources"]] == ["eu-west-1-0", "us-east-1-0"]
    assert result["regions"] == REGIONS and result["changed"] is True
    assert module.warnings == ["eu-west-1: a warning", "us-east-1: a warning"]
    assert "Touched 5 thing(s)" in result["msg"] and "2 error(s)" in result["msg"]


def test_check_mode_applies_nothing_marks_items_planned_and_says_would():
    job, _module, exit_ = run(check_mode=True)
    assert job.applied == []
    assert {item["state"] for item in exit_.result["touched"]} == {"planned"}
    assert "check mode, nothing changed. Would touch 6 thing(s)" in exit_.result["msg"]


def test_the_summary_stays_short_for_a_large_run():
    _job, _module, exit_ = run(check_mode=True, per_region=10000)
    msg = exit_.result["msg"]
    assert len(msg) < 2000, len(msg)
    assert "Would touch 19998 thing(s)" in msg and "(and {0} more)".format(19998 - MSG_ITEMS) in msg
