import datetime
import threading
import time

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from ansible_collections.opsvault.aws_backup.plugins.module_utils import fanout
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import client_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import clients_for
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import paginate
from ansible_collections.opsvault.aws_backup.plugins.module_utils.clients import shared_session
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import by_region
from ansible_collections.opsvault.aws_backup.plugins.module_utils.fanout import run_concurrently
from ansible_collections.opsvault.aws_backup.plugins.module_utils.regions import resolve_regions
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import error_entry

REGIONS = {
    "Regions": [
        {"RegionName": "eu-west-1", "OptInStatus": "opt-in-not-required"},
        {"RegionName": "us-east-1", "OptInStatus": "opt-in-not-required"},
        {"RegionName": "af-south-1", "OptInStatus": "opted-in"},
        {"RegionName": "me-south-1", "OptInStatus": "not-opted-in"},
    ]
}


def describe_regions(**params):
    assert params == {"AllRegions": True}
    return REGIONS


def test_default_is_the_task_region():
    assert resolve_regions(None, describe_regions, "eu-west-1") == ["eu-west-1"]


@pytest.mark.parametrize("requested", [[], [""], [" ", ""], ","])
def test_a_list_naming_no_region_is_refused_not_read_as_the_task_region(requested):
    with pytest.raises(ValueError, match="regions .* names no region"):
        resolve_regions(requested, describe_regions, "eu-west-1")


@pytest.mark.parametrize(
    "requested", ["eu-west-1,us-east-1", "eu-west-1, us-east-1", ["eu-west-1,us-east-1"], ["eu-west-1", " us-east-1"]]
)
def test_comma_separated_text_names_several_regions(requested):
    assert resolve_regions(requested, describe_regions, None) == ["eu-west-1", "us-east-1"]


def test_no_region_at_all_names_the_module_defaults_group():
    with pytest.raises(ValueError, match="no region given.*group/opsvault.aws_backup.aws"):
        resolve_regions(None, describe_regions, None)


def test_all_means_every_enabled_region():
    assert resolve_regions("all", describe_regions, None) == ["af-south-1", "eu-west-1", "us-east-1"]
    assert resolve_regions(["all"], describe_regions, None) == ["af-south-1", "eu-west-1", "us-east-1"]


def test_explicit_regions_are_validated_and_deduplicated():
    assert resolve_regions(["us-east-1", "eu-west-1", "us-east-1"], describe_regions, None) == [
        "us-east-1",
        "eu-west-1",
    ]
    with pytest.raises(ValueError, match="regions: 'eu-west-9' is not an AWS region"):
        resolve_regions(["eu-west-1", "eu-west-9"], describe_regions, None)
    with pytest.raises(ValueError, match="regions: 'me-south-1' is not enabled for this account"):
        resolve_regions(["me-south-1"], describe_regions, None)
    with pytest.raises(ValueError, match="cannot be combined"):
        resolve_regions(["all", "eu-west-1"], describe_regions, None)
    with pytest.raises(ValueError, match="no region given"):
        resolve_regions(None, describe_regions, None)


def test_a_failing_region_is_reported_while_the_others_finish():
    finished = []

    def work(region):
        if region == "eu-west-1":
            raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}}, "DescribeInstances")
        time.sleep(0.05)
        finished.append(region)
        return region.upper()

    outcomes = run_concurrently(work, ["us-east-1", "eu-west-1", "ap-south-1"], max_workers=3)
    assert [(item, value) for item, value, error in outcomes] == [
        ("us-east-1", "US-EAST-1"),
        ("eu-west-1", None),
        ("ap-south-1", "AP-SOUTH-1"),
    ]
    assert sorted(finished) == ["ap-south-1", "us-east-1"]
    error = outcomes[1][2]
    assert error_entry("eu-west-1", "eu-west-1", "describe", error) == {
        "resource": "eu-west-1",
        "region": "eu-west-1",
        "code": "RequestLimitExceeded",
        "message": "slow down",
        "action": "describe",
    }


def test_concurrency_is_bounded():
    lock, running, peak = threading.Lock(), [0], [0]

    def work(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return item

    assert [value for _item, value, _error in run_concurrently(work, range(20), max_workers=4)] == list(range(20))
    assert 1 < peak[0] <= 4


def test_paginate_follows_next_token():
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    filters = [{"Name": "tag-key", "Values": ["Backup"]}]
    stubber.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": [{"InstanceId": "i-1"}]}], "NextToken": "page2"},
        {"Filters": filters},
    )
    stubber.add_response(
        "describe_instances",
        {"Reservations": [{"Instances": [{"InstanceId": "i-2"}]}]},
        {"Filters": filters, "NextToken": "page2"},
    )
    with stubber:
        reservations = paginate(client, "describe_instances", "Reservations", Filters=filters)
    stubber.assert_no_pending_responses()
    assert [r["Instances"][0]["InstanceId"] for r in reservations] == ["i-1", "i-2"]


def test_work_spread_by_region_is_taken_round_robin():
    items = [{"region": region, "n": n} for region in ("a", "b", "c") for n in range(3)][:-1]
    seen = []
    outcomes = run_concurrently(lambda item: seen.append((item["region"], item["n"])), items, 1, spread_by=by_region)
    assert seen == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2)]
    assert sorted((item["region"], item["n"]) for item, value, error in outcomes) == sorted(
        (item["region"], item["n"]) for item in items
    )


