"""opsvault.aws_backup.vault_guard through real ansible-playbook runs against moto.

moto 5.2.5 has no snapshot lock, no AMI deregistration protection and no Recycle Bin; the harness adds
them as AWS documents them (tests/harness/moto_snapshot_lock.py, moto_image_protection.py, moto_rbin.py).
"""

import datetime

from tests.harness import ansible_run
from tests.harness import fleet
from tests.harness import moto_rbin
from tests.harness.moto_server import ACCOUNT_ID

REGION = "us-east-1"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}


def task(name, check_mode=None, ignore_errors=None, **params):
    return ansible_run.task("vault_guard", name, check_mode=check_mode, ignore_errors=ignore_errors, **params)


def date_in(days):
    return (datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=days)).isoformat()


def start_of(day):
    return datetime.datetime.combine(datetime.date.fromisoformat(day), datetime.time(0, tzinfo=datetime.timezone.utc))


def managed_snapshot(ec2, volume_id, delete_on=None, **tags):
    tags = dict(MANAGED, **tags)
    if delete_on:
        tags["DeleteOn"] = delete_on
    return fleet.add_snapshot(ec2, volume_id, tags)


def locks(ec2):
    return {lock["SnapshotId"]: lock for lock in ec2.describe_locked_snapshots()["Snapshots"]}


def managed_image(ec2, instance_id, name, delete_on):
    image_id = ec2.create_image(InstanceId=instance_id, Name=name)["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=fleet.tag_list(dict(MANAGED, DeleteOn=delete_on)))
    return image_id


def protection(ec2, image_id):
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeregistrationProtection"]


def rbin_rules(aws, resource_type):
    return aws.client("rbin", REGION).list_rules(ResourceType=resource_type)["Rules"]


def test_locks_and_protects_managed_backups_until_their_delete_on_and_a_rerun_changes_nothing(
    aws, counting_proxy, tmp_path
):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2, {"Name": "web"})
    volume_id = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    to_lock = managed_snapshot(ec2, volume_id, date_in(7))
    expiring = managed_snapshot(ec2, volume_id, date_in(0))
    undated = managed_snapshot(ec2, volume_id)
    unmanaged = fleet.add_snapshot(ec2, volume_id, {"DeleteOn": date_in(7)})
    image_id = managed_image(ec2, instance_id, "web-backup", date_in(14))
    expired_image = managed_image(ec2, instance_id, "web-old", date_in(-1))

    def run(*tasks):
        counting_proxy.reset()
        playbook = ansible_run.run_playbook(
            ansible_run.aws_play(counting_proxy.endpoint, list(tasks), region=REGION),
            tmp_path,
            endpoint=counting_proxy.endpoint,
        )
        assert playbook.rc == 0, playbook.stdout
        return playbook, counting_proxy.stats()

    preview_run, preview_stats = run(task("preview", check_mode=True))
    preview = preview_run.result("preview")
    assert preview_stats["mutating"] == 0
    assert locks(ec2) == {} and protection(ec2, image_id) == "disabled"
    assert preview["changed"] is True
    assert [item["snapshot_id"] for item in preview["locked_snapshots"]] == [to_lock]
    assert preview["locked_snapshots"][0]["state"] == "planned"
    assert "Would lock 1 snapshot(s)" in preview["msg"]

    guard_run, guard_stats = run(task("guard"))
    guarded = guard_run.result("guard")
    assert guarded["changed"] is True
    assert guard_stats["requests"]["ec2:LockSnapshot"] == 1
    assert guard_stats["requests"]["ec2:EnableImageDeregistrationProtection"] == 1
    [locked] = guarded["locked_snapshots"]
    assert locked["snapshot_id"] == to_lock and locked["lock_mode"] == "governance"
    assert locked["lock_state"] == "governance"
    lock = locks(ec2)[to_lock]
    assert lock["LockState"] == "governance"
    assert lock["LockExpiresOn"] == start_of(date_in(7))
    assert set(locks(ec2)) == {to_lock}
    assert [item["image_id"] for item in guarded["protected_images"]] == [image_id]
    assert protection(ec2, image_id) == "enabled" and protection(ec2, expired_image) == "disabled"
    skipped = {entry["resource"]: entry["reason"] for entry in guarded["skipped_resources"]}
    assert "has come" in skipped[expiring] and "no DeleteOn" in skipped[undated]
    assert "has come" in skipped[expired_image]
    assert unmanaged not in skipped

    again_run, again_stats = run(task("again"))
    again = again_run.result("again")
    assert again["changed"] is False
    assert again_stats["mutating"] == 0
    assert again["locked_snapshots"] == [] and again["protected_images"] == []
    again_skipped = {entry["resource"]: entry for entry in again["skipped_resources"]}
    assert again_skipped[to_lock]["locked_until"] == start_of(date_in(7)).isoformat()
    assert "already protected" in again_skipped[image_id]["reason"]


