"""The describe patch of the moto harness: same answers as moto's, AWS's paging, a cost that grows linearly."""

import contextlib
import sys
import time

import pytest
from botocore.exceptions import ClientError

from tests.harness import fleet
from tests.harness import moto_ec2_describe

REGION = "us-east-1"
MARKER = {"CreatedBy": "opsvault.aws_backup", "BackupPolicy": "default"}


@contextlib.contextmanager
def unpatched():
    """moto without the describe patch (the in-process server of the session serves it meanwhile)."""
    moto_ec2_describe.unapply()
    try:
        yield
    finally:
        moto_ec2_describe.apply()


def create_snapshots(ec2, count, tags=None, volume_id=None):
    volume_id = volume_id or ec2.create_volume(AvailabilityZone=REGION + "a", Size=8)["VolumeId"]
    spec = [{"ResourceType": "snapshot", "Tags": fleet.tag_list(tags)}] if tags else []
    return [ec2.create_snapshot(VolumeId=volume_id, TagSpecifications=spec)["SnapshotId"] for _n in range(count)]


def create_images(ec2, count, tags=None):
    instance_id = fleet.launch(ec2)[0]
    spec = [{"ResourceType": "image", "Tags": fleet.tag_list(tags)}] if tags else []
    return [
        ec2.create_image(InstanceId=instance_id, Name="image-{0}".format(n), TagSpecifications=spec)["ImageId"]
        for n in range(count)
    ]


def answer(items, id_key):
    """What a caller reads of a describe: each item's id and its tags, in the order given."""
    return [(item[id_key], sorted((tag["Key"], tag["Value"]) for tag in item.get("Tags", []))) for item in items]


FILTERS = [
    [],
    [{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}],
    [{"Name": "tag:CreatedBy", "Values": ["opsvault.*"]}],
    [{"Name": "tag:Team", "Values": ["blue", "green"]}],
    [{"Name": "tag:Team", "Values": ["red"]}],
    [{"Name": "tag-key", "Values": ["Team"]}],
    [{"Name": "tag-key", "Values": ["Delete*"]}],
    [{"Name": "tag-value", "Values": ["blue"]}],
    [{"Name": "tag-value", "Values": ["2026-*"]}],
    [{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}, {"Name": "tag-key", "Values": ["Team"]}],
]


def tag_history(ec2, ids):
    """Tags written, overwritten, deleted by key and by key and value, and a resource deleted."""
    ec2.create_tags(Resources=ids[:6], Tags=fleet.tag_list({"Team": "blue", "DeleteOn": "2026-01-01"}))
    ec2.create_tags(Resources=ids[2:4], Tags=fleet.tag_list({"Team": "green"}))
    ec2.delete_tags(Resources=[ids[4]], Tags=[{"Key": "Team"}])
    ec2.delete_tags(Resources=[ids[5]], Tags=[{"Key": "Team", "Value": "not-its-value"}])
    ec2.delete_tags(Resources=[ids[0]], Tags=[{"Key": "DeleteOn", "Value": "2026-01-01"}])
    ec2.create_tags(Resources=[ids[7]], Tags=fleet.tag_list({"Team": ""}))


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(x["Name"] for x in f) or "none")
def test_snapshot_tags_and_tag_filters_answer_as_moto_does(aws, filters):
    ec2 = aws.ec2(REGION)
    ids = create_snapshots(ec2, 8, MARKER) + create_snapshots(ec2, 2)
    tag_history(ec2, ids)
    ec2.delete_snapshot(SnapshotId=ids[1])

    patched = answer(ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"], "SnapshotId")
    with unpatched():
        expected = answer(ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"], "SnapshotId")
    assert patched == expected
    assert ids[1] not in {snapshot_id for snapshot_id, _tags in patched}


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "+".join(x["Name"] for x in f) or "none")
def test_image_tags_and_tag_filters_answer_as_moto_does(aws, filters):
    ec2 = aws.ec2(REGION)
    ids = create_images(ec2, 10, MARKER)
    ec2.delete_tags(Resources=ids[8:], Tags=[{"Key": key} for key in MARKER])
    tag_history(ec2, ids)
    ec2.deregister_image(ImageId=ids[1])

    patched = answer(ec2.describe_images(Owners=["self"], Filters=filters)["Images"], "ImageId")
    with unpatched():
        expected = answer(ec2.describe_images(Owners=["self"], Filters=filters)["Images"], "ImageId")
    assert patched == expected
    assert ids[1] not in {image_id for image_id, _tags in patched}


def test_instance_tags_and_filters_answer_as_moto_does(aws):
    ec2 = aws.ec2(REGION)
    ids = fleet.launch(ec2, {"Backup": ""}, count=4) + fleet.launch(ec2, count=2)
    ec2.create_tags(Resources=ids[1:3], Tags=fleet.tag_list({"Backup": "daily"}))
    filters = [{"Name": "tag-key", "Values": ["Backup"]}]

    def described():
        reservations = ec2.describe_instances(Filters=filters)["Reservations"]
        return sorted(answer([i for r in reservations for i in r["Instances"]], "InstanceId"))

    patched = described()
    with unpatched():
        assert patched == described()
    assert len(patched) == 4


@pytest.mark.parametrize("shape", ["ids", "ids and tag", "wildcard", "missing id", "with SnapshotIds"])
def test_snapshot_id_filters_answer_as_moto_does(aws, shape):
    ec2 = aws.ec2(REGION)
    ids = create_snapshots(ec2, 6, MARKER) + create_snapshots(ec2, 3)
    params = {
        "ids": dict(Filters=[{"Name": "snapshot-id", "Values": [ids[4], ids[0], ids[7]]}]),
        "ids and tag": dict(
            Filters=[
                {"Name": "snapshot-id", "Values": [ids[4], ids[7]]},
                {"Name": "tag:CreatedBy", "Values": [MARKER["CreatedBy"]]},
            ]
        ),
        "wildcard": dict(Filters=[{"Name": "snapshot-id", "Values": [ids[2][:8] + "*", ids[5]]}]),
        "missing id": dict(Filters=[{"Name": "snapshot-id", "Values": ["snap-0123456789abcdef0", ids[1]]}]),
        "with SnapshotIds": dict(
            SnapshotIds=ids[:3], Filters=[{"Name": "snapshot-id", "Values": [ids[1], ids[8]]}]
        ),
    }[shape]

    patched = answer(ec2.describe_snapshots(OwnerIds=["self"], **params)["Snapshots"], "SnapshotId")
    with unpatched():
        expected = answer(ec2.describe_snapshots(OwnerIds=["self"], **params)["Snapshots"], "SnapshotId")
    assert patched == expected and patched


def test_deleting_a_resource_drops_its_tags(aws):
    ec2 = aws.ec2(REGION)
    snapshot_id = create_snapshots(ec2, 1, MARKER)[0]
    image_id = create_images(ec2, 1, MARKER)[0]
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snapshot_id)

    described = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [snapshot_id, image_id]}])["Tags"]
    assert described == []
    assert snapshot_id not in fleet.ec2_backend(REGION).tags


