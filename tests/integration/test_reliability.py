"""The modules against an AWS that throttles, fails and loses regions: real ansible-playbook runs through the proxy.

The proxy (tests/harness/aws_proxy.py) sits between ansible-playbook and moto. It throttles EC2 with the
published token buckets, answers a share of requests with 500/503 before or after moto processed them,
resets connections and takes regions down; its counts show which requests were sent. Each test runs one
playbook: check mode first, then the real run, with the proxy's counts read and reset between the tasks.
"""

import collections
import datetime
import os

import pytest

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet
from tests.harness import s3 as s3h

MANAGED = {"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default"}
NOW = datetime.datetime.now(datetime.timezone.utc)
FLEET_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
# Half the injected 5xx answers come after moto made the change: the client sees a failure that happened.
FAULTS = dict(throttle=True, error_rate=0.05, error_after_rate=0.05, seed=20261123)
# The purge and snapshot fleets are smaller than the 300-instance backup; their buckets' bursts are shrunk
# to a quarter of a region's calls or less, so that they run dry and refill at the published 5 per second as a
# full-size run's would, even on a loaded machine where moto answers slowly.  ebs_snapshot's first wave
# of concurrent CreateSnapshot calls per region is larger than its burst, so it is throttled at once.
SMALL_BURSTS = {"DeregisterImage": [10, 5], "DeleteSnapshot": [10, 5], "CreateSnapshot": [2, 5]}


@pytest.fixture(scope="module")
def proxy(moto_endpoint):
    running = aws_proxy.start(moto_endpoint)
    yield running
    running.stop()


class ProxiedPlay:
    """Runs one playbook through the proxy; ``counted(name)`` tasks read and reset its counts in between."""

    def __init__(self, proxy, workdir):
        self.proxy = proxy
        self.workdir = workdir

    def run(self, tasks, region="us-east-1"):
        return ansible_run.run_playbook(
            ansible_run.aws_play(self.proxy.endpoint, tasks, region=region), self.workdir, endpoint=self.proxy.endpoint
        )

    def control(self, name, command, body=None):
        request = {"url": "{0}/__proxy__/{1}".format(self.proxy.endpoint, command), "return_content": True}
        if body is not None:
            request.update(method="POST", body_format="json", body=body)
        return {"name": name, "ansible.builtin.uri": request}

    def counted(self, name):
        """Tasks that record the proxy's counts so far as ``name`` and start new counts and full buckets."""
        return [self.control(name, "stats"), self.control(name + " (reset)", "reset", {})]

    def configure(self, name, **settings):
        return self.control(name, "config", settings)


@pytest.fixture
def through_proxy(aws, proxy, tmp_path):
    proxy.reset(config=True)
    return ProxiedPlay(proxy, tmp_path)


def task(module, name, check_mode=None, **options):
    return ansible_run.task(module, name, check_mode=check_mode, ignore_errors=True, **options)


def stats_of(run, name):
    return run.result(name)["json"]


def succeeded(run, name):
    result = run.result(name)
    assert not result.get("failed"), "{0}: {1}".format(name, result.get("msg"))
    return result


def assert_no_mutating_request(stats):
    assert stats["total"] > 0
    mutating = {key: count for key, count in stats["requests"].items() if aws_proxy.is_mutating(*key.split(":", 1))}
    assert stats["mutating"] == 0, mutating


def day(offset):
    return (NOW.date() + datetime.timedelta(days=offset)).isoformat()


def launch_fleet(aws, per_region, regions=None):
    """``{region: [instance ids]}`` of running instances tagged Backup, seeded straight into moto."""
    launched = {}
    for region in regions or FLEET_REGIONS:
        ec2 = aws.ec2(region)
        launched[region] = []
        while len(launched[region]) < per_region:
            count = min(100, per_region - len(launched[region]))
            launched[region] += fleet.launch(ec2, {"Backup": "", "Retention": "7"}, count=count)
    return launched


# ---------------------------------------------------------------- ami_backup


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


