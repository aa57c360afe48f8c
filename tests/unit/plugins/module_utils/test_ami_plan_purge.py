import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils.purge_rule import check_counts
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import image_source
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import plan_purge
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ami import snapshot_kept_reason

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "999999999999"
REGION = "eu-west-1"
TODAY = datetime.date(2026, 11, 23)


def days(offset):
    return (TODAY + datetime.timedelta(days=offset)).isoformat()


def image(image_id, source="i-0aaaaaaaaaaaaaaa1", age=0, delete_on=None, state="available", managed=True, **extra):
    """A DescribeImages item: created ``age`` days before TODAY, with root snapshot ``snap-<image id>``."""
    tags = {"Name": "web"}
    if managed:
        tags["CreatedBy"] = "opsvault.aws_backup"
    if managed and source:
        tags["SourceInstanceId"] = source
    if delete_on is not None:
        tags["DeleteOn"] = delete_on
    tags.update(extra.pop("tags", {}))
    snapshots = extra.pop("snapshots", ["snap-" + image_id])
    item = {
        "ImageId": image_id,
        "Name": extra.pop("name", "web-{0}-{1}".format(source, image_id)),
        "OwnerId": extra.pop("owner", ACCOUNT),
        "State": state,
        "CreationDate": "{0}T01:00:00.000Z".format(days(-age)),
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/sd" + "abcdefgh"[index], "Ebs": {"SnapshotId": snapshot_id}}
            for index, snapshot_id in enumerate(snapshots)
        ],
        "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
    }
    item.update(extra)
    return item


def plan(images, as_of=TODAY, **options):
    return plan_purge(REGION, images, ACCOUNT, as_of, **options)


def ids(items):
    return sorted(item["image_id"] for item in items)


def kept_reasons(result):
    return {item["image_id"]: item["reason"] for item in result["skipped"] if "snapshot_id" not in item}


