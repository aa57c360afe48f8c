"""The planners of vault_guard and the holds of the purges (module_utils/guard.py)."""

import datetime

import pytest
from botocore.exceptions import ClientError

from ansible_collections.opsvault.aws_backup.plugins.module_utils import guard
from ansible_collections.opsvault.aws_backup.plugins.modules import vault_guard
from tests.harness.module_options import options_of

NOW = datetime.datetime(2026, 11, 23, 1, 0, 0, tzinfo=datetime.timezone.utc)
ACCOUNT = "123456789012"
REGION = "eu-west-1"


def tags(**values):
    return [{"Key": key, "Value": value} for key, value in values.items()]


def snapshot(snapshot_id, delete_on=None, state="completed", owner=ACCOUNT, managed=True):
    values = {"CreatedBy": "opsvault.aws_backup"} if managed else {}
    if delete_on:
        values["DeleteOn"] = delete_on
    return {"SnapshotId": snapshot_id, "State": state, "OwnerId": owner, "Tags": tags(**values)}


def lock(snapshot_id, state, expires):
    return {"SnapshotId": snapshot_id, "LockState": state, "LockExpiresOn": expires}


def at(day):
    return datetime.datetime.fromisoformat(day + "T00:00:00+00:00")


def options(**params):
    return options_of(vault_guard, **params)


def test_each_managed_snapshot_is_locked_until_the_start_of_its_delete_on_day():
    snapshots = [
        snapshot("snap-a", "2026-12-01"),
        snapshot("snap-today", "2026-11-23"),
        snapshot("snap-undated"),
        snapshot("snap-bad", "soon"),
        snapshot("snap-error", "2026-12-01", state="error"),
        snapshot("snap-foreign", "2026-12-01", owner="210987654321"),
        snapshot("snap-unmanaged", "2026-12-01", managed=False),
    ]

    todo, skipped = guard.plan_snapshot_locks(REGION, snapshots, {}, options(), NOW, ACCOUNT)

    assert [item["snapshot_id"] for item in todo] == ["snap-a"]
    assert todo[0]["locked_until"] == "2026-12-01T00:00:00+00:00"
    assert todo[0]["lock_mode"] == "governance" and todo[0]["cool_off_period"] is None
    reasons = {entry["resource"]: entry["reason"] for entry in skipped}
    assert set(reasons) == {"snap-today", "snap-undated", "snap-bad", "snap-error"}
    assert "has come" in reasons["snap-today"] and "no DeleteOn" in reasons["snap-undated"]
    assert "'soon'" in reasons["snap-bad"]


def test_an_existing_lock_long_enough_is_left_alone_a_shorter_one_is_extended_and_compliance_stays_compliance():
    snapshots = [
        snapshot("snap-long", "2026-12-01"),
        snapshot("snap-short", "2026-12-01"),
        snapshot("snap-c", "2026-12-01"),
    ]
    locks = {
        "snap-long": lock("snap-long", "governance", at("2026-12-05")),
        "snap-short": lock("snap-short", "governance", at("2026-11-25")),
        "snap-c": lock("snap-c", "compliance", at("2026-11-25")),
    }

    todo, skipped = guard.plan_snapshot_locks(REGION, snapshots, locks, options(), NOW, ACCOUNT)

    assert [entry["resource"] for entry in skipped] == ["snap-long"]
    assert skipped[0]["locked_until"] == "2026-12-05T00:00:00+00:00"
    by_id = {item["snapshot_id"]: item for item in todo}
    assert by_id["snap-short"]["lock_mode"] == "governance"
    assert by_id["snap-short"]["previous_lock"] == {"state": "governance", "until": "2026-11-25T00:00:00+00:00"}
    assert by_id["snap-c"]["lock_mode"] == "compliance" and by_id["snap-c"]["cool_off_period"] is None


def test_an_expired_lock_does_not_count():
    locks = {"snap-a": lock("snap-a", "expired", at("2026-11-20"))}

    todo, _skipped = guard.plan_snapshot_locks(REGION, [snapshot("snap-a", "2026-12-01")], locks, options(), NOW)

    assert todo[0]["previous_lock"] is None


def test_compliance_carries_the_cooling_off_period():
    todo, _skipped = guard.plan_snapshot_locks(
        REGION, [snapshot("snap-a", "2026-12-01")], {}, options(lock_mode="compliance", cool_off_period=24), NOW
    )

    assert todo[0]["lock_mode"] == "compliance" and todo[0]["cool_off_period"] == 24