def test_ami_backup_of_300_instances_under_throttling_and_5xx_makes_exactly_one_ami_each(aws, through_proxy):
    launched = launch_fleet(aws, per_region=100)
    through_proxy.proxy.configure(**FAULTS)

    run = through_proxy.run(
        [task("ami_backup", "plan", check_mode=True, regions=FLEET_REGIONS)]
        + through_proxy.counted("plan requests")
        + [task("ami_backup", "backup", regions=FLEET_REGIONS)]
        + through_proxy.counted("backup requests")
        + [task("ami_backup", "backup again", regions=FLEET_REGIONS)]
        + through_proxy.counted("rerun requests")
    )

    plan = succeeded(run, "plan")
    assert len(plan["images"]) == 300 and all(image["image_id"] is None for image in plan["images"])
    assert_no_mutating_request(stats_of(run, "plan requests"))

    result = succeeded(run, "backup")
    assert result["errors"] == []
    assert_one_image_per_instance(aws, launched)
    returned = {(image["region"], image["instance_id"]): image["image_id"] for image in result["images"]}
    assert len(returned) == 300
    for region, instance_ids in launched.items():
        by_source = managed_images_by_source(aws, region)
        assert {instance_id: [returned[(region, instance_id)]] for instance_id in instance_ids} == by_source
    stats = stats_of(run, "backup requests")
    assert aws_proxy.count(stats, action="CreateImage", outcome="throttled") > 0
    assert aws_proxy.count(stats, action="CreateImage", outcome="error") > 0
    assert aws_proxy.count(stats, action="CreateImage", outcome="error_after") > 0
    assert aws_proxy.count(stats, action="CreateTags") == 0

    again = succeeded(run, "backup again")
    assert again["changed"] is False and again["images"] == []
    assert len(again["skipped_resources"]) == 300
    assert stats_of(run, "rerun requests")["mutating"] == 0
    assert_one_image_per_instance(aws, launched)


def test_ami_backup_with_a_region_down_finishes_the_others_names_it_and_a_rerun_completes(aws, through_proxy):
    launched = launch_fleet(aws, per_region=10)
    down = "eu-west-1"
    through_proxy.proxy.configure(throttle=True, down_regions=[down])

    run = through_proxy.run(
        [task("ami_backup", "backup", regions=FLEET_REGIONS)]
        + [through_proxy.configure("recovery", down_regions=[])]
        + through_proxy.counted("backup requests")
        + [task("ami_backup", "backup after recovery", regions=FLEET_REGIONS)]
        + through_proxy.counted("rerun requests")
    )

    result = run.result("backup")
    assert result["failed"] is True
    assert down in result["msg"]
    assert [(error["resource"], error["region"]) for error in result["errors"]] == [(down, down)]
    assert {image["region"] for image in result["images"]} == set(FLEET_REGIONS) - {down}
    assert aws_proxy.count(stats_of(run, "backup requests"), region=down, outcome="down") > 0

    again = succeeded(run, "backup after recovery")
    assert {image["region"] for image in again["images"]} == {down}
    assert len(again["images"]) == 10
    assert aws_proxy.count(stats_of(run, "rerun requests"), action="CreateImage") == 10
    assert_one_image_per_instance(aws, launched)


# ---------------------------------------------------------------- ami_purge


def seed_ami(ec2, region, instance_id, age_days, delete_in_days):
    """A managed AMI (and its tagged snapshot) as ami_backup leaves it, created ``age_days`` ago."""
    tags = dict(MARKER, SourceInstanceId=instance_id, Region=region, DeleteOn=day(delete_in_days))
    image_id = ec2.create_image(
        InstanceId=instance_id,
        Name="{0}-{1}d".format(instance_id, age_days),
        NoReboot=True,
        TagSpecifications=[{"ResourceType": kind, "Tags": fleet.tag_list(tags)} for kind in ("image", "snapshot")],
    )["ImageId"]
    fleet.set_image(region, image_id, created=NOW - datetime.timedelta(days=age_days))
    return image_id