def pages(call, key, **params):
    """Every page of a describe, following NextToken: a list of item lists."""
    found, token = [], None
    while True:
        answer_ = call(**dict(params, **({"NextToken": token} if token else {})))
        found.append(answer_[key])
        token = answer_.get("NextToken")
        if not token:
            return found


def test_snapshot_pages_cover_every_snapshot_once_in_a_stable_order(aws):
    ec2 = aws.ec2(REGION)
    ids = create_snapshots(ec2, 17, MARKER) + create_snapshots(ec2, 3)
    params = dict(OwnerIds=["self"], Filters=[{"Name": "tag:CreatedBy", "Values": ["opsvault.aws_backup"]}])

    first = pages(ec2.describe_snapshots, "Snapshots", MaxResults=5, **params)
    again = pages(ec2.describe_snapshots, "Snapshots", MaxResults=5, **params)

    assert [len(page) for page in first] == [5, 5, 5, 2]
    listed = [snapshot["SnapshotId"] for page in first for snapshot in page]
    assert sorted(listed) == sorted(ids[:17]) and len(set(listed)) == 17
    assert listed == [snapshot["SnapshotId"] for page in again for snapshot in page]


def test_image_pages_cover_every_image_once_in_a_stable_order(aws):
    ec2 = aws.ec2(REGION)
    ids = create_images(ec2, 7, MARKER)

    by_one = pages(ec2.describe_images, "Images", Owners=["self"], MaxResults=1)
    by_three = pages(ec2.describe_images, "Images", Owners=["self"], MaxResults=3)

    assert [len(page) for page in by_one] == [1] * 7
    assert [len(page) for page in by_three] == [3, 3, 1]
    one = [image["ImageId"] for page in by_one for image in page]
    assert one == [image["ImageId"] for page in by_three for image in page]
    assert sorted(one) == sorted(ids)


def test_boto3_paginators_read_the_pages(aws):
    ec2 = aws.ec2(REGION)
    ids = create_snapshots(ec2, 12, MARKER)
    paginator = ec2.get_paginator("describe_snapshots")
    answers = list(paginator.paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 5}))
    assert [len(page["Snapshots"]) for page in answers] == [5, 5, 2]
    built = paginator.paginate(OwnerIds=["self"], PaginationConfig={"PageSize": 5}).build_full_result()
    assert sorted(snapshot["SnapshotId"] for snapshot in built["Snapshots"]) == sorted(ids)


def test_without_max_results_everything_comes_in_one_answer(aws):
    ec2 = aws.ec2(REGION)
    create_snapshots(ec2, 12)
    create_images(ec2, 3)
    snapshots = ec2.describe_snapshots(OwnerIds=["self"])
    images = ec2.describe_images(Owners=["self"])
    assert len(snapshots["Snapshots"]) == 12 + 3 and "NextToken" not in snapshots
    assert len(images["Images"]) == 3 and "NextToken" not in images