class ConnectionOptions:
    """The connection options an AnsibleAWSModule carries, for clients_for."""

    def __init__(self, **params):
        self.params = dict(access_key="testing", secret_key="testing", region="eu-west-1", validate_certs=True)
        self.params.update(params)

    def fail_json_aws(self, exc, msg):
        raise AssertionError(msg)


def test_clients_share_one_session_and_text_timestamps_come_back_as_sent():
    with mock_aws():
        listed = {}
        for text_timestamps in (False, True):
            clients = clients_for(
                ConnectionOptions(), "s3", botocore.config.Config(), ["eu-west-1", "us-east-1"], text_timestamps
            )
            assert clients["eu-west-1"].meta.region_name == "eu-west-1"
            assert clients["us-east-1"].meta.region_name == "us-east-1"
            s3 = clients["us-east-1"]
            if not text_timestamps:
                s3.create_bucket(Bucket="listing-bucket")
                s3.put_object(Bucket="listing-bucket", Key="a", Body=b"x")
            listed[text_timestamps] = s3.list_objects_v2(Bucket="listing-bucket")["Contents"][0]["LastModified"]
    parsed, text = listed[False], listed[True]
    assert isinstance(parsed, datetime.datetime)
    assert isinstance(text, str) and text.endswith("Z")
    assert datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) == parsed


def test_clients_default_to_the_module_region():
    [(region, client)] = clients_for(
        ConnectionOptions(region="ap-southeast-2"), "ec2", botocore.config.Config()
    ).items()
    assert region == client.meta.region_name == "ap-southeast-2"


def test_every_client_of_a_module_comes_from_its_one_session():
    module, other = ConnectionOptions(), ConnectionOptions()
    ec2 = clients_for(module, "ec2", botocore.config.Config(), ["eu-west-1", "us-east-1"])
    sts = client_for(module, "sts", "eu-west-1")
    session = shared_session(module)[0]
    assert session is shared_session(module)[0]
    assert all(client._loader is session._loader for client in [*ec2.values(), sts])
    assert shared_session(other)[0] is not session
    assert shared_session(module, text_timestamps=True)[0] is not session


def test_a_large_fan_out_queues_a_few_calls_per_worker_not_one_future_per_item(monkeypatch):
    submitted, release = [], threading.Event()
    real_submit = fanout.ThreadPoolExecutor.submit

    def counting_submit(pool, *args):
        submitted.append(args[1])
        return real_submit(pool, *args)

    monkeypatch.setattr(fanout.ThreadPoolExecutor, "submit", counting_submit)
    finished = []
    runner = threading.Thread(
        target=lambda: finished.append(run_concurrently(lambda item: release.wait(5) and item, range(1000), 2))
    )
    runner.start()
    time.sleep(0.3)
    assert len(submitted) == 2 * fanout.QUEUED_PER_WORKER  # the first call has not returned yet
    release.set()
    runner.join(10)
    [outcomes] = finished
    assert [value for _item, value, _error in outcomes] == list(range(1000)) and len(submitted) == 1000


def test_run_as_produced_starts_the_work_before_the_producers_finish_and_keeps_the_order():
    first_call, calls = threading.Event(), []

    def produce(region):
        yield ["{0}-0".format(region), "{0}-1".format(region)]
        # The next part is produced only once a call of the first part has been made.
        assert first_call.wait(5)
        yield ["{0}-2".format(region)]

    def work(item):
        calls.append(item)
        first_call.set()
        return item.upper()

    outcomes, failed = fanout.run_as_produced(produce, ["us-east-1", "eu-west-1"], work, max_workers=2)
    assert failed == []
    assert list(outcomes) == [
        (item, item.upper(), None)
        for item in ["us-east-1-0", "us-east-1-1", "us-east-1-2", "eu-west-1-0"] + ["eu-west-1-1", "eu-west-1-2"]
    ]
    assert sorted(calls) == sorted(item for item, _value, _error in outcomes)


def test_run_as_produced_takes_the_items_round_robin_over_the_groups():
    produced = {"a": threading.Event(), "b": threading.Event()}
    seen = []

    def produce(group):
        yield ["{0}{1}".format(group, n) for n in range(3)]
        produced[group].set()  # reached once the part is queued: the next part is asked for

    def work(item):
        if not seen:
            assert all(event.wait(5) for event in produced.values())
        seen.append(item)

    outcomes, _failed = fanout.run_as_produced(produce, ["a", "b"], work, max_workers=1)
    assert sorted(seen) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert all(this[0] != following[0] for this, following in zip(seen, seen[1:])), seen
    assert [item for item, _value, _error in outcomes] == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_run_as_produced_a_failing_producer_keeps_what_it_yielded_and_fails_only_its_group():
    def produce(region):
        yield [region + "-0"]
        if region == "eu-west-1":
            raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "slow"}}, "DescribeInstances")
        yield [region + "-1"]

    def work(item):
        if item == "us-east-1-1":
            raise ValueError("no")
        return item

    outcomes, failed = fanout.run_as_produced(produce, ["us-east-1", "eu-west-1", "ap-south-1"], work, max_workers=3)
    assert [(item, value, type(error).__name__) for item, value, error in outcomes] == [
        ("us-east-1-0", "us-east-1-0", "NoneType"),
        ("us-east-1-1", None, "ValueError"),
        ("eu-west-1-0", "eu-west-1-0", "NoneType"),
        ("ap-south-1-0", "ap-south-1-0", "NoneType"),
        ("ap-south-1-1", "ap-south-1-1", "NoneType"),
    ]
    assert [(group, error.response["Error"]["Code"]) for group, error in failed] == [
        ("eu-west-1", "RequestLimitExceeded")
    ]