def image_snapshots(aws, region):
    """``({image id: snapshot id}, {snapshot ids})`` of the region's AMIs and of the account's snapshots."""
    ec2 = aws.ec2(region)
    images = {
        image["ImageId"]: image["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] for image in fleet.images(ec2).values()
    }
    return images, set(fleet.snapshots(ec2))


def test_ami_purge_under_throttling_and_5xx_leaves_exactly_the_expected_set(aws, through_proxy):
    launched = launch_fleet(aws, per_region=20)
    expired, fresh = {}, {}
    for region, instance_ids in launched.items():
        ec2 = aws.ec2(region)
        expired[region] = [seed_ami(ec2, region, i, age, 7 - age) for i in instance_ids for age in (20, 10)]
        fresh[region] = [seed_ami(ec2, region, instance_id, 0, 7) for instance_id in instance_ids]
    before = {region: image_snapshots(aws, region)[0] for region in FLEET_REGIONS}
    through_proxy.proxy.configure(bucket_overrides=SMALL_BURSTS, **FAULTS)

    run = through_proxy.run(
        [task("ami_purge", "preview", check_mode=True, regions=FLEET_REGIONS)]
        + through_proxy.counted("preview requests")
        + [task("ami_purge", "purge", regions=FLEET_REGIONS)]
        + through_proxy.counted("purge requests")
    )

    all_expired = sorted(sum(expired.values(), []))
    assert sorted(image["image_id"] for image in succeeded(run, "preview")["deregistered"]) == all_expired
    assert_no_mutating_request(stats_of(run, "preview requests"))

    result = succeeded(run, "purge")
    assert result["errors"] == []
    assert sorted(image["image_id"] for image in result["deregistered"]) == all_expired
    for region in FLEET_REGIONS:
        images, snapshots = image_snapshots(aws, region)
        assert sorted(images) == sorted(fresh[region])
        assert snapshots == {before[region][image_id] for image_id in fresh[region]}
    stats = stats_of(run, "purge requests")
    assert aws_proxy.count(stats, action="DeregisterImage", outcome="throttled") > 0
    assert aws_proxy.count(stats, action="DeregisterImage", outcome="error_after") > 0
    assert aws_proxy.count(stats, action="DeleteSnapshot", outcome="error_after") > 0


# ---------------------------------------------------------------- ebs_snapshot and snapshot_purge


def root_volumes(aws, launched):
    return {
        region: [fleet.root_volume(aws.ec2(region), instance_id) for instance_id in instance_ids]
        for region, instance_ids in launched.items()
    }


def managed_snapshots_by_volume(aws, region):
    by_volume = collections.defaultdict(list)
    for snapshot in fleet.snapshots(aws.ec2(region)).values():
        if fleet.tags_of(snapshot).get("CreatedBy") == "opsvault.aws_backup":
            by_volume[snapshot["VolumeId"]].append(snapshot["SnapshotId"])
    return dict(by_volume)


def test_ebs_snapshot_under_throttling_and_5xx_makes_exactly_one_snapshot_per_volume(aws, through_proxy):
    volumes = root_volumes(aws, launch_fleet(aws, per_region=20))
    through_proxy.proxy.configure(bucket_overrides=SMALL_BURSTS, **FAULTS)

    run = through_proxy.run(
        [task("ebs_snapshot", "plan", check_mode=True, regions=FLEET_REGIONS)]
        + through_proxy.counted("plan requests")
        + [task("ebs_snapshot", "backup", regions=FLEET_REGIONS)]
        + through_proxy.counted("backup requests")
    )

    assert len(succeeded(run, "plan")["snapshots"]) == 60
    assert_no_mutating_request(stats_of(run, "plan requests"))

    assert succeeded(run, "backup")["errors"] == []
    for region, volume_ids in volumes.items():
        by_volume = managed_snapshots_by_volume(aws, region)
        assert set(by_volume) == set(volume_ids)
        doubled = {volume: ids for volume, ids in by_volume.items() if len(ids) > 1}
        assert not doubled, "region {0}: several snapshots of one volume: {1}".format(region, list(doubled.items())[:3])
    stats = stats_of(run, "backup requests")
    assert aws_proxy.count(stats, action="CreateSnapshot", outcome="throttled") > 0
    assert aws_proxy.count(stats, action="CreateSnapshot", outcome="error") > 0
    assert aws_proxy.count(stats, action="CreateSnapshot", outcome="error_after") > 0


def test_snapshot_purge_under_throttling_and_5xx_leaves_exactly_the_expected_set(aws, through_proxy):
    volumes = root_volumes(aws, launch_fleet(aws, per_region=20))
    expired, fresh = [], []
    for region, volume_ids in volumes.items():
        ec2 = aws.ec2(region)
        for volume_id in volume_ids:
            for age in (20, 10, 0):
                tags = dict(MARKER, VolumeId=volume_id, Region=region, DeleteOn=day(7 - age))
                snapshot_id = fleet.add_snapshot(ec2, volume_id, tags)
                fleet.set_snapshot(region, snapshot_id, started=NOW - datetime.timedelta(days=age))
                (fresh if age == 0 else expired).append(snapshot_id)
    through_proxy.proxy.configure(bucket_overrides=SMALL_BURSTS, **FAULTS)

    run = through_proxy.run(
        [task("snapshot_purge", "preview", check_mode=True, regions=FLEET_REGIONS)]
        + through_proxy.counted("preview requests")
        + [task("snapshot_purge", "purge", regions=FLEET_REGIONS)]
        + through_proxy.counted("purge requests")
    )

    assert sorted(item["snapshot_id"] for item in succeeded(run, "preview")["deleted_snapshots"]) == sorted(expired)
    assert_no_mutating_request(stats_of(run, "preview requests"))

    result = succeeded(run, "purge")
    assert result["errors"] == []
    assert sorted(item["snapshot_id"] for item in result["deleted_snapshots"]) == sorted(expired)
    left = {snapshot_id for region in FLEET_REGIONS for snapshot_id in fleet.snapshots(aws.ec2(region))}
    assert left == set(fresh)
    stats = stats_of(run, "purge requests")
    assert aws_proxy.count(stats, action="DeleteSnapshot", outcome="throttled") > 0
    assert aws_proxy.count(stats, action="DeleteSnapshot", outcome="error_after") > 0


# ---------------------------------------------------------------- s3_mirror


def test_s3_mirror_with_5xx_and_connection_resets_mirrors_every_object_exactly(aws, through_proxy, tmp_path):
    bucket = "reliability-mirror"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3h.put(s3, bucket, {"dir{0}/object-{1}.bin".format(n % 7, n): os.urandom(512 + n) for n in range(150)})
    expected = s3h.bucket_contents(s3, bucket)
    dest = tmp_path / "mirror"
    through_proxy.proxy.configure(
        error_rate=0.05, error_after_rate=0.05, reset_rate=0.03, reset_after_rate=0.03, seed=6
    )

    run = through_proxy.run(
        [task("s3_mirror", "plan", check_mode=True, bucket=bucket, dest=str(dest))]
        + through_proxy.counted("plan requests")
        + [task("s3_mirror", "mirror", bucket=bucket, dest=str(dest))]
        + through_proxy.counted("mirror requests")
    )

    plan = succeeded(run, "plan")
    assert plan["counts"]["downloaded"] == 150
    assert "Would download 150 object(s): " in plan["msg"]
    assert_no_mutating_request(stats_of(run, "plan requests"))

    mirror = succeeded(run, "mirror")
    assert mirror["errors"] == [] and mirror["regions"] == ["us-east-1"]
    assert "Downloaded 150 object(s): " in mirror["msg"]
    assert s3h.local_files(dest) == expected
    stats = stats_of(run, "mirror requests")
    assert stats["mutating"] == 0
    for outcome in ("error", "error_after", "reset", "reset_after"):
        assert aws_proxy.count(stats, action="GetObject", outcome=outcome) > 0
