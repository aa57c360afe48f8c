import datetime

import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import contract


def test_backup_tags_put_the_contract_over_copied_and_extra_tags():
    source = {"Name": "web-1", "Environment": "prod", "Team": "ops", "CreatedBy": "terraform"}
    tags = contract.backup_tags(
        source,
        {"SourceInstanceId": "i-1", "Region": "eu-west-1"},
        datetime.date(2026, 12, 1),
        "ProductionDaily",
        copy_tags=["Environment", "CreatedBy", "Missing"],
        extra_tags={"CostCenter": "42"},
    )
    assert tags == {
        "Environment": "prod",
        "CostCenter": "42",
        "Name": "web-1",
        "SourceInstanceId": "i-1",
        "Region": "eu-west-1",
        "CreatedBy": "opsvault.aws_backup",
        "DeleteOn": "2026-12-01",
        "BackupPolicy": "ProductionDaily",
    }


def test_policy_defaults_to_default():
    tags = contract.backup_tags({}, {}, datetime.date(2026, 12, 1), None)
    assert tags["BackupPolicy"] == "default"
    assert "Name" not in tags


def test_extra_tags_may_not_override_the_contract():
    with pytest.raises(ValueError, match="CreatedBy, DeleteOn"):
        contract.check_extra_tags({"DeleteOn": "2099-01-01", "CreatedBy": "me", "Team": "ops"})
    contract.check_extra_tags({"Team": "ops"})
    contract.check_extra_tags(None)


def test_managed_marker_and_delete_on():
    assert contract.is_managed({"CreatedBy": "opsvault.aws_backup"})
    assert not contract.is_managed({"CreatedBy": "someone-else"})
    assert contract.delete_on({"DeleteOn": "2026-12-01"}) == datetime.date(2026, 12, 1)
    assert contract.delete_on({}) is None
    with pytest.raises(ValueError):
        contract.delete_on({"DeleteOn": "soon"})


def test_tag_dict_handles_missing_tags():
    assert contract.tag_dict({}) == {}
    assert contract.tag_dict({"Tags": [{"Key": "a", "Value": "b"}]}) == {"a": "b"}
