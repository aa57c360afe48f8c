import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import purge_rule
from ansible_collections.opsvault.aws_backup.plugins.module_utils.purge_rule import FAILED
from ansible_collections.opsvault.aws_backup.plugins.module_utils.purge_rule import PENDING
from ansible_collections.opsvault.aws_backup.plugins.module_utils.purge_rule import READY

TODAY = datetime.date(2026, 11, 23)


def backup(resource_id, age, expires_in=None, state=READY, bad_expiry=None):
    created = (datetime.datetime(2026, 11, 23, 1, tzinfo=datetime.timezone.utc) - datetime.timedelta(days=age)).isoformat()
    expiry = TODAY + datetime.timedelta(days=expires_in) if expires_in is not None else None
    return purge_rule.Backup(resource_id, state, state, created, expiry, bad_expiry, {})


def outcome(decisions):
    return {item.resource_id: (purge, reason) for item, purge, reason in decisions}


def purged(decisions):
    return sorted(item.resource_id for item, purge, _reason in decisions if purge)


def test_expired_backups_go_but_never_the_newest_ready_one():
    backups = [backup("new", 0, -1), backup("old", 5, -3), backup("future", 1, 4)]
    decisions = purge_rule.decide(backups, TODAY, label="vol-1", noun="snapshot", ready_word="completed")
    assert purged(decisions) == ["old"]
    assert outcome(decisions)["new"] == (False, "one of the newest 1 completed snapshot(s) of vol-1 (keep_min)")
    assert outcome(decisions)["future"] == (False, "expires on 2026-11-27")


@pytest.mark.parametrize("newest_state", [PENDING, FAILED])
def test_a_newest_backup_not_ready_holds_the_whole_source_back(newest_state):
    backups = [backup("newest", 0, -1, state=newest_state), backup("old", 9, -5)]
    decisions = purge_rule.decide(backups, TODAY, label="i-1")
    assert purged(decisions) == []
    assert all("nothing of this source is purged" in reason for _item, _purge, reason in decisions)


def test_keep_last_goes_beyond_the_count_but_never_below_keep_min():
    backups = [backup("b{0}".format(age), age, 30) for age in range(5)]
    assert purged(purge_rule.decide(backups, TODAY, keep_last=2)) == ["b2", "b3", "b4"]
    assert purged(purge_rule.decide(backups, TODAY, keep_min=4, keep_last=2)) == ["b4"]


def test_pending_and_bad_delete_on_stay_and_an_older_failed_backup_expires():
    backups = [
        backup("new", 0, 10),
        backup("pending", 1, -1, state=PENDING),
        backup("bad", 2, bad_expiry="soon"),
        backup("failed", 3, -1, state=FAILED),
        backup("undated", 4),
    ]
    result = outcome(purge_rule.decide(backups, TODAY))
    assert result["pending"] == (False, "backup is pending")
    assert result["bad"] == (False, "DeleteOn tag 'soon' is not a date")
    assert result["failed"] == (True, "expired on 2026-11-22")
    assert result["undated"] == (False, "has no DeleteOn tag")


@pytest.mark.parametrize("keep_min, keep_last", [(0, None), (-1, None), (None, None), (1, 0)])
def test_counts_below_one_are_refused(keep_min, keep_last):
    with pytest.raises(ValueError, match="must be at least 1"):
        purge_rule.decide([backup("a", 0)], TODAY, keep_min=keep_min, keep_last=keep_last)