def test_compliance_locks_with_a_cooling_off_period_and_a_locked_region_level_recycle_bin_rule(aws, play):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    volume_id = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    snapshot_id = managed_snapshot(ec2, volume_id, date_in(3))
    recycle_bin = {"retention_days": 14, "selection": "region", "lock": True, "unlock_delay_days": 10}

    run = play(
        [
            task("guard", lock_mode="compliance", cool_off_period=24, protect_images=False, recycle_bin=recycle_bin),
            task("again", lock_mode="compliance", cool_off_period=24, protect_images=False, recycle_bin=recycle_bin),
        ]
    )

    assert run.rc == 0, run.stdout
    guarded, again = run.result("guard"), run.result("again")
    lock = locks(ec2)[snapshot_id]
    assert lock["LockState"] == "compliance-cooloff" and lock["CoolOffPeriod"] == 24
    assert sorted(rule["resource_type"] for rule in guarded["retention_rules"]) == ["EBS_SNAPSHOT", "EC2_IMAGE"]
    for resource_type in ("EBS_SNAPSHOT", "EC2_IMAGE"):
        [rule] = rbin_rules(aws, resource_type)
        assert rule["LockState"] == "locked"
        assert rule["RetentionPeriod"] == {"RetentionPeriodValue": 14, "RetentionPeriodUnit": "DAYS"}
        detail = aws.client("rbin", REGION).get_rule(Identifier=rule["Identifier"])
        assert detail["LockConfiguration"]["UnlockDelay"]["UnlockDelayValue"] == 10
    assert again["changed"] is False and again["retention_rules"] == []
    assert len(rbin_rules(aws, "EBS_SNAPSHOT")) == 1


def test_a_tag_level_rule_is_created_once_and_a_changed_retention_updates_it(aws, play):
    preview_run = play(
        [
            task(
                "preview",
                check_mode=True,
                lock_snapshots=False,
                protect_images=False,
                recycle_bin={"retention_days": 7},
            )
        ]
    )
    assert preview_run.rc == 0, preview_run.stdout
    planned = preview_run.result("preview")["retention_rules"]
    assert sorted((item["resource_type"], item["state"], item["rule_id"]) for item in planned) == [
        ("EBS_SNAPSHOT", "planned", None),
        ("EC2_IMAGE", "planned", None),
    ]
    assert rbin_rules(aws, "EBS_SNAPSHOT") == [] and rbin_rules(aws, "EC2_IMAGE") == []

    run = play(
        [
            task(
                "create",
                lock_snapshots=False,
                protect_images=False,
                recycle_bin={"retention_days": 7, "resource_types": ["EBS_SNAPSHOT"]},
            ),
            task(
                "again",
                lock_snapshots=False,
                protect_images=False,
                recycle_bin={"retention_days": 7, "resource_types": ["EBS_SNAPSHOT"]},
            ),
            task(
                "longer",
                lock_snapshots=False,
                protect_images=False,
                recycle_bin={"retention_days": 30, "resource_types": ["EBS_SNAPSHOT"]},
            ),
        ]
    )

    assert run.rc == 0, run.stdout
    created, again, longer = (run.result(name) for name in ("create", "again", "longer"))
    [rule] = rbin_rules(aws, "EBS_SNAPSHOT")
    assert created["retention_rules"][0]["rule_id"] == rule["Identifier"]
    assert created["retention_rules"][0]["steps"] == ["create"]
    assert again["changed"] is False
    assert longer["retention_rules"][0]["steps"] == ["update"]
    assert rule["RetentionPeriod"]["RetentionPeriodValue"] == 30
    detail = aws.client("rbin", REGION).get_rule(Identifier=rule["Identifier"])
    assert detail["ResourceTags"] == [{"ResourceTagKey": "CreatedBy", "ResourceTagValue": "opsvault.aws_backup"}]
    assert rbin_rules(aws, "EC2_IMAGE") == []


