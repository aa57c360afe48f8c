"""The AWS-like proxy: request identification, EC2 throttling, faults, counts and its control endpoints."""

import json
import random
import time
import urllib.error
import urllib.request

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from botocore.exceptions import ConnectionClosedError

from tests.harness import aws_proxy
from tests.harness import fleet


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def proxy(moto_endpoint):
    running = aws_proxy.start(moto_endpoint)
    yield running
    running.stop()


@pytest.fixture
def via_proxy(aws, proxy):
    """Clients that reach moto through a freshly reset proxy, with retries off so each call is one request."""
    proxy.reset(config=True)
    slept = []
    proxy.sleep = slept.append
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 1})

    def client(service, region="us-east-1"):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=proxy.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=config,
        )

    client.proxy = proxy
    client.slept = slept
    yield client
    proxy.sleep = time.sleep


# ---------------------------------------------------------------- pure parts


def test_token_bucket_spends_its_burst_then_refills_at_its_rate():
    clock = FakeClock()
    bucket = aws_proxy.TokenBucket(50, 5, clock=clock)
    assert sum(bucket.take() for _request in range(60)) == 50
    clock.now += 1.0
    assert sum(bucket.take() for _request in range(10)) == 5
    clock.now += 1000
    assert sum(bucket.take() for _request in range(80)) == 50


@pytest.mark.parametrize(
    "action, params, family",
    [
        ("CreateImage", {}, aws_proxy.MUTATING),
        ("CreateTags", {}, aws_proxy.MUTATING),
        ("CopyImage", {}, aws_proxy.MUTATING),
        ("CreateSnapshot", {}, aws_proxy.SNAPSHOT_AND_IMAGE),
        ("DeleteSnapshot", {}, aws_proxy.SNAPSHOT_AND_IMAGE),
        ("DeregisterImage", {}, aws_proxy.SNAPSHOT_AND_IMAGE),
        ("DescribeImages", {"Owner.1": ["self"], "Filter.1.Name": ["tag:CreatedBy"]}, aws_proxy.NON_MUTATING),
        ("DescribeInstances", {"MaxResults": ["1000"]}, aws_proxy.NON_MUTATING),
        ("DescribeInstances", {}, aws_proxy.UNFILTERED_NON_MUTATING),
        ("DescribeRegions", {"AllRegions": ["true"]}, aws_proxy.UNFILTERED_NON_MUTATING),
    ],
)
def test_ec2_families_follow_the_published_limits(action, params, family):
    assert aws_proxy.ec2_family(action, params) == family


def test_family_sizes_are_the_published_ones():
    assert (aws_proxy.MUTATING.burst, aws_proxy.MUTATING.refill_per_second) == (50, 5)
    assert (aws_proxy.NON_MUTATING.burst, aws_proxy.NON_MUTATING.refill_per_second) == (100, 20)
    assert (aws_proxy.UNFILTERED_NON_MUTATING.burst, aws_proxy.UNFILTERED_NON_MUTATING.refill_per_second) == (50, 10)
    assert (aws_proxy.SNAPSHOT_AND_IMAGE.burst, aws_proxy.SNAPSHOT_AND_IMAGE.refill_per_second) == (100, 5)


def test_throttle_floor_is_the_slowest_bucket():
    calls = {("eu-west-1", "CreateImage"): 250, ("us-east-1", "CreateImage"): 150, ("eu-west-1", "DescribeImages"): 1}
    seconds, per_bucket = aws_proxy.throttle_floor(calls)
    assert seconds == pytest.approx(40.0)
    assert per_bucket["us-east-1/CreateImage"] == pytest.approx(20.0)
    assert per_bucket["eu-west-1/DescribeImages"] == 0.0


def test_throttle_floor_by_family_shares_the_mutating_bucket():
    calls = {("eu-west-1", "CreateImage"): 100, ("eu-west-1", "CreateTags"): 100}
    assert aws_proxy.throttle_floor(calls)[0] == pytest.approx(10.0)
    assert aws_proxy.throttle_floor(calls, bucket_scope="family")[0] == pytest.approx(30.0)


