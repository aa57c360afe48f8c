"""ami_purge through real ansible-playbook runs against moto: what goes, what stays, and why."""

import datetime

import pytest
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.elastic_block_store import EBSBackend

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

NOW = datetime.datetime.now(datetime.timezone.utc)
TODAY = NOW.date()
MARKER = {"CreatedBy": "opsvault.aws_backup"}


def day(offset):
    return (TODAY + datetime.timedelta(days=offset)).isoformat()


def purge_task(name="purge", check_mode=None, ignore_errors=None, **options):
    return ansible_run.task("ami_purge", name, check_mode=check_mode, ignore_errors=ignore_errors, **options)


def seed_backup(ec2, region, instance_id, age_days, delete_in_days, state=None, managed=True, name=None, tags=None):
    """An AMI of the instance as ami_backup (or, unmanaged, an old script) leaves it, created ``age_days`` ago."""
    created = NOW - datetime.timedelta(days=age_days)
    all_tags = dict(MARKER, SourceInstanceId=instance_id, BackupPolicy="default") if managed else {}
    if delete_in_days is not None:
        all_tags["DeleteOn"] = day(delete_in_days)
    all_tags.update(tags or {})
    name = name or "{0}-{1}".format(instance_id, created.strftime("%Y%m%dT%H%M%S%fZ"))
    params = dict(InstanceId=instance_id, Name=name, NoReboot=True)
    if all_tags:
        params["TagSpecifications"] = [
            {"ResourceType": kind, "Tags": fleet.tag_list(all_tags)} for kind in ("image", "snapshot")
        ]
    image_id = ec2.create_image(**params)["ImageId"]
    fleet.set_image(region, image_id, state=state, created=created)
    return image_id


def snapshot_of(ec2, image_id):
    [mapping] = fleet.images(ec2)[image_id]["BlockDeviceMappings"]
    return mapping["Ebs"]["SnapshotId"]