def test_expired_images_go_with_their_snapshots_and_the_rest_is_kept_with_reasons():
    images = [
        image("ami-old", age=20, delete_on=days(-13)),
        image("ami-due-today", age=8, delete_on=days(0)),
        image("ami-later", age=5, delete_on=days(2)),
        image("ami-newest", age=1, delete_on=days(6)),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-due-today", "ami-old"]
    old = next(item for item in result["todo"] if item["image_id"] == "ami-old")
    assert old == {
        "image_id": "ami-old",
        "name": "web-i-0aaaaaaaaaaaaaaa1-ami-old",
        "region": REGION,
        "source_instance_id": "i-0aaaaaaaaaaaaaaa1",
        "delete_on": days(-13),
        "reason": "expired on {0}".format(days(-13)),
        "legacy": False,
        "state": "available",
        "snapshot_ids": ["snap-ami-old"],
    }
    assert sorted(item["snapshot_id"] for item in result["snapshots"]) == ["snap-ami-due-today", "snap-ami-old"]
    assert kept_reasons(result) == {
        "ami-later": "expires on {0}".format(days(2)),
        "ami-newest": "one of the newest 1 available backup(s) of i-0aaaaaaaaaaaaaaa1 (keep_min)",
    }
    assert result["warnings"] == []


def test_the_newest_available_image_is_kept_even_when_expired_and_keep_min_keeps_more():
    images = [image("ami-{0}".format(age), age=age, delete_on=days(-1)) for age in (3, 6, 9, 12)]
    assert ids(plan(images)["todo"]) == ["ami-12", "ami-6", "ami-9"]
    result = plan(images, keep_min=3)
    assert ids(result["todo"]) == ["ami-12"]
    assert sorted(kept_reasons(result)) == ["ami-3", "ami-6", "ami-9"]


def test_sources_are_independent():
    images = [
        image("ami-a-old", source="i-0aaaaaaaaaaaaaaa1", age=9, delete_on=days(-2)),
        image("ami-a-new", source="i-0aaaaaaaaaaaaaaa1", age=1, delete_on=days(-1)),
        image("ami-b-only", source="i-0bbbbbbbbbbbbbbb2", age=9, delete_on=days(-2)),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-a-old"]
    assert sorted(kept_reasons(result)) == ["ami-a-new", "ami-b-only"]


@pytest.mark.parametrize("newest_state", ["pending", "failed"])
def test_a_source_whose_newest_image_is_not_available_is_held_back_entirely(newest_state):
    images = [
        image("ami-old", age=20, delete_on=days(-13)),
        image("ami-mid", age=10, delete_on=days(-3)),
        image("ami-newest", age=0, delete_on=days(7), state=newest_state),
        image("ami-other-old", source="i-0bbbbbbbbbbbbbbb2", age=20, delete_on=days(-13)),
        image("ami-other-new", source="i-0bbbbbbbbbbbbbbb2", age=1, delete_on=days(6)),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-other-old"]
    reasons = kept_reasons(result)
    for image_id in ("ami-old", "ami-mid", "ami-newest"):
        assert reasons[image_id] == (
            "the newest backup of i-0aaaaaaaaaaaaaaa1, ami-newest, is {0}: nothing of this source is purged "
            "until its latest backup is available".format(newest_state)
        )


def test_an_older_pending_image_is_kept_and_an_older_failed_one_expires_like_any_other():
    images = [
        image("ami-failed", age=9, delete_on=days(-2), state="failed"),
        image("ami-pending", age=8, delete_on=days(-1), state="pending"),
        image("ami-newest", age=1, delete_on=days(6)),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-failed"]
    assert kept_reasons(result)["ami-pending"] == "backup is pending"


def test_a_snapshot_another_registered_ami_uses_is_kept_and_reported():
    images = [
        image("ami-old", age=9, delete_on=days(-2), snapshots=["snap-shared", "snap-own"]),
        image("ami-newest", age=1, delete_on=days(6)),
        image("ami-copy", managed=False, name="hand-made copy", snapshots=["snap-shared"]),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-old"]
    assert result["todo"][0]["snapshot_ids"] == ["snap-own"]
    assert [item["snapshot_id"] for item in result["snapshots"]] == ["snap-own"]
    assert [item for item in result["skipped"] if "snapshot_id" in item] == [
        {
            "resource": "snap-shared",
            "snapshot_id": "snap-shared",
            "image_id": "ami-old",
            "name": "web-i-0aaaaaaaaaaaaaaa1-ami-old",
            "region": REGION,
            "reason": "also used by ami-copy, which stays registered",
        }
    ]
    assert "ami-copy" not in kept_reasons(result)


def test_a_snapshot_shared_by_two_expiring_amis_is_planned_once_after_both():
    images = [
        image("ami-old", age=9, delete_on=days(-2), snapshots=["snap-shared"]),
        image("ami-older", age=12, delete_on=days(-5), snapshots=["snap-shared", "snap-older"]),
        image("ami-newest", age=1, delete_on=days(6)),
    ]
    result = plan(images)
    assert ids(result["todo"]) == ["ami-old", "ami-older"]
    by_snapshot = {item["snapshot_id"]: sorted(item["image_ids"]) for item in result["snapshots"]}
    assert by_snapshot == {"snap-shared": ["ami-old", "ami-older"], "snap-older": ["ami-older"]}
    assert not [item for item in result["skipped"] if "snapshot_id" in item]


def test_a_snapshot_not_owned_by_the_account_stays_with_the_reason():
    owners = {"snap-foreign": OTHER_ACCOUNT, "snap-own": ACCOUNT}
    assert snapshot_kept_reason("snap-own", owners, ACCOUNT) is None
    assert snapshot_kept_reason("snap-foreign", owners, ACCOUNT) == "owned by {0}, not by this account".format(
        OTHER_ACCOUNT
    )
    assert snapshot_kept_reason("snap-unlisted", owners, ACCOUNT) == "not among this account's snapshots"


def test_images_of_another_owner_and_unmanaged_images_are_never_planned():
    images = [
        image("ami-foreign", age=9, delete_on=days(-2), owner=OTHER_ACCOUNT),
        image("ami-foreign-new", age=1, delete_on=days(-1), owner=OTHER_ACCOUNT),
        image("ami-unmanaged", age=9, managed=False, name="golden image"),
        image("ami-unmanaged-new", age=1, managed=False, name="golden image 2"),
    ]
    result = plan(images, adopt_legacy=True)
    assert result["todo"] == [] and result["snapshots"] == [] and result["skipped"] == []


def test_legacy_amis_are_purged_only_with_adopt_legacy():
    legacy = [
        image(
            "ami-l-old", managed=False, age=20, delete_on=days(-13), name="Lambda - i-0ccccccccccccccc3 from 2026-11-03"
        ),
        image(
            "ami-l-new", managed=False, age=10, delete_on=days(-3), name="Lambda - i-0ccccccccccccccc3 from 2026-11-13"
        ),
        image("ami-anon-old", managed=False, age=30, delete_on=days(-20), name="nightly-2026-10-24"),
        image("ami-anon-new", managed=False, age=15, delete_on=days(-8), name="nightly-2026-11-08"),
        image("ami-no-delete-on", managed=False, age=40, name="Lambda - i-0ccccccccccccccc3 from 2026-10-14"),
    ]
    assert plan(legacy)["todo"] == [] and plan(legacy)["skipped"] == []

    result = plan(legacy, adopt_legacy=True)
    assert ids(result["todo"]) == ["ami-anon-old", "ami-l-old"]
    by_id = {item["image_id"]: item for item in result["todo"]}
    assert by_id["ami-l-old"]["legacy"] is True
    assert by_id["ami-l-old"]["source_instance_id"] == "i-0ccccccccccccccc3"
    assert by_id["ami-anon-old"]["source_instance_id"] is None
    reasons = kept_reasons(result)
    assert (
        reasons["ami-anon-new"] == "one of the newest 1 available backup(s) of legacy AMIs of unknown source (keep_min)"
    )
    assert "ami-no-delete-on" not in reasons


def test_a_legacy_ami_joins_the_managed_backups_of_its_source():
    images = [
        image("ami-legacy", managed=False, age=30, delete_on=days(-20), name="Lambda - i-0aaaaaaaaaaaaaaa1 from x"),
        image("ami-managed", age=1, delete_on=days(6)),
    ]
    result = plan(images, adopt_legacy=True)
    assert ids(result["todo"]) == ["ami-legacy"]


def test_image_source_prefers_our_tag_then_the_aws_field_then_the_name():
    tagged = {"Name": "Lambda - i-0ccccccccccccccc3", "SourceInstanceId": "i-0ddddddddddddddd4"}
    assert image_source(tagged, {"SourceInstanceId": "i-0aaaaaaaaaaaaaaa1"}) == "i-0aaaaaaaaaaaaaaa1"
    assert image_source(tagged, {}) == "i-0ddddddddddddddd4"
    assert image_source({"Name": "x", "Description": "backup of i-0ccccccccccccccc3"}, {}) == "i-0ccccccccccccccc3"
    assert image_source({"Name": "nightly"}, {}) == "unknown"


def test_keep_last_purges_older_available_backups_before_they_expire_but_never_below_keep_min():
    images = [image("ami-{0}".format(age), age=age, delete_on=days(30 - age)) for age in (1, 2, 3, 4)]
    images.append(image("ami-failed", age=0, delete_on=days(30), state="failed"))
    assert plan(images)["todo"] == []

    held = plan(images, keep_last=2)
    assert held["todo"] == []  # the newest (failed) image holds the source back

    images.pop()
    result = plan(images, keep_last=2)
    assert ids(result["todo"]) == ["ami-3", "ami-4"]
    reasons = {item["image_id"]: item["reason"] for item in result["todo"]}
    assert reasons["ami-4"] == "beyond keep_last 2: available backup number 4 of i-0aaaaaaaaaaaaaaa1"
    assert ids(plan(images, keep_last=1, keep_min=3)["todo"]) == ["ami-4"]


def test_keep_last_also_applies_to_managed_images_without_delete_on():
    images = [image("ami-new", age=1), image("ami-old", age=5)]
    assert kept_reasons(plan(images))["ami-old"] == "has no DeleteOn tag"
    assert ids(plan(images, keep_last=1)["todo"]) == ["ami-old"]


def test_a_bad_delete_on_keeps_the_image_with_a_warning_and_it_still_counts_as_a_backup():
    images = [
        image("ami-bad", age=9, delete_on="next tuesday"),
        image("ami-old", age=12, delete_on=days(-5)),
        image("ami-newest", age=1, delete_on=days(6)),
    ]
    result = plan(images, keep_last=1)
    assert ids(result["todo"]) == ["ami-old"]
    assert kept_reasons(result)["ami-bad"] == "DeleteOn tag 'next tuesday' is not a date"
    assert len(result["warnings"]) == 1
    assert "ami-bad" in result["warnings"][0] and "'next tuesday'" in result["warnings"][0]

    images[2]["State"] = "pending"
    assert plan(images)["todo"] == []


def test_as_of_previews_a_later_date_and_delete_on_datetimes_are_read():
    images = [
        image("ami-soon", age=9, delete_on=days(3)),
        image("ami-datetime", age=8, delete_on=days(5) + "T23:00:00Z"),
        image("ami-later", age=5, delete_on=days(10)),
        image("ami-newest", age=1, delete_on=days(6)),
    ]
    assert plan(images)["todo"] == []
    assert ids(plan(images, as_of=TODAY + datetime.timedelta(days=3))["todo"]) == ["ami-soon"]
    assert ids(plan(images, as_of=TODAY + datetime.timedelta(days=5))["todo"]) == ["ami-datetime", "ami-soon"]
    assert ids(plan(images, as_of=TODAY + datetime.timedelta(days=60))["todo"]) == [
        "ami-datetime",
        "ami-later",
        "ami-soon",
    ]


@pytest.mark.parametrize(
    "keep_min, keep_last, message",
    [
        (0, None, "keep_min must be at least 1 (the newest available backup is never purged), got 0"),
        (-2, None, "got -2"),
        (1, 0, "keep_last must be at least 1, got 0"),
    ],
)
def test_counts_below_one_are_refused_naming_the_value(keep_min, keep_last, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_counts(keep_min, keep_last)
    with pytest.raises(ValueError):
        plan([image("ami-old", age=9, delete_on=days(-2))], keep_min=keep_min, keep_last=keep_last)


def test_of_two_images_made_in_the_same_second_the_longer_lived_counts_as_newer():
    for order in ((0, 1), (1, 0)):
        pair = [image("ami-0short", age=10, delete_on=days(-5)), image("ami-0long", age=10, delete_on=days(-1))]
        result = plan([pair[order[0]], pair[order[1]]])
        assert ids(result["todo"]) == ["ami-0short"]
        assert [item["image_id"] for item in result["skipped"]] == ["ami-0long"]


def test_copies_keep_min_per_source_instance_and_origin_and_expire_by_their_own_delete_on():
    def copy(image_id, age, delete_on, origin_region, origin_account=ACCOUNT):
        origin = {"SourceRegion": origin_region, "SourceAccount": origin_account, "SourceImageId": "ami-src" + image_id}
        return image(image_id, age=age, delete_on=delete_on, tags=origin)

    images = [
        image("ami-own", age=9, delete_on=days(-2)),
        copy("ami-east-old", 8, days(-1), "us-east-1"),
        copy("ami-east-new", 2, days(-1), "us-east-1"),
        copy("ami-vault", 5, days(-1), "us-east-1", OTHER_ACCOUNT),
        copy("ami-west", 1, days(30), "us-west-2"),
    ]

    result = plan(images)

    assert ids(result["todo"]) == ["ami-east-old"]
    kept = kept_reasons(result)
    assert kept["ami-own"] == "one of the newest 1 available backup(s) of i-0aaaaaaaaaaaaaaa1 (keep_min)"
    assert kept["ami-east-new"] == (
        "one of the newest 1 available backup(s) of i-0aaaaaaaaaaaaaaa1 (copies from us-east-1, 123456789012) (keep_min)"
    )
    assert "(copies from us-east-1, 999999999999)" in kept["ami-vault"]
    assert "(copies from us-west-2, 123456789012)" in kept["ami-west"]
    assert {item["source_instance_id"] for item in result["todo"]} == {"i-0aaaaaaaaaaaaaaa1"}
