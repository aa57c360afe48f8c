import pytest

from ansible_collections.opsvault.aws_backup.plugins.module_utils import accounts


def test_default_template_makes_the_member_role_arn():
    template = accounts.check_role_arn_template(accounts.DEFAULT_ROLE_ARN_TEMPLATE)
    account = {"id": "111122223333", "name": "prod", "ous": []}
    assert accounts.role_arn(template, account) == "arn:aws:iam::111122223333:role/OpsvaultBackup"
    named = accounts.check_role_arn_template("arn:aws-us-gov:iam::{account_id}:role/backup/{account_name}")
    assert accounts.role_arn(named, account) == "arn:aws-us-gov:iam::111122223333:role/backup/prod"


@pytest.mark.parametrize(
    "template, says",
    [
        ("arn:aws:iam::123456789012:role/OpsvaultBackup", "must contain {account_id}"),
        ("arn:aws:iam::{account_id}:role/{role}", "unknown: role"),
        ("arn:aws:iam::{account_id:role/x", "not a valid template"),
        ("arn:aws:s3:::{account_id}", "does not make an IAM role ARN"),
        ("arn:aws:iam::{account_id}:user/backup", "does not make an IAM role ARN"),
    ],
)
def test_a_bad_role_arn_template_is_refused_naming_it(template, says):
    with pytest.raises(ValueError) as error:
        accounts.check_role_arn_template(template)
    assert repr(template) in str(error.value) and says in str(error.value)


def test_static_accounts_need_twelve_digit_ids_and_name_defaults_to_the_id():
    assert accounts.static_accounts([{"id": "012345678901"}, {"id": 111122223333, "name": "prod"}]) == [
        {"id": "012345678901", "name": "012345678901", "ous": []},
        {"id": "111122223333", "name": "prod", "ous": []},
    ]
    for entry, named in (({"id": "12345"}, "'12345'"), ({"id": "111122223333", "role": "x"}, "role"), ("x", "'x'")):
        with pytest.raises(ValueError) as error:
            accounts.static_accounts([entry])
        assert named in str(error.value)


def test_organization_accounts_keep_only_active_ones_with_their_ous():
    listed = [
        {"Id": "111111111111", "Name": "prod", "Status": "ACTIVE", "State": "ACTIVE"},
        {"Id": "222222222222", "Name": "old", "Status": "SUSPENDED", "State": "SUSPENDED"},
        {"Id": "333333333333", "Name": "closing", "State": "PENDING_CLOSURE"},
        {"Id": "444444444444", "Name": "legacy", "Status": "ACTIVE"},  # before the State field
    ]
    active, skipped = accounts.organization_accounts(listed, {"111111111111": ["ou-ab12-cdef3456"]})
    assert [(a["id"], a["ous"]) for a in active] == [("111111111111", ["ou-ab12-cdef3456"]), ("444444444444", [])]
    assert skipped == [("222222222222", "SUSPENDED"), ("333333333333", "PENDING_CLOSURE")]


def test_regions_are_names_or_all_alone():
    assert accounts.check_regions(["eu-west-1, us-east-1", "eu-west-1"]) == ["eu-west-1", "us-east-1"]
    assert accounts.check_regions(["all"]) == ["all"]
    for bad, named in (
        (["eu-west-1", "all"], "cannot be combined"),
        (["Ireland"], "'Ireland'"),
        ([""], "at least one"),
    ):
        with pytest.raises(ValueError) as error:
            accounts.check_regions(bad)
        assert named in str(error.value)


def test_one_host_per_account_and_region_with_its_variables_and_groups():
    found = [
        {"id": "111111111111", "name": "prod", "ous": ["ou-ab12-aaaaaaaa", "ou-ab12-bbbbbbbb"]},
        {"id": "222222222222", "name": "dev", "ous": []},
    ]
    regions_of = {"111111111111": ["eu-west-1", "us-east-1"], "222222222222": ["eu-west-1"]}
    hosts = accounts.hosts(found, regions_of, accounts.DEFAULT_ROLE_ARN_TEMPLATE, "ext-1")
    assert [host["name"] for host in hosts] == [
        "111111111111-eu-west-1",
        "111111111111-us-east-1",
        "222222222222-eu-west-1",
    ]
    assert hosts[1]["vars"] == {
        "aws_account_id": "111111111111",
        "aws_account_name": "prod",
        "aws_region": "us-east-1",
        "aws_role_arn": "arn:aws:iam::111111111111:role/OpsvaultBackup",
        "aws_external_id": "ext-1",
        "aws_organizational_units": ["ou-ab12-aaaaaaaa", "ou-ab12-bbbbbbbb"],
    }
    assert hosts[1]["groups"] == ["account_111111111111", "region_us_east_1", "ou_ab12_aaaaaaaa", "ou_ab12_bbbbbbbb"]
    assert hosts[2]["groups"] == ["account_222222222222", "region_eu_west_1"]
