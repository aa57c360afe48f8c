"""opsvault.aws_backup.snapshot_purge through real ansible-playbook runs against moto."""

import datetime

import pytest
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_block_store import EBSBackend

from tests.harness import ansible_run
from tests.harness import aws_proxy
from tests.harness import fleet

REGION = "us-east-1"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}


def task(name, ignore_errors=None, check_mode=None, **params):
    return ansible_run.task("snapshot_purge", name, check_mode=check_mode, ignore_errors=ignore_errors, **params)


def list_snapshots(name):
    return {"name": name, "amazon.aws.ec2_snapshot_info": {"owner_ids": ["self"]}}


def days_ago(days):
    return datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days)


def date_in(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def seed(ec2, volume_id, age_days, tags=None, state=None, owner_id=None, region=REGION):
    snapshot_id = fleet.add_snapshot(ec2, volume_id, tags)
    fleet.set_snapshot(region, snapshot_id, state=state, started=days_ago(age_days), owner_id=owner_id)
    return snapshot_id


def expired(**extra):
    return dict(MANAGED, DeleteOn=date_in(-2), **extra)


def by_id(entries):
    return {entry["snapshot_id"]: entry for entry in entries}


def test_expired_managed_snapshots_are_deleted_keeping_the_newest_and_never_what_must_stay(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2, {"Name": "web"})
    volume_a = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    volume_b = fleet.add_volume(ec2, instance_id, "/dev/sdg")
    volume_c = fleet.add_volume(ec2, instance_id, "/dev/sdh")
    a_oldest, a_older, a_newest = (seed(ec2, volume_a, age, expired()) for age in (30, 20, 10))
    b_future = seed(ec2, volume_b, 40, dict(MANAGED, DeleteOn=date_in(5)))
    b_kept = seed(ec2, volume_b, 30, expired(Keep="yes"))
    b_newest = seed(ec2, volume_b, 1, dict(MANAGED, DeleteOn=date_in(7)))
    c_pending = seed(ec2, volume_c, 9, expired(), state="pending")
    c_newest = seed(ec2, volume_c, 3, expired())
    legacy = seed(ec2, volume_c, 50, {"DeleteOn": date_in(-30)})
    foreign = seed(ec2, volume_a, 50, expired(), owner_id="210987654321")
    image_id = ec2.create_image(InstanceId=instance_id, Name="web-ami")["ImageId"]
    [mapping] = ec2.describe_images(ImageIds=[image_id])["Images"][0]["BlockDeviceMappings"]
    ami_snapshot = mapping["Ebs"]["SnapshotId"]
    ec2.create_tags(Resources=[ami_snapshot], Tags=fleet.tag_list(expired()))
    fleet.set_snapshot(REGION, ami_snapshot, started=days_ago(60))

    run = play(
        [
            task("preview", check_mode=True),
            list_snapshots("after preview"),
            task("report", action="report"),
            task("purge"),
            task("again"),
        ]
    )

    assert run.rc == 0, run.stdout
    preview, report, purge, again = (run.result(name) for name in ("preview", "report", "purge", "again"))
    assert sorted(by_id(purge["deleted_snapshots"])) == sorted([a_oldest, a_older])
    assert by_id(purge["deleted_snapshots"])[a_older]["reason"] == "expired on {0}".format(date_in(-2))
    assert by_id(purge["deleted_snapshots"])[a_older]["volume_id"] == volume_a
    assert by_id(purge["deleted_snapshots"])[a_older]["state"] == "deleted"
    assert purge["changed"] is True and purge["errors"] == [] and purge["archived_snapshots"] == []
    assert purge["as_of"] == date_in(0) and purge["regions"] == [REGION]
    assert purge["msg"].startswith("{0}: Deleted 2 snapshot(s): ".format(REGION))
    assert "of {0} (expired on {1})".format(volume_a, date_in(-2)) in purge["msg"]
    remaining = fleet.snapshots(ec2)
    assert a_oldest not in remaining and a_older not in remaining
    for kept_id in (a_newest, b_future, b_kept, b_newest, c_pending, c_newest, legacy, ami_snapshot):
        assert kept_id in remaining
    assert foreign in fleet.ec2_backend(REGION).snapshots

    kept = {snapshot_id: entry["reason"] for snapshot_id, entry in by_id(purge["skipped_resources"]).items()}
    assert all(entry["resource"] == entry["snapshot_id"] for entry in purge["skipped_resources"])
    assert by_id(purge["skipped_resources"])[b_kept]["volume_id"] == volume_b
    assert kept[ami_snapshot] == "used by registered AMI {0}".format(image_id)
    assert kept[a_newest] == "one of the newest 1 completed snapshot(s) of {0} (keep_min)".format(volume_a)
    assert kept[b_kept] == "tagged Keep=yes"
    assert kept[b_future] == "expires on {0}".format(date_in(5))
    assert kept[c_pending] == "snapshot is pending"
    assert kept[foreign] == "owned by 210987654321, not this account"
    assert legacy not in kept

    assert preview["changed"] is True and sorted(by_id(preview["deleted_snapshots"])) == sorted([a_oldest, a_older])
    assert {entry["state"] for entry in preview["deleted_snapshots"]} == {"planned"}
    assert preview["msg"].startswith("{0}: check mode, nothing changed. Would delete 2 snapshot(s): ".format(REGION))
    assert {a_oldest, a_older} <= {snapshot["snapshot_id"] for snapshot in run.result("after preview")["snapshots"]}
    assert report["changed"] is False and report["deleted_snapshots"] == [] and report["archived_snapshots"] == []
    assert sorted(by_id(report["purgeable"])) == sorted([a_oldest, a_older])
    assert again["changed"] is False and again["deleted_snapshots"] == []


def test_stale_modes_with_stale_include_unmanaged_find_exactly_old_snapshots_of_deleted_and_unattached_volumes(
    aws, play
):
    ec2 = aws.ec2(REGION)
    [running] = fleet.launch(ec2)
    [stopped] = fleet.launch(ec2, state="stopped")
    attached = fleet.add_volume(ec2, running, "/dev/sdf")
    on_stopped = fleet.add_volume(ec2, stopped, "/dev/sdf")
    loose = fleet.add_volume(ec2)
    doomed = fleet.add_volume(ec2)
    attached_old = seed(ec2, attached, 90)
    stopped_old = seed(ec2, on_stopped, 90)
    loose_old, loose_young = seed(ec2, loose, 45), seed(ec2, loose, 10)
    gone_old, gone_young = seed(ec2, doomed, 45), seed(ec2, doomed, 10)
    gone_kept = seed(ec2, doomed, 45, {"Keep": "true"})
    ec2.delete_volume(VolumeId=doomed)

    run = play(
        [
            task("volume gone", stale="volume_gone", stale_include_unmanaged=True),
            task("unattached", stale="unattached", stale_min_age="30d", stale_include_unmanaged=True),
        ]
    )

    assert run.rc == 0, run.stdout
    gone, unattached = run.result("volume gone"), run.result("unattached")
    assert [entry["snapshot_id"] for entry in gone["deleted_snapshots"]] == [gone_old]
    assert gone["deleted_snapshots"][0]["reason"] == (
        "stale: volume {0} no longer exists (45 days old); "
        "not made by this collection (stale_include_unmanaged)".format(doomed)
    )
    assert gone["deleted_snapshots"][0]["legacy"] is True and gone["deleted_snapshots"][0]["managed"] is False
    assert {entry["snapshot_id"]: entry["reason"] for entry in gone["skipped_resources"]} == {
        gone_kept: "tagged Keep=true",
        gone_young: "volume {0} no longer exists, but the snapshot is 10 days old; stale_min_age is 30 days".format(
            doomed
        ),
    }
    assert sorted(by_id(unattached["deleted_snapshots"])) == sorted([stopped_old, loose_old])
    assert "attached to no running instance" in by_id(unattached["deleted_snapshots"])[loose_old]["reason"]
    assert by_id(unattached["skipped_resources"])[loose_young]["reason"] == (
        "volume {0} is attached to no running instance, but the snapshot is 10 days old; "
        "stale_min_age is 30 days".format(loose)
    )
    assert sorted(fleet.snapshots(ec2)) == sorted([attached_old, loose_young, gone_young, gone_kept])


def test_stale_volume_gone_deletes_only_the_collections_snapshots_unless_told_otherwise(aws, play):
    ec2 = aws.ec2(REGION)
    doomed = fleet.add_volume(ec2)
    untagged = seed(ec2, doomed, 60)
    lambda_made = seed(ec2, doomed, 50, {"DeleteOn": date_in(30)})
    managed_old = seed(ec2, doomed, 40, dict(MANAGED, DeleteOn=date_in(30), VolumeId=doomed))
    managed_young = seed(ec2, doomed, 3, dict(MANAGED, DeleteOn=date_in(30), VolumeId=doomed))
    ec2.delete_volume(VolumeId=doomed)

    run = play([task("preview", check_mode=True, stale="volume_gone"), task("purge", stale="volume_gone")])

    assert run.rc == 0, run.stdout
    preview, purge = run.result("preview"), run.result("purge")
    assert [entry["snapshot_id"] for entry in preview["deleted_snapshots"]] == [managed_old]
    assert [entry["snapshot_id"] for entry in purge["deleted_snapshots"]] == [managed_old]
    assert purge["deleted_snapshots"][0]["managed"] is True
    assert purge["deleted_snapshots"][0]["reason"] == "stale: volume {0} no longer exists (40 days old)".format(doomed)
    assert by_id(purge["skipped_resources"])[managed_young]["reason"] == (
        "one of the newest 1 completed snapshot(s) of {0} (keep_min); volume {0} no longer exists, "
        "but the snapshot is 3 days old; stale_min_age is 30 days".format(doomed)
    )
    assert sorted(fleet.snapshots(ec2)) == sorted([untagged, lambda_made, managed_young])


def test_archive_moves_expired_snapshots_to_the_archive_tier_and_keeps_what_aws_cannot_archive(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    volume_a = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    volume_b = fleet.add_volume(ec2, instance_id, "/dev/sdg")
    archivable = seed(ec2, volume_a, 40, expired())
    archived_before = seed(ec2, volume_a, 35, expired())
    ec2.modify_snapshot_tier(SnapshotId=archived_before, StorageTier="archive")
    seed(ec2, volume_a, 2, expired())
    failed = seed(ec2, volume_b, 40, expired(), state="error")
    seed(ec2, volume_b, 2, expired())

    run = play([task("archive", action="archive"), task("archive again", action="archive")])

    assert run.rc == 0, run.stdout
    first, again = run.result("archive"), run.result("archive again")
    assert [entry["snapshot_id"] for entry in first["archived_snapshots"]] == [archivable]
    assert first["archived_snapshots"][0]["state"] == "archived"
    assert first["deleted_snapshots"] == [] and first["changed"] is True
    assert first["msg"].startswith("{0}: Archived 1 snapshot(s): {1} of ".format(REGION, archivable))
    kept = {entry["snapshot_id"]: entry["reason"] for entry in first["skipped_resources"]}
    assert kept[archived_before] == "expired on {0}; already in the archive tier".format(date_in(-2))
    assert kept[failed] == "expired on {0}; AWS archives only completed snapshots".format(date_in(-2))
    snapshots = fleet.snapshots(ec2)
    assert len(snapshots) == 5
    assert snapshots[archivable]["StorageTier"] == "archive"
    assert snapshots[failed]["StorageTier"] == "standard"
    assert again["changed"] is False and again["archived_snapshots"] == []
    assert (
        "already in the archive tier" in {e["snapshot_id"]: e["reason"] for e in again["skipped_resources"]}[archivable]
    )


def test_bad_input_fails_clearly_before_any_change(aws, play):
    ec2 = aws.ec2(REGION)
    volume_id = fleet.add_volume(ec2)
    doomed = seed(ec2, volume_id, 40, expired())
    seed(ec2, volume_id, 1, expired())

    run = play(
        [
            task("unknown stale", ignore_errors=True, stale="orphaned"),
            task("negative age", ignore_errors=True, stale="volume_gone", stale_min_age="-5"),
            task("negative keep_min", ignore_errors=True, keep_min=-1),
            task("keep_min 0", ignore_errors=True, keep_min=0),
            task("bad as_of", ignore_errors=True, as_of="next tuesday"),
            task("future as_of", ignore_errors=True, as_of=date_in(60)),
        ]
    )

    names = ("unknown stale", "negative age", "negative keep_min", "keep_min 0", "bad as_of", "future as_of")
    messages = {name: run.result(name) for name in names}
    assert all(result["failed"] is True for result in messages.values())
    assert (
        "value of stale must be one of: none, volume_gone, unattached, got: orphaned"
        in messages["unknown stale"]["msg"]
    )
    assert messages["negative age"]["msg"] == "stale_min_age must not be negative, got '-5'"
    keep_min_refused = "keep_min must be at least 1 (the newest available backup is never purged), got {0}"
    assert messages["negative keep_min"]["msg"] == keep_min_refused.format(-1)
    assert messages["keep_min 0"]["msg"] == keep_min_refused.format(0)
    assert messages["bad as_of"]["msg"].startswith("as_of 'next tuesday' is not a date: use YYYY-MM-DD")
    assert messages["future as_of"]["msg"].startswith("as_of {0} is in the future".format(date_in(60)))
    assert "allow_future_as_of: true" in messages["future as_of"]["msg"]
    assert doomed in fleet.snapshots(ec2)


def test_keep_last_and_an_allowed_future_as_of_purge_before_delete_on(aws, play):
    ec2 = aws.ec2(REGION)
    volume_a, volume_b = fleet.add_volume(ec2), fleet.add_volume(ec2)
    a_old, a_mid, a_new = (seed(ec2, volume_a, age, dict(MANAGED, DeleteOn=date_in(40))) for age in (3, 2, 1))
    b_old, b_new = (seed(ec2, volume_b, age, dict(MANAGED, DeleteOn=date_in(10))) for age in (3, 1))

    run = play(
        [
            task("keep last", keep_last=2),
            task("future", as_of=date_in(20), allow_future_as_of=True),
        ]
    )

    assert run.rc == 0, run.stdout
    keep_last, future = run.result("keep last"), run.result("future")
    assert [entry["snapshot_id"] for entry in keep_last["deleted_snapshots"]] == [a_old]
    assert keep_last["deleted_snapshots"][0][
        "reason"
    ] == "beyond keep_last 2: completed snapshot number 3 of {0}".format(volume_a)
    assert [entry["snapshot_id"] for entry in future["deleted_snapshots"]] == [b_old]
    assert future["as_of"] == date_in(20)
    assert sorted(fleet.snapshots(ec2)) == sorted([a_mid, a_new, b_new])


@pytest.fixture
def refused(monkeypatch):
    """Make moto refuse DeleteSnapshot for chosen ids, as AWS does without permission."""
    snapshot_ids = set()
    delete = EBSBackend.delete_snapshot

    def delete_snapshot(self, snapshot_id):
        if snapshot_id in snapshot_ids:
            raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")
        return delete(self, snapshot_id)

    monkeypatch.setattr(EBSBackend, "delete_snapshot", delete_snapshot)
    return snapshot_ids


def test_a_refused_delete_is_reported_the_rest_is_done_and_the_task_fails(aws, play, refused):
    ec2 = aws.ec2(REGION)
    volume_id = fleet.add_volume(ec2)
    stuck, done = seed(ec2, volume_id, 30, expired()), seed(ec2, volume_id, 20, expired())
    newest = seed(ec2, volume_id, 1, expired())
    refused.add(stuck)

    run = play([task("purge", ignore_errors=True)])

    result = run.result("purge")
    assert result["failed"] is True and result["changed"] is True
    assert "1 error(s): {0} in {1} (delete_snapshot): UnauthorizedOperation".format(stuck, REGION) in result["msg"]
    assert [(e["resource"], e["region"], e["action"], e["code"]) for e in result["errors"]] == [
        (stuck, REGION, "delete_snapshot", "UnauthorizedOperation")
    ]
    assert [entry["snapshot_id"] for entry in result["deleted_snapshots"]] == [done]
    assert sorted(fleet.snapshots(ec2)) == sorted([stuck, newest])


def test_shipped_playbook_previews_with_no_mutating_call_then_purges_with_one_describe_of_each_kind_per_region(
    aws, shipped_playbook
):
    regions = ["us-east-1", "eu-west-1"]
    expired_ids, kept_ids = {}, {}
    for region in regions:
        ec2 = aws.ec2(region)
        for volume_id in (fleet.add_volume(ec2), fleet.add_volume(ec2)):
            for age in (30, 20):
                expired_ids[seed(ec2, volume_id, age, expired(), region=region)] = region
            kept_ids[seed(ec2, volume_id, 1, expired(), region=region)] = region
    extra_vars = {"snapshot_purge_regions": regions, "snapshot_purge_as_of": "", "snapshot_purge_keep_min": ""}

    def run(check):
        return shipped_playbook("snapshot_purge", extra_vars, check)

    preview, preview_stats = run(check=True)
    assert preview_stats["mutating"] == 0
    planned = preview.result("Delete, archive or list expired and stale snapshots")
    assert {entry["snapshot_id"]: entry["region"] for entry in planned["deleted_snapshots"]} == expired_ids
    assert "check mode, nothing changed. Would delete 8 snapshot(s): " in preview.result("Summarise the purge")["msg"]
    assert "Left alone 4 resource(s): " in preview.result("Summarise the purge")["msg"]
    assert sum(len(fleet.snapshots(aws.ec2(region))) for region in regions) == 12

    purge, stats = run(check=False)
    result = purge.result("Delete, archive or list expired and stale snapshots")
    assert {entry["snapshot_id"]: entry["region"] for entry in result["deleted_snapshots"]} == expired_ids
    for region in regions:
        assert set(fleet.snapshots(aws.ec2(region))) == {sid for sid, where in kept_ids.items() if where == region}
        assert aws_proxy.count(stats, action="DescribeSnapshots", region=region) == 1
        assert aws_proxy.count(stats, action="DescribeImages", region=region) == 1
        assert aws_proxy.count(stats, action="DeleteSnapshot", region=region) == 4
    assert stats["mutating"] == 8
    assert "Deleted 8 snapshot(s): " in purge.result("Summarise the purge")["msg"]
    assert "(and 5 more)" in purge.result("Summarise the purge")["msg"]