@pytest.mark.parametrize(
    "method, path, query, headers, operation",
    [
        ("GET", "/", {}, {}, "ListBuckets"),
        ("PUT", "/bucket", {}, {}, "CreateBucket"),
        ("HEAD", "/bucket", {}, {}, "HeadBucket"),
        ("GET", "/bucket", {"list-type": ["2"], "prefix": ["a/"]}, {}, "ListObjectsV2"),
        ("GET", "/bucket", {}, {}, "ListObjects"),
        ("GET", "/bucket", {"versioning": [""]}, {}, "GetBucketVersioning"),
        ("GET", "/bucket", {"location": [""]}, {}, "GetBucketLocation"),
        ("GET", "/bucket/a/b.txt", {}, {}, "GetObject"),
        ("HEAD", "/bucket/a/b.txt", {}, {}, "HeadObject"),
        ("PUT", "/bucket/a/b.txt", {}, {}, "PutObject"),
        ("PUT", "/bucket/a/b.txt", {}, {"x-amz-copy-source": "other/key"}, "CopyObject"),
        ("PUT", "/bucket/key", {"tagging": [""]}, {}, "PutObjectTagging"),
        ("DELETE", "/bucket/a/b.txt", {}, {}, "DeleteObject"),
        ("POST", "/bucket", {"delete": [""]}, {}, "DeleteObjects"),
        ("POST", "/bucket/big", {"uploads": [""]}, {}, "CreateMultipartUpload"),
        ("PUT", "/bucket/big", {"partNumber": ["1"], "uploadId": ["x"]}, {}, "UploadPart"),
        ("POST", "/bucket/big", {"uploadId": ["x"]}, {}, "CompleteMultipartUpload"),
    ],
)
def test_s3_operations_are_named_from_method_path_and_query(method, path, query, headers, operation):
    assert aws_proxy.s3_operation(method, path, query, headers) == operation


def test_mutating_classification():
    assert aws_proxy.is_mutating("ec2", "CreateImage")
    assert aws_proxy.is_mutating("ec2", "CreateTags")
    assert not aws_proxy.is_mutating("ec2", "DescribeImages")
    assert not aws_proxy.is_mutating("s3", "ListObjectsV2")
    assert not aws_proxy.is_mutating("s3", "HeadObject")
    assert aws_proxy.is_mutating("s3", "PutObject")
    assert aws_proxy.is_mutating("s3", "DeleteObjects")


def test_latency_is_fixed_or_uniform_around_the_mean():
    config = aws_proxy.ProxyConfig(latency_ms=50)
    assert config.latency_seconds(random.Random(1)) == pytest.approx(0.05)
    config.update({"latency_jitter_ms": 20})
    samples = [config.latency_seconds(random.Random(seed)) for seed in range(200)]
    assert all(0.03 <= sample <= 0.07 for sample in samples)
    assert len({round(sample, 4) for sample in samples}) > 50


def test_seeded_faults_of_an_action_do_not_depend_on_how_other_actions_interleave():
    def faults_of_create_snapshot(other_calls_between):
        proxy = aws_proxy.AwsProxy("http://127.0.0.1:1", {"error_rate": 0.2, "error_after_rate": 0.2, "seed": 7})
        outcomes = []
        for other_calls in other_calls_between:
            for _call in range(other_calls):
                proxy.decide("ec2", "us-east-1", "DescribeVolumes", {})
            outcomes.append(proxy.decide("ec2", "us-east-1", "CreateSnapshot", {}))
        return outcomes

    alone = faults_of_create_snapshot([0] * 40)
    assert {"ok", "error", "error_after"} <= set(alone)
    assert faults_of_create_snapshot([3, 0, 1, 5] * 10) == alone
    reseeded = aws_proxy.AwsProxy("http://127.0.0.1:1", {"error_rate": 0.2, "error_after_rate": 0.2, "seed": 8})
    assert [reseeded.decide("ec2", "us-east-1", "CreateSnapshot", {}) for _call in range(40)] != alone


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="unknown proxy setting"):
        aws_proxy.ProxyConfig().update({"latency": 5})
    with pytest.raises(ValueError, match="bucket_scope"):
        aws_proxy.ProxyConfig().update({"bucket_scope": "account"})


def test_timeline_counts_requests_per_second_by_action_and_marks_the_phases():
    clock = FakeClock()
    counters = aws_proxy.Counters(clock=clock)
    for offset, action, outcome in [
        (0.0, "DescribeInstances", "ok"),
        (0.4, "DescribeImages", "ok"),
        (1.2, "CreateImage", "ok"),
        (1.3, "CreateImage", "throttled"),
        (1.9, "CreateImage", "ok"),
        (3.5, "DescribeImages", "ok"),
    ]:
        clock.now = 100.0 + offset
        counters.add("ec2", "us-east-1", action, outcome)

    timeline = counters.snapshot()["timeline"]
    assert timeline["per_second"] == [
        [0, {"ec2:DescribeImages": 1, "ec2:DescribeInstances": 1}],
        [1, {"ec2:CreateImage": 2, "throttled": 1}],
        [3, {"ec2:DescribeImages": 1}],
    ]
    assert timeline["first"]["mutating"] == pytest.approx(1.2)
    assert timeline["last"]["mutating"] == pytest.approx(1.9)
    assert timeline["first"]["ec2:DescribeImages"] == pytest.approx(0.4)
    assert timeline["last"]["any"] == pytest.approx(3.5)
    assert timeline["started"] is not None