def snapshot_ids(ec2):
    return {snapshot["SnapshotId"] for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def ids(items, key="image_id"):
    return sorted(item[key] for item in items)


def kept_reasons(result):
    return {item["image_id"]: item["reason"] for item in result["skipped_resources"] if "snapshot_id" not in item}


def test_purge_removes_only_managed_expired_amis_and_their_snapshots_keeps_the_newest_and_reruns_clean(aws, play):
    ec2 = aws.ec2("us-east-1")
    [web] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    [lone] = fleet.launch(ec2, {"Name": "no longer selected"})
    web_old = seed_backup(ec2, "us-east-1", web, 20, -13)
    web_mid = seed_backup(ec2, "us-east-1", web, 10, -3)
    web_later = seed_backup(ec2, "us-east-1", web, 5, 2)
    web_unreadable = seed_backup(ec2, "us-east-1", web, 15, None, tags={"DeleteOn": "someday"})
    lone_only = seed_backup(ec2, "us-east-1", lone, 30, -23)
    legacy = seed_backup(ec2, "us-east-1", web, 40, -33, managed=False, name="Lambda - {0} from old".format(web))
    golden = seed_backup(ec2, "us-east-1", lone, 50, None, managed=False, name="golden image")
    expired = {web_old: snapshot_of(ec2, web_old), web_mid: snapshot_of(ec2, web_mid)}
    snapshots_before = snapshot_ids(ec2)

    run = play(
        [
            {"name": "backup", "opsvault.aws_backup.ami_backup": {}, "register": "result"},
            purge_task("preview", check_mode=True),
            purge_task("purge"),
            purge_task("rerun"),
        ]
    )

    assert run.rc == 0, run.stdout
    [new_backup] = run.result("backup")["images"]
    preview, purge, rerun = run.result("preview"), run.result("purge"), run.result("rerun")
    assert preview["changed"] is True
    assert ids(preview["deregistered"]) == ids(purge["deregistered"]) == sorted(expired)
    assert ids(preview["deleted_snapshots"], "snapshot_id") == sorted(expired.values())

    assert purge["changed"] is True and purge["errors"] == [] and purge["as_of"] == TODAY.isoformat()
    assert purge["regions"] == ["us-east-1"]
    assert ids(purge["deleted_snapshots"], "snapshot_id") == sorted(expired.values())
    old = next(item for item in purge["deregistered"] if item["image_id"] == web_old)
    assert (old["source_instance_id"], old["delete_on"], old["reason"]) == (web, day(-13), "expired on " + day(-13))
    assert old["snapshot_ids"] == [expired[web_old]] and old["region"] == "us-east-1" and old["legacy"] is False
    reasons = kept_reasons(purge)
    assert reasons == {
        new_backup["image_id"]: "one of the newest 1 available backup(s) of {0} (keep_min)".format(web),
        web_later: "expires on " + day(2),
        web_unreadable: "DeleteOn tag 'someday' is not a date",
        lone_only: "one of the newest 1 available backup(s) of {0} (keep_min)".format(lone),
    }

    [warning] = purge["warnings"]
    assert web_unreadable in warning and "'someday'" in warning

    assert rerun["changed"] is False and rerun["deregistered"] == [] and rerun["deleted_snapshots"] == []

    remaining = set(fleet.images(ec2))
    assert remaining == {new_backup["image_id"], web_later, web_unreadable, lone_only, legacy, golden}
    assert snapshot_ids(ec2) == (snapshots_before - set(expired.values())) | {snapshot_of(ec2, new_backup["image_id"])}


def test_a_source_whose_newest_backup_is_pending_or_failed_is_held_back(aws, play):
    ec2 = aws.ec2("us-east-1")
    pending_source, failed_source, healthy_source = fleet.launch(ec2, {"Backup": ""}, count=3)
    held = {}
    for source, state in ((pending_source, "pending"), (failed_source, "failed")):
        older = [seed_backup(ec2, "us-east-1", source, age, 7 - age) for age in (20, 10)]
        held[source] = (state, older + [seed_backup(ec2, "us-east-1", source, 0, 7, state=state)])
    healthy_old = seed_backup(ec2, "us-east-1", healthy_source, 20, -13)
    healthy_new = seed_backup(ec2, "us-east-1", healthy_source, 1, 6)

    result = play([purge_task()]).result("purge")

    assert ids(result["deregistered"]) == [healthy_old]
    assert set(fleet.images(ec2)) == {image_id for _state, images in held.values() for image_id in images} | {
        healthy_new
    }
    reasons = kept_reasons(result)
    for source, (state, images) in held.items():
        for image_id in images:
            assert reasons[image_id] == (
                "the newest backup of {0}, {1}, is {2}: nothing of this source is purged until its latest "
                "backup is available".format(source, images[-1], state)
            )


def test_snapshots_shared_with_a_remaining_ami_stay_and_one_shared_by_two_expired_amis_goes_once(aws, play):
    ec2 = aws.ec2("us-east-1")
    first, second = fleet.launch(ec2, {"Backup": ""}, count=2)
    copied = seed_backup(ec2, "us-east-1", first, 20, -13)
    seed_backup(ec2, "us-east-1", first, 1, 6)
    copy = seed_backup(ec2, "us-east-1", second, 60, None, managed=False, name="copy of an old backup")
    fleet.share_snapshot("us-east-1", copied, copy)
    shared_by_expired_a = seed_backup(ec2, "us-east-1", second, 20, -13)
    shared_by_expired_b = seed_backup(ec2, "us-east-1", second, 15, -8)
    fleet.share_snapshot("us-east-1", shared_by_expired_a, shared_by_expired_b)
    seed_backup(ec2, "us-east-1", second, 1, 6)
    kept_snapshot, deleted_snapshot = snapshot_of(ec2, copied), snapshot_of(ec2, shared_by_expired_a)
    copied_name = fleet.images(ec2)[copied]["Name"]

    result = play([purge_task()]).result("purge")

    assert result["errors"] == []
    assert ids(result["deregistered"]) == sorted([copied, shared_by_expired_a, shared_by_expired_b])
    assert [item for item in result["skipped_resources"] if "snapshot_id" in item] == [
        {
            "resource": kept_snapshot,
            "snapshot_id": kept_snapshot,
            "image_id": copied,
            "name": copied_name,
            "region": "us-east-1",
            "reason": "also used by {0}, which stays registered".format(copy),
        }
    ]
    [deleted] = result["deleted_snapshots"]
    assert deleted["snapshot_id"] == deleted_snapshot
    assert sorted(deleted["image_ids"]) == sorted([shared_by_expired_a, shared_by_expired_b])
    remaining_snapshots = snapshot_ids(ec2)
    assert kept_snapshot in remaining_snapshots and deleted_snapshot not in remaining_snapshots
    assert snapshot_of(ec2, copy) == kept_snapshot


def test_a_snapshot_another_account_owns_stays_after_its_ami_is_deregistered(aws, play):
    ec2 = aws.ec2("us-east-1")
    [instance_id] = fleet.launch(ec2, {"Backup": ""})
    foreign_image = seed_backup(ec2, "us-east-1", instance_id, 20, -13)
    own_image = seed_backup(ec2, "us-east-1", instance_id, 15, -8)
    seed_backup(ec2, "us-east-1", instance_id, 1, 6)
    foreign_snapshot, own_snapshot = snapshot_of(ec2, foreign_image), snapshot_of(ec2, own_image)
    fleet.set_snapshot("us-east-1", foreign_snapshot, owner_id="999988887777")

    preview = play([purge_task(check_mode=True)]).result("purge")
    result = play([purge_task()]).result("purge")

    for outcome in (preview, result):
        assert outcome["errors"] == []
        assert ids(outcome["deregistered"]) == sorted([foreign_image, own_image])
        assert {item["image_id"]: item["snapshot_ids"] for item in outcome["deregistered"]} == {
            foreign_image: [],
            own_image: [own_snapshot],
        }
        assert ids(outcome["deleted_snapshots"], "snapshot_id") == [own_snapshot]
        assert [
            (item["snapshot_id"], item["reason"]) for item in outcome["skipped_resources"] if "snapshot_id" in item
        ] == [(foreign_snapshot, "owned by 999988887777, not by this account")]
    remaining = {snapshot["SnapshotId"] for snapshot in ec2.describe_snapshots()["Snapshots"]}
    assert foreign_snapshot in remaining and own_snapshot not in remaining
    assert foreign_image not in fleet.images(ec2)


def test_as_of_previews_a_later_purge_in_check_mode_and_keep_last_limits_the_count(aws, play):
    ec2 = aws.ec2("us-east-1")
    [web] = fleet.launch(ec2, {"Backup": ""})
    backups = {age: seed_backup(ec2, "us-east-1", web, age, 30 - age) for age in (1, 8, 15, 22)}
    images_before, snapshots_before = set(fleet.images(ec2)), snapshot_ids(ec2)

    run = play(
        [
            purge_task("today"),
            purge_task("in three weeks", as_of=day(21)),
            purge_task("keep last two", keep_last=2),
        ],
        check=True,
    )

    assert run.rc == 0, run.stdout
    assert run.result("today")["changed"] is False and run.result("today")["deregistered"] == []
    preview = run.result("in three weeks")
    assert preview["changed"] is True and preview["as_of"] == day(21)
    assert ids(preview["deregistered"]) == sorted([backups[22], backups[15]])
    assert ids(preview["deleted_snapshots"], "snapshot_id") == sorted(
        snapshot_of(ec2, backups[age]) for age in (15, 22)
    )
    limited = run.result("keep last two")
    assert ids(limited["deregistered"]) == sorted([backups[22], backups[15]])
    assert {item["reason"] for item in limited["deregistered"]} == {
        "beyond keep_last 2: available backup number {0} of {1}".format(number, web) for number in (3, 4)
    }
    assert set(fleet.images(ec2)) == images_before and snapshot_ids(ec2) == snapshots_before


def test_legacy_amis_are_adopted_only_when_asked(aws, play):
    ec2 = aws.ec2("us-east-1")
    [old_server] = fleet.launch(ec2, {"Name": "old server"})
    legacy_old = seed_backup(
        ec2, "us-east-1", old_server, 20, -13, managed=False, name="Lambda - {0} from a".format(old_server)
    )
    legacy_new = seed_backup(
        ec2, "us-east-1", old_server, 10, -3, managed=False, name="Lambda - {0} from b".format(old_server)
    )
    untagged = seed_backup(ec2, "us-east-1", old_server, 30, None, managed=False, name="hand-made")
    legacy_snapshot = snapshot_of(ec2, legacy_old)

    run = play([purge_task("default"), purge_task("adopting", adopt_legacy=True)])

    default, adopting = run.result("default"), run.result("adopting")
    assert default["changed"] is False and default["deregistered"] == [] and default["skipped_resources"] == []
    assert (
        "3 AMI(s) in us-east-1 without the CreatedBy marker left alone; adopt_legacy to include the 2 with a "
        "DeleteOn tag" in default["msg"]
    )
    assert adopting["changed"] is True
    [gone] = adopting["deregistered"]
    assert (gone["image_id"], gone["legacy"], gone["source_instance_id"]) == (legacy_old, True, old_server)
    assert ids(adopting["deleted_snapshots"], "snapshot_id") == [legacy_snapshot]
    assert kept_reasons(adopting) == {
        legacy_new: "one of the newest 1 available backup(s) of {0} (keep_min)".format(old_server)
    }
    assert set(fleet.images(ec2)) == {legacy_new, untagged}
    assert legacy_snapshot not in snapshot_ids(ec2)


def test_bad_options_fail_before_any_change_naming_the_value(aws, play):
    ec2 = aws.ec2("us-east-1")
    [web] = fleet.launch(ec2, {"Backup": ""})
    seed_backup(ec2, "us-east-1", web, 20, -13)
    seed_backup(ec2, "us-east-1", web, 1, 6)
    images_before, snapshots_before = set(fleet.images(ec2)), snapshot_ids(ec2)
    cases = {
        "as_of not a date": ({"as_of": "next friday"}, "as_of 'next friday' is not a date"),
        "as_of impossible date": ({"as_of": "2026-02-30"}, "as_of '2026-02-30' is not a date"),
        "as_of without dashes": ({"as_of": "20261201"}, "as_of '20261201' is not a date"),
        "keep_min zero": ({"keep_min": 0}, "keep_min must be at least 1"),
        "keep_last zero": ({"keep_last": 0}, "keep_last must be at least 1, got 0"),
        "unknown region": ({"regions": ["us-east-1", "eu-west-9"]}, "'eu-west-9'"),
        "no concurrency": ({"max_concurrency": 0}, "max_concurrency must be at least 1, got 0"),
    }
    run = play([purge_task(name, ignore_errors=True, **options) for name, (options, _message) in cases.items()])

    for name, (_options, message) in cases.items():
        result = run.result(name)
        assert result.get("failed") is True, (name, result)
        assert message in result["msg"], (name, result["msg"])
    assert set(fleet.images(ec2)) == images_before and snapshot_ids(ec2) == snapshots_before


@pytest.fixture
def refused(monkeypatch):
    """Make moto refuse DeregisterImage / DeleteSnapshot for chosen ids, as AWS does without permission."""
    images, snapshots = set(), set()
    deregister, delete = AmiBackend.deregister_image, EBSBackend.delete_snapshot

    def deregister_image(self, ami_id):
        if ami_id in images:
            raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")
        return deregister(self, ami_id)

    def delete_snapshot(self, snapshot_id):
        if snapshot_id in snapshots:
            raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")
        return delete(self, snapshot_id)

    monkeypatch.setattr(AmiBackend, "deregister_image", deregister_image)
    monkeypatch.setattr(EBSBackend, "delete_snapshot", delete_snapshot)
    return images, snapshots


def test_a_refused_deregister_or_delete_is_reported_the_rest_is_done_and_the_task_fails(aws, play, refused):
    ec2 = aws.ec2("eu-west-1")
    [web] = fleet.launch(ec2, {"Backup": ""})
    stuck_image = seed_backup(ec2, "eu-west-1", web, 30, -23)
    stuck_snapshot_image = seed_backup(ec2, "eu-west-1", web, 20, -13)
    clean = seed_backup(ec2, "eu-west-1", web, 10, -3)
    newest = seed_backup(ec2, "eu-west-1", web, 1, 6)
    snapshots = {image_id: snapshot_of(ec2, image_id) for image_id in (stuck_image, stuck_snapshot_image, clean)}
    stuck_name = fleet.images(ec2)[stuck_image]["Name"]
    refused[0].add(stuck_image)
    refused[1].add(snapshots[stuck_snapshot_image])

    run = play([purge_task(ignore_errors=True, regions=["eu-west-1"])], region="eu-west-1")

    result = run.result("purge")
    assert result["failed"] is True and result["changed"] is True
    assert "2 error(s): " in result["msg"] and stuck_image in result["msg"]
    assert sorted((e["resource"], e["region"], e["code"], e["action"]) for e in result["errors"]) == sorted(
        [
            (stuck_image, "eu-west-1", "UnauthorizedOperation", "deregister_image"),
            (snapshots[stuck_snapshot_image], "eu-west-1", "UnauthorizedOperation", "delete_snapshot"),
        ]
    )
    assert ids(result["deregistered"]) == sorted([stuck_snapshot_image, clean])
    assert ids(result["deleted_snapshots"], "snapshot_id") == [snapshots[clean]]
    not_touched = [item for item in result["skipped_resources"] if item.get("snapshot_id") == snapshots[stuck_image]]
    assert [(item["image_id"], item["name"], item["reason"]) for item in not_touched] == [
        (stuck_image, stuck_name, "not deleted: {0} could not be deregistered".format(stuck_image))
    ]
    assert set(fleet.images(ec2)) == {stuck_image, newest}
    remaining_snapshots = snapshot_ids(ec2)
    assert snapshots[stuck_image] in remaining_snapshots and snapshots[stuck_snapshot_image] in remaining_snapshots
    assert snapshots[clean] not in remaining_snapshots


def test_shipped_playbook_purges_several_regions_with_one_describe_images_per_region(aws, shipped_playbook):
    regions = ["us-east-1", "eu-west-1"]
    expired, kept = {}, {}
    for region in regions:
        ec2 = aws.ec2(region)
        for instance_id in fleet.launch(ec2, {"Backup": ""}, count=2):
            expired[seed_backup(ec2, region, instance_id, 20, -13)] = region
            expired[seed_backup(ec2, region, instance_id, 10, -3)] = region
            kept[seed_backup(ec2, region, instance_id, 1, 6)] = region
    # Empty values are what an AWX survey sends for unanswered questions: they mean "unset".
    extra_vars = {"ami_purge_regions": regions, "ami_purge_as_of": "", "ami_purge_keep_last": ""}

    def run(check):
        return shipped_playbook("ami_purge", extra_vars, check)

    preview, preview_stats = run(check=True)
    assert ids(preview.result("Deregister expired AMIs and delete their snapshots")["deregistered"]) == sorted(expired)
    assert preview_stats["mutating"] == 0
    preview_msg = preview.result("Summarise the purge")["msg"]
    assert "Would deregister 8 AMI(s)" in preview_msg and "Would delete 8 snapshot(s)" in preview_msg
    assert len(fleet.images(aws.ec2("us-east-1"))) + len(fleet.images(aws.ec2("eu-west-1"))) == 12

    purge, stats = run(check=False)
    result = purge.result("Deregister expired AMIs and delete their snapshots")
    assert sorted(result["regions"]) == sorted(regions) and result["as_of"] == TODAY.isoformat()
    assert {item["image_id"]: item["region"] for item in result["deregistered"]} == expired
    assert len(result["deleted_snapshots"]) == 8
    for region in regions:
        assert set(fleet.images(aws.ec2(region))) == {image_id for image_id, where in kept.items() if where == region}
        assert aws_proxy.count(stats, action="DescribeImages", region=region) == 1
        # The 4 snapshots' owners are described in batches of 1, 2 and 1, the first before any change.
        assert aws_proxy.count(stats, action="DescribeSnapshots", region=region) == 3
        assert aws_proxy.count(stats, action="DeregisterImage", region=region) == 4
        assert aws_proxy.count(stats, action="DeleteSnapshot", region=region) == 4
    assert stats["mutating"] == 16
    purge_msg = purge.result("Summarise the purge")["msg"]
    assert "Deregistered 8 AMI(s)" in purge_msg and "Deleted 8 snapshot(s)" in purge_msg


def test_a_future_as_of_is_refused_outside_check_mode_unless_allowed_and_previews_in_check_mode(aws, play):
    ec2 = aws.ec2("us-east-1")
    [source] = fleet.launch(ec2, {"Backup": ""})
    soon = seed_backup(ec2, "us-east-1", source, 2, 5)
    newest = seed_backup(ec2, "us-east-1", source, 1, 6)
    future = day(10)

    run = play(
        [
            purge_task("refused", ignore_errors=True, as_of=future),
            purge_task("preview", check_mode=True, as_of=future),
        ]
    )

    refused, preview = run.result("refused"), run.result("preview")
    assert refused["failed"] is True
    assert "as_of {0} is in the future".format(future) in refused["msg"] and "allow_future_as_of" in refused["msg"]
    assert ids(preview["deregistered"]) == [soon] and preview["deregistered"][0]["state"] == "planned"
    assert preview["msg"].startswith("us-east-1: check mode, nothing changed. Would deregister 1 AMI(s)")
    assert set(fleet.images(ec2)) == {soon, newest}

    allowed = play([purge_task("allowed", as_of=future, allow_future_as_of=True)]).result("allowed")
    assert ids(allowed["deregistered"]) == [soon]
    assert set(fleet.images(ec2)) == {newest}


def test_the_summary_says_what_went_and_what_stayed_and_why(aws, play):
    ec2 = aws.ec2("us-east-1")
    [source] = fleet.launch(ec2, {"Backup": ""})
    expired = seed_backup(ec2, "us-east-1", source, 9, -2)
    newest = seed_backup(ec2, "us-east-1", source, 1, 6)

    result = play([purge_task()]).result("purge")

    msg = result["msg"]
    assert "Deregistered 1 AMI(s): {0} of {1} (expired on {2})".format(expired, source, day(-2)) in msg
    assert "Deleted 1 snapshot(s)" in msg
    assert "Left alone 1 resource(s): {0}: one of the newest 1 available backup(s) of {1}".format(newest, source) in msg