def test_bad_input_names_the_option_and_the_value(aws, play):
    run = play(
        [
            task("cool_off", ignore_errors=True, lock_mode="compliance", cool_off_period=100),
            task("mode", ignore_errors=True, lock_mode="forever"),
            task("retention", ignore_errors=True, recycle_bin={"retention_days": 400}),
            task("lock_tagged", ignore_errors=True, recycle_bin={"retention_days": 7, "lock": True}),
            task("no_cool_off", ignore_errors=True, lock_mode="compliance"),
        ]
    )

    assert run.rc == 0, run.stdout
    messages = {
        name: run.result(name)["msg"] for name in ("cool_off", "mode", "retention", "lock_tagged", "no_cool_off")
    }
    assert all(run.result(name)["failed"] for name in messages)
    assert "cool_off_period" in messages["cool_off"] and "100" in messages["cool_off"]
    assert "lock_mode" in messages["mode"] and "forever" in messages["mode"]
    assert "recycle_bin.retention_days" in messages["retention"] and "400" in messages["retention"]
    assert "selection region" in messages["lock_tagged"]
    assert "cool_off_period" in messages["no_cool_off"]


def test_a_locked_rule_with_another_retention_is_reported_not_changed(aws, play):
    rbin = aws.client("rbin", REGION)
    from ansible_collections.opsvault.aws_backup.plugins.module_utils.guard import rule_description

    rule = rbin.create_rule(
        ResourceType="EBS_SNAPSHOT",
        RetentionPeriod={"RetentionPeriodValue": 7, "RetentionPeriodUnit": "DAYS"},
        Description=rule_description("EBS_SNAPSHOT", "region"),
        LockConfiguration={"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}},
    )
    settings = {"retention_days": 21, "resource_types": ["EBS_SNAPSHOT"], "selection": "region", "lock": True}

    run = play([task("guard", lock_snapshots=False, protect_images=False, recycle_bin=settings)])

    assert run.rc == 0, run.stdout
    guarded = run.result("guard")
    assert guarded["changed"] is False
    [entry] = guarded["skipped_resources"]
    assert entry["rule_id"] == rule["Identifier"] and "can't be changed" in entry["reason"]
    assert rbin.get_rule(Identifier=rule["Identifier"])["RetentionPeriod"]["RetentionPeriodValue"] == 7
    assert moto_rbin.rbin_backends[ACCOUNT_ID][REGION].rules[rule["Identifier"]].lock_state == "locked"


def test_the_shipped_playbook_locks_and_prints_the_summary(aws, shipped_playbook):
    ec2 = aws.ec2(REGION)
    [instance_id] = fleet.launch(ec2)
    volume_id = fleet.add_volume(ec2, instance_id, "/dev/sdf")
    snapshot_id = managed_snapshot(ec2, volume_id, date_in(5))

    run, stats = shipped_playbook("vault_guard", {"vault_guard_recycle_bin": {"retention_days": 10}})

    result = run.result("Lock snapshots, protect AMIs and keep the Recycle Bin rules")
    assert [item["snapshot_id"] for item in result["locked_snapshots"]] == [snapshot_id]
    assert stats["requests"]["ec2:LockSnapshot"] == 1 and stats["requests"]["rbin:CreateRule"] == 2
    assert run.result("Summarise the locks")["msg"] == result["msg"]
    assert "Locked 1 snapshot(s)" in result["msg"]
    assert locks(ec2)[snapshot_id]["LockState"] == "governance"