def test_a_resource_deleted_between_pages_is_skipped_and_none_is_repeated(aws):
    ec2 = aws.ec2(REGION)
    create_snapshots(ec2, 10)
    first = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)
    listed = [snapshot["SnapshotId"] for snapshot in first["Snapshots"]]
    ec2.delete_snapshot(SnapshotId=listed[-1])
    rest = pages(ec2.describe_snapshots, "Snapshots", OwnerIds=["self"], MaxResults=5, NextToken=first["NextToken"])
    later = [snapshot["SnapshotId"] for page in rest for snapshot in page]
    assert len(later) == 5 and not set(later) & set(listed)


@pytest.mark.parametrize(
    "operation, params, code",
    [
        ("describe_images", dict(Owners=["self"], MaxResults=0), "InvalidParameterValue"),
        ("describe_images", dict(Owners=["self"], MaxResults=1001), "InvalidParameterValue"),
        ("describe_snapshots", dict(OwnerIds=["self"], MaxResults=4), "InvalidParameterValue"),
        ("describe_snapshots", dict(SnapshotIds=["snap-0123456789abcdef0"], MaxResults=5), "InvalidParameterCombination"),
        ("describe_snapshots", dict(OwnerIds=["self"], MaxResults=5, NextToken="not-a-token"), "InvalidPaginationToken"),
        ("describe_images", dict(Owners=["self"], MaxResults=5, NextToken="bm90IGpzb24="), "InvalidPaginationToken"),
    ],
)
def test_invalid_paging_is_refused_as_aws_refuses_it(aws, operation, params, code):
    with pytest.raises(ClientError) as raised:
        getattr(aws.ec2(REGION), operation)(**params)
    assert raised.value.response["Error"]["Code"] == code


def test_max_results_above_1000_gives_snapshot_pages_of_1000():
    assert moto_ec2_describe.page_size("DescribeSnapshots", 5000) == 1000
    assert moto_ec2_describe.page_size("DescribeSnapshots", 5) == 5
    assert moto_ec2_describe.page_size("DescribeImages", 1000) == 1000
    assert moto_ec2_describe.page_size("DescribeImages", None) is None


# ---------------------------------------------------------------- cost


def seed_tagged_snapshots(region, count):
    """``count`` snapshots with the backup tags, written straight into moto's backend (fast)."""
    backend = fleet.ec2_backend(region)
    volume = backend.create_volume(size=8, zone_name=region + "a")
    for number in range(count):
        snapshot = backend.create_snapshot(volume.id, "backup {0}".format(number))
        backend.create_tags([snapshot.id], dict(MARKER, DeleteOn="2026-01-01", Number=str(number)))


def calls_to_describe(region):
    """Python and C function calls moto makes to filter a region's snapshots by tag and render their tags."""
    backend = fleet.ec2_backend(region)
    counted = [0]

    def profile(_frame, event, _arg):
        if event in ("call", "c_call"):
            counted[0] += 1

    sys.setprofile(profile)
    try:
        found = backend.describe_snapshots(filters={"tag:CreatedBy": [MARKER["CreatedBy"]]})
        for snapshot in found:
            snapshot.tag_set
    finally:
        sys.setprofile(None)
    return counted[0], len(found)


def test_filtering_and_rendering_tags_costs_linear_calls_not_quadratic(aws):
    small, large = "eu-west-1", "ap-southeast-2"
    seed_tagged_snapshots(small, 100)
    seed_tagged_snapshots(large, 400)

    small_calls, small_found = calls_to_describe(small)
    large_calls, large_found = calls_to_describe(large)
    with unpatched():
        moto_small, _found = calls_to_describe(small)
        moto_large, _found = calls_to_describe(large)

    assert (small_found, large_found) == (100, 400)
    assert large_calls / small_calls < 5, (small_calls, large_calls)
    assert moto_large / moto_small > 8, (moto_small, moto_large)  # the same measure sees moto's square


def test_describing_4x_the_snapshots_takes_well_under_16x_the_time(aws):
    small, large = "eu-west-1", "ap-southeast-2"
    seed_tagged_snapshots(small, 250)
    seed_tagged_snapshots(large, 1000)
    filters = [{"Name": "tag:CreatedBy", "Values": [MARKER["CreatedBy"]]}]

    def best_of(region, rounds=3):
        ec2 = aws.ec2(region)
        ec2.describe_snapshots(OwnerIds=["self"], SnapshotIds=[])  # warm the client
        times = []
        for _round in range(rounds):
            started = time.perf_counter()
            found = pages(ec2.describe_snapshots, "Snapshots", OwnerIds=["self"], Filters=filters, MaxResults=1000)
            times.append(time.perf_counter() - started)
        assert sum(len(page) for page in found) == (250 if region == small else 1000)
        return min(times)

    ratio = best_of(large) / best_of(small)
    assert ratio < 8, ratio