# ---------------------------------------------------------------- through the proxy, against moto


def test_counts_ec2_actions_per_region_and_s3_operations(via_proxy):
    via_proxy("ec2", "us-east-1").describe_instances()
    via_proxy("ec2", "eu-west-1").describe_instances()
    via_proxy("ec2", "eu-west-1").describe_images(Owners=["self"])
    s3 = via_proxy("s3")
    s3.create_bucket(Bucket="proxy-counts")
    s3.put_object(Bucket="proxy-counts", Key="dir/file.txt", Body=b"payload")
    assert s3.get_object(Bucket="proxy-counts", Key="dir/file.txt")["Body"].read() == b"payload"
    s3.list_objects_v2(Bucket="proxy-counts")

    stats = via_proxy.proxy.stats()
    assert stats["requests"] == {
        "ec2:DescribeInstances": 2,
        "ec2:DescribeImages": 1,
        "s3:CreateBucket": 1,
        "s3:PutObject": 1,
        "s3:GetObject": 1,
        "s3:ListObjectsV2": 1,
    }
    assert aws_proxy.count(stats, action="DescribeInstances", region="eu-west-1") == 1
    assert stats["mutating"] == 2
    assert stats["outcomes"] == {"ok": 7}


def test_large_bodies_pass_through_both_ways(via_proxy):
    s3 = via_proxy("s3")
    s3.create_bucket(Bucket="proxy-large")
    payload = bytes(range(256)) * 40000
    s3.put_object(Bucket="proxy-large", Key="blob", Body=payload)
    assert s3.get_object(Bucket="proxy-large", Key="blob")["Body"].read() == payload
    assert s3.head_object(Bucket="proxy-large", Key="blob")["ContentLength"] == len(payload)


def test_throttles_per_region_and_per_api_with_request_limit_exceeded(via_proxy):
    via_proxy.proxy.configure(throttle=True, bucket_overrides={"DescribeInstances": [3, 0.001]})
    east = via_proxy("ec2", "us-east-1")
    for _call in range(3):
        east.describe_instances(Filters=[{"Name": "tag-key", "Values": ["Backup"]}])
    with pytest.raises(ClientError) as throttled:
        east.describe_instances(Filters=[{"Name": "tag-key", "Values": ["Backup"]}])
    assert throttled.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    east.describe_images(Owners=["self"])
    via_proxy("ec2", "eu-west-1").describe_instances(Filters=[{"Name": "tag-key", "Values": ["Backup"]}])

    stats = via_proxy.proxy.stats()
    assert aws_proxy.count(stats, action="DescribeInstances", outcome="throttled") == 1
    assert aws_proxy.count(stats, action="DescribeInstances", outcome="ok", region="us-east-1") == 3
    assert aws_proxy.count(stats, action="DescribeInstances", outcome="ok", region="eu-west-1") == 1


def test_throttling_by_family_shares_a_bucket_between_apis(via_proxy):
    via_proxy.proxy.configure(throttle=True, bucket_scope="family", bucket_overrides={"mutating": [2, 0.001]})
    ec2 = via_proxy("ec2")
    (instance_id,) = fleet.launch(ec2)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "a", "Value": "1"}])
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "b", "Value": "2"}])
    assert aws_proxy.count(via_proxy.proxy.stats(), outcome="throttled") == 1


def test_error_before_forwarding_never_reaches_moto(via_proxy, aws):
    via_proxy.proxy.configure(error_rate=1.0)
    with pytest.raises(ClientError) as failed:
        via_proxy("s3").create_bucket(Bucket="never-made")
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
    assert "never-made" not in [bucket["Name"] for bucket in aws.client("s3").list_buckets()["Buckets"]]
    assert aws_proxy.forwarded(via_proxy.proxy.stats()) == 0