@pytest.mark.parametrize(
    "params, message",
    [
        (
            dict(lock_mode="compliance", cool_off_period=100),
            "cool_off_period must be between 1 and 72 hours (AWS's limits), got 100",
        ),
        (dict(lock_mode="compliance"), "lock_mode compliance needs cool_off_period"),
        (dict(cool_off_period=5), "cool_off_period 5 needs lock_mode compliance"),
        (dict(recycle_bin={"retention_days": 0}), "recycle_bin.retention_days must be between 1 and 365 days"),
        (dict(recycle_bin={"retention_days": 400}), "got 400"),
        (dict(recycle_bin={"retention_days": 7, "lock": True}), "needs recycle_bin.selection region"),
        (
            dict(recycle_bin={"retention_days": 7, "lock": True, "selection": "region", "unlock_delay_days": 3}),
            "recycle_bin.unlock_delay_days must be between 7 and 30 days (AWS's limits), got 3",
        ),
        (dict(recycle_bin={"retention_days": 7, "resource_types": []}), "recycle_bin.resource_types must name"),
    ],
)
def test_bad_input_names_the_option_and_the_value(params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options(**params)


def test_compliance_without_a_cooling_off_period_is_an_explicit_zero():
    parsed = options(lock_mode="compliance", cool_off_period=0)

    assert parsed["lock_mode"] == "compliance" and parsed["cool_off_period"] is None


def image(image_id, delete_on, protection="disabled", state="available", managed=True):
    values = {"CreatedBy": "opsvault.aws_backup", "DeleteOn": delete_on} if managed else {"DeleteOn": delete_on}
    return {
        "ImageId": image_id,
        "Name": image_id + "-name",
        "State": state,
        "OwnerId": ACCOUNT,
        "DeregistrationProtection": protection,
        "Tags": tags(**values),
    }


def test_images_are_protected_unless_expired_pending_or_already_protected_as_asked():
    images = [
        image("ami-new", "2026-12-01"),
        image("ami-done", "2026-12-01", protection="enabled"),
        image("ami-cooldown", "2026-12-01", protection="enabled-with-cooldown"),
        image("ami-expired", "2026-11-20"),
        image("ami-pending", "2026-12-01", state="pending"),
        image("ami-unmanaged", "2026-12-01", managed=False),
    ]

    todo, skipped = guard.plan_image_protection(REGION, images, options(), NOW, ACCOUNT)

    assert sorted(item["image_id"] for item in todo) == ["ami-cooldown", "ami-new"]
    assert sorted(entry["resource"] for entry in skipped) == ["ami-done", "ami-expired", "ami-pending"]
    with_cooldown, _skipped = guard.plan_image_protection(
        REGION, images, options(deregistration_cooldown=True), NOW, ACCOUNT
    )
    assert sorted(item["image_id"] for item in with_cooldown) == ["ami-done", "ami-new"]


@pytest.mark.parametrize(
    "value, protected, until",
    [
        ("disabled", False, None),
        (None, False, None),
        ("enabled", True, "protected"),
        ("enabled-with-cooldown", True, "protected"),
        ("disabled-until 2026-11-23T20:00:00.000Z", True, "2026-11-23T20:00:00+00:00"),
        ("disabled-until 2026-11-22T20:00:00.000Z", False, None),
    ],
)
def test_protection_is_read_as_describe_images_words_it(value, protected, until):
    assert guard.protection_of({"DeregistrationProtection": value}, NOW) == (protected, until)


def rule(rule_id, resource_type, selection, days, lock_state=None):
    found = {
        "Identifier": rule_id,
        "Description": guard.rule_description(resource_type, selection),
        "RetentionPeriod": {"RetentionPeriodValue": days, "RetentionPeriodUnit": "DAYS"},
    }
    if lock_state:
        found["LockState"] = lock_state
    return found


def settings(**overrides):
    return options(recycle_bin=dict({"retention_days": 14}, **overrides))["recycle_bin"]


def test_retention_rules_are_created_once_per_type_and_found_again_by_their_description():
    rules = {
        "EBS_SNAPSHOT": [rule("r1", "EBS_SNAPSHOT", "tag", 14)],
        "EC2_IMAGE": [rule("other", "EC2_IMAGE", "region", 14)],
    }

    todo, skipped = guard.plan_retention_rules(REGION, rules, settings())

    assert [(item["resource_type"], item["steps"]) for item in todo] == [("EC2_IMAGE", ["create"])]
    assert [entry["rule_id"] for entry in skipped] == ["r1"]


def test_an_unlocked_rule_is_updated_and_locked_a_locked_one_is_reported():
    unlocked = {"EBS_SNAPSHOT": [rule("r1", "EBS_SNAPSHOT", "region", 7, "unlocked")], "EC2_IMAGE": []}
    locked = {"EBS_SNAPSHOT": [rule("r1", "EBS_SNAPSHOT", "region", 7, "locked")], "EC2_IMAGE": []}
    wanted = settings(selection="region", lock=True, resource_types=["EBS_SNAPSHOT"])

    todo, _skipped = guard.plan_retention_rules(REGION, unlocked, wanted)
    held_todo, held = guard.plan_retention_rules(REGION, locked, wanted)

    assert todo[0]["steps"] == ["update", "lock"] and todo[0]["rule_id"] == "r1"
    assert held_todo == []
    assert "can't be changed" in held[0]["reason"] and "7 days (asked 14)" in held[0]["reason"]


def test_the_purge_holds_a_locked_snapshot_with_its_end():
    todo = [
        {"snapshot_id": "snap-a", "reason": "expired on 2026-11-20"},
        {"snapshot_id": "snap-b", "reason": "expired"},
    ]
    locks = {
        "snap-a": lock("snap-a", "governance", at("2026-11-30")),
        "snap-b": lock("snap-b", "expired", at("2026-11-01")),
    }

    kept, held = guard.hold_locked_snapshots(REGION, todo, locks, NOW)

    assert [item["snapshot_id"] for item in kept] == ["snap-b"]
    assert held[0]["locked_until"] == "2026-11-30T00:00:00+00:00"
    assert held[0]["reason"] == "expired on 2026-11-20; locked (governance) until 2026-11-30T00:00:00+00:00"


def purge_plan(*image_ids):
    todo = [
        {
            "image_id": image_id,
            "name": image_id,
            "reason": "expired on 2026-11-20",
            "snapshot_ids": ["snap-" + image_id],
        }
        for image_id in image_ids
    ]
    snapshots = [
        {"snapshot_id": "snap-" + image_id, "image_id": image_id, "image_ids": [image_id], "name": image_id}
        for image_id in image_ids
    ]
    return {"todo": todo, "snapshots": snapshots, "skipped": []}


def test_the_purge_holds_protected_amis_and_their_snapshots_unless_removal_is_allowed():
    images = {
        "ami-open": image("ami-open", "2026-11-20"),
        "ami-enabled": image("ami-enabled", "2026-11-20", protection="enabled"),
        "ami-cooldown": image("ami-cooldown", "2026-11-20", protection="enabled-with-cooldown"),
    }
    region_plan = purge_plan("ami-open", "ami-enabled", "ami-cooldown")

    held = guard.hold_protected_images(REGION, region_plan, images, False, NOW)
    allowed = guard.hold_protected_images(
        REGION, purge_plan("ami-open", "ami-enabled", "ami-cooldown"), images, True, NOW
    )

    assert [item["image_id"] for item in held["todo"]] == ["ami-open"]
    assert [item["snapshot_id"] for item in held["snapshots"]] == ["snap-ami-open"]
    assert {entry["resource"] for entry in held["skipped"]} == {
        "ami-enabled",
        "ami-cooldown",
        "snap-ami-enabled",
        "snap-ami-cooldown",
    }
    assert held["unprotect"] == []
    assert [(item["image_id"], item.get("remove_protection")) for item in allowed["todo"]] == [
        ("ami-open", None),
        ("ami-enabled", True),
    ]
    [cooling] = allowed["unprotect"]
    assert cooling["image_id"] == "ami-cooldown" and cooling["deregistrable_after"] == "2026-11-24T01:00:00+00:00"


def locked_error(code="SnapshotLocked"):
    return ClientError({"Error": {"Code": code, "Message": "locked"}}, "DeleteSnapshot")


def test_a_lock_set_after_the_plan_is_recognised_from_the_lock_whatever_the_error_code(stub_client):
    client, stubber = stub_client()
    stubber.add_response(
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-a", "LockState": "governance", "LockExpiresOn": at("2026-12-01")}]},
        {"SnapshotIds": ["snap-a"]},
    )
    stubber.add_response("describe_locked_snapshots", {"Snapshots": []}, {"SnapshotIds": ["snap-b"]})
    stubber.add_response("describe_locked_snapshots", {"Snapshots": []}, {"SnapshotIds": ["snap-c"]})
    stubber.activate()

    found = guard.refused_for_lock(client, "snap-a", locked_error("SomeOtherCode"), NOW)
    by_code = guard.refused_for_lock(client, "snap-b", locked_error(), NOW)
    other = guard.refused_for_lock(client, "snap-c", locked_error("InvalidSnapshot.InUse"), NOW)

    assert guard.locked_until(found) == "2026-12-01T00:00:00+00:00"
    assert by_code == {"LockState": "SnapshotLocked"}
    assert other is None


def test_describe_locked_snapshots_follows_next_token(stub_client):
    client, stubber = stub_client()
    stubber.add_response(
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-a", "LockState": "governance"}], "NextToken": "page-2"},
        {"MaxResults": 1000},
    )
    stubber.add_response(
        "describe_locked_snapshots",
        {"Snapshots": [{"SnapshotId": "snap-b", "LockState": "compliance"}]},
        {"MaxResults": 1000, "NextToken": "page-2"},
    )
    stubber.activate()

    assert sorted(guard.describe_snapshot_locks(client)) == ["snap-a", "snap-b"]


def test_a_compliance_lock_in_its_cooling_off_period_is_never_weakened_to_governance():
    locks = {"snap-a": lock("snap-a", "compliance-cooloff", at("2026-11-25"))}

    todo, skipped = guard.plan_snapshot_locks(REGION, [snapshot("snap-a", "2026-12-01")], locks, options(), NOW)
    strict, _left = guard.plan_snapshot_locks(
        REGION, [snapshot("snap-a", "2026-12-01")], locks, options(lock_mode="compliance", cool_off_period=12), NOW
    )

    assert todo == [] and "would weaken it" in skipped[0]["reason"]
    assert strict[0]["lock_mode"] == "compliance" and strict[0]["cool_off_period"] == 12
