"""The modules against an AWS that throttles, fails and loses regions: real ansible-playbook runs through the proxy.

The proxy (tests/harness/aws_proxy.py) sits between ansible-playbook and moto. It throttles EC2 with the
published token buckets, answers a share of requests with 500/503 before or after moto processed them,
resets connections and takes regions down; its counts show which requests were sent.
"""

import collections

import pytest

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

MANAGED = {"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}
FLEET_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
# Half the injected 5xx answers come after moto made the change: the client sees a failure that happened.
FAULTS = dict(throttle=True, error_rate=0.05, error_after_rate=0.05, seed=20261123)


@pytest.fixture(scope="module")
def proxy(moto_endpoint):
    running = aws_proxy.start(moto_endpoint)
    yield running
    running.stop()


@pytest.fixture
def through_proxy(aws, proxy, tmp_path):
    """Run tasks in a localhost play whose AWS endpoint is the proxy (reset before each test)."""
    proxy.reset(config=True)

    def run(tasks, region="us-east-1", check=False):
        return ansible_run.run_playbook(
            ansible_run.aws_play(proxy.endpoint, tasks, region=region),
            tmp_path,
            endpoint=proxy.endpoint,
            check=check,
        )

    run.proxy = proxy
    return run


def task(module, name, **options):
    return {"name": name, "opsvault.aws_backup." + module: options, "register": "result", "ignore_errors": True}


def launch_fleet(aws, per_region):
    """``{region: [instance ids]}`` of running instances tagged Backup, seeded straight into moto."""
    launched = {}
    for region in FLEET_REGIONS:
        ec2 = aws.ec2(region)
        launched[region] = []
        while len(launched[region]) < per_region:
            count = min(100, per_region - len(launched[region]))
            launched[region] += fleet.launch(ec2, {"Backup": "", "Retention": "7"}, count=count)
    return launched


def managed_images_by_source(aws, region):
    """``{instance id: [image ids]}`` of the managed AMIs in moto, whatever the proxy says."""
    images = aws.ec2(region).describe_images(Owners=["self"], Filters=[MANAGED])["Images"]
    by_source = collections.defaultdict(list)
    for image in images:
        by_source[fleet.tags_of(image)["SourceInstanceId"]].append(image["ImageId"])
    return dict(by_source)


def assert_one_image_per_instance(aws, launched):
    for region, instance_ids in launched.items():
        by_source = managed_images_by_source(aws, region)
        assert set(by_source) == set(instance_ids), "region {0}: missing {1}, unexpected {2}".format(
            region, sorted(set(instance_ids) - set(by_source))[:5], sorted(set(by_source) - set(instance_ids))[:5]
        )
        doubled = {source: images for source, images in by_source.items() if len(images) > 1}
        assert not doubled, "region {0}: several AMIs of one instance: {1}".format(region, list(doubled.items())[:3])


# ---------------------------------------------------------------- ami_backup


def test_ami_backup_of_300_instances_under_throttling_and_5xx_makes_exactly_one_ami_each(aws, through_proxy):
    launched = launch_fleet(aws, per_region=100)
    through_proxy.proxy.configure(**FAULTS)

    run = through_proxy([task("ami_backup", "backup", regions=FLEET_REGIONS)])
    result = run.result("backup")

    assert run.rc == 0 and not result.get("failed"), result.get("msg")
    assert result["errors"] == []
    assert_one_image_per_instance(aws, launched)
    returned = {(image["region"], image["instance_id"]): image["image_id"] for image in result["images"]}
    assert len(returned) == 300
    for region, instance_ids in launched.items():
        by_source = managed_images_by_source(aws, region)
        assert {instance_id: [returned[(region, instance_id)]] for instance_id in instance_ids} == by_source

    stats = through_proxy.proxy.stats()
    assert aws_proxy.count(stats, action="CreateImage", outcome="throttled") > 0
    assert aws_proxy.count(stats, action="CreateImage", outcome="error") > 0
    assert aws_proxy.count(stats, action="CreateImage", outcome="error_after") > 0
    assert aws_proxy.count(stats, action="CreateTags") == 0

    through_proxy.proxy.reset()
    rerun = through_proxy([task("ami_backup", "backup again", regions=FLEET_REGIONS)])
    again = rerun.result("backup again")
    assert rerun.rc == 0 and again["changed"] is False and again["images"] == []
    assert len(again["skipped_resources"]) == 300
    assert_one_image_per_instance(aws, launched)
    assert through_proxy.proxy.stats()["mutating"] == 0


def test_ami_backup_check_mode_sends_no_mutating_request(aws, through_proxy):
    launched = launch_fleet(aws, per_region=5)
    through_proxy.proxy.configure(**FAULTS)

    run = through_proxy([task("ami_backup", "plan", regions=FLEET_REGIONS)], check=True)
    result = run.result("plan")

    assert run.rc == 0 and result["changed"] is True
    assert {(image["region"], image["instance_id"]) for image in result["images"]} == {
        (region, instance_id) for region, ids in launched.items() for instance_id in ids
    }
    stats = through_proxy.proxy.stats()
    assert stats["total"] > 0
    assert stats["mutating"] == 0, stats["requests"]
    for region in FLEET_REGIONS:
        assert managed_images_by_source(aws, region) == {}


def test_ami_backup_with_a_region_down_finishes_the_others_names_it_and_a_rerun_completes(aws, through_proxy):
    launched = launch_fleet(aws, per_region=20)
    down = "eu-west-1"
    through_proxy.proxy.configure(throttle=True, down_regions=[down])

    run = through_proxy([task("ami_backup", "backup", regions=FLEET_REGIONS)])
    result = run.result("backup")

    assert run.rc == 0 and result["failed"] is True
    assert down in result["msg"]
    assert [(error["resource"], error["region"]) for error in result["errors"]] == [(down, down)]
    assert managed_images_by_source(aws, down) == {}
    assert_one_image_per_instance(aws, {region: ids for region, ids in launched.items() if region != down})
    assert {image["region"] for image in result["images"]} == set(FLEET_REGIONS) - {down}

    through_proxy.proxy.configure(down_regions=[])
    through_proxy.proxy.reset()
    rerun = through_proxy([task("ami_backup", "backup after recovery", regions=FLEET_REGIONS)])
    again = rerun.result("backup after recovery")

    assert rerun.rc == 0 and not again.get("failed"), again.get("msg")
    assert {image["region"] for image in again["images"]} == {down}
    assert len(again["images"]) == 20
    assert_one_image_per_instance(aws, launched)
    stats = through_proxy.proxy.stats()
    assert aws_proxy.count(stats, action="CreateImage") == 20