def test_error_after_forwarding_is_a_failure_that_happened(via_proxy, aws):
    via_proxy.proxy.configure(error_after_rate=1.0, fault_actions=["CreateBucket"])
    with pytest.raises(ClientError) as failed:
        via_proxy("s3").create_bucket(Bucket="made-anyway")
    assert failed.value.response["Error"]["Code"] == "InternalError"
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "made-anyway" in [bucket["Name"] for bucket in aws.client("s3").list_buckets()["Buckets"]]
    stats = via_proxy.proxy.stats()
    assert aws_proxy.count(stats, outcome="error_after") == 1
    assert aws_proxy.forwarded(stats) == 1


def test_ec2_errors_use_the_ec2_error_document(via_proxy):
    via_proxy.proxy.configure(error_after_rate=1.0)
    with pytest.raises(ClientError) as failed:
        via_proxy("ec2").describe_instances()
    assert failed.value.response["Error"]["Code"] == "InternalError"


def test_connection_resets_before_and_after_forwarding(via_proxy, aws):
    via_proxy.proxy.configure(reset_rate=1.0)
    with pytest.raises(ConnectionClosedError):
        via_proxy("s3").create_bucket(Bucket="reset-before")
    via_proxy.proxy.configure(reset_rate=0.0, reset_after_rate=1.0)
    with pytest.raises(ConnectionClosedError):
        via_proxy("s3").create_bucket(Bucket="reset-after")
    names = [bucket["Name"] for bucket in aws.client("s3").list_buckets()["Buckets"]]
    assert "reset-before" not in names
    assert "reset-after" in names


def test_fault_filters_limit_faults_to_the_named_actions(via_proxy):
    via_proxy.proxy.configure(error_rate=1.0, fault_actions=["CreateImage"])
    via_proxy("ec2").describe_instances()
    assert via_proxy.proxy.stats()["outcomes"] == {"ok": 1}


def test_a_down_region_fails_and_the_others_answer(via_proxy):
    via_proxy.proxy.configure(down_regions=["eu-west-1"])
    with pytest.raises(ConnectionClosedError):
        via_proxy("ec2", "eu-west-1").describe_instances()
    via_proxy("ec2", "us-east-1").describe_instances()
    via_proxy.proxy.configure(down_mode="unavailable")
    with pytest.raises(ClientError) as unavailable:
        via_proxy("ec2", "eu-west-1").describe_instances()
    assert unavailable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    stats = via_proxy.proxy.stats()
    assert aws_proxy.count(stats, outcome="down", region="eu-west-1") == 2
    assert aws_proxy.count(stats, outcome="ok", region="us-east-1") == 1


def test_latency_is_applied_to_each_request(via_proxy):
    via_proxy.proxy.configure(latency_ms=50)
    ec2 = via_proxy("ec2")
    ec2.describe_instances()
    ec2.describe_images(Owners=["self"])
    assert via_proxy.slept == [pytest.approx(0.05), pytest.approx(0.05)]


def test_control_endpoints_configure_report_and_reset(via_proxy):
    control = aws_proxy.ProxyControl(via_proxy.proxy.endpoint)
    assert control.configure(latency_ms=25, throttle=True)["latency_ms"] == 25
    assert via_proxy.proxy.config.throttle is True
    via_proxy("ec2").describe_instances()
    stats = control.stats()
    assert stats["requests"] == {"ec2:DescribeInstances": 1}
    assert stats["config"]["latency_ms"] == 25
    control.reset()
    assert control.stats()["total"] == 0
    assert via_proxy.proxy.config.latency_ms == 25
    control.reset(config=True)
    assert via_proxy.proxy.config.latency_ms == 0
    with pytest.raises(urllib.error.HTTPError) as refused:
        control.configure(not_a_setting=1)
    assert refused.value.code == 400
    assert "unknown proxy setting" in json.loads(refused.value.read())["error"]


def test_requests_without_credentials_are_forwarded(via_proxy, proxy):
    request = urllib.request.Request(proxy.endpoint + "/moto-api/data.json")
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert aws_proxy.count(via_proxy.proxy.stats(), region="unknown") == 1


def test_list_page_latency_is_added_to_each_listing_page_only(via_proxy):
    via_proxy.proxy.configure(list_page_latency_ms=40, latency_ms=5)
    s3 = via_proxy("s3")
    s3.create_bucket(Bucket="pages")
    for number in range(3):
        s3.put_object(Bucket="pages", Key="k{0}".format(number), Body=b"x")
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="pages", PaginationConfig={"PageSize": 2}))
    s3.list_object_versions(Bucket="pages")
    assert len(pages) == 2
    assert via_proxy.slept == [pytest.approx(0.005)] * 4 + [pytest.approx(0.045)] * 3
