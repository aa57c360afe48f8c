"""What a user reads: the README, the guides, role and playbook docs and ansible-doc text."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USER_TEXT = (
    ["README.md", "CONTRIBUTING.md"]
    + [str(path.relative_to(REPO)) for path in sorted((REPO / "docs").glob("*.md"))]
    + [str(path.relative_to(REPO)) for path in sorted(REPO.glob("roles/*/README.md"))]
    + [str(path.relative_to(REPO)) for path in sorted(REPO.glob("roles/*/meta/argument_specs.yml"))]
    + [str(path.relative_to(REPO)) for path in sorted(REPO.glob("playbooks/*.yml"))]
    + [str(path.relative_to(REPO)) for path in sorted(REPO.glob("playbooks/files/*"))]
    + [str(path.relative_to(REPO)) for path in sorted(REPO.glob("plugins/*/*.py"))]
)


def read(name):
    return (REPO / name).read_text()


def test_user_text_speaks_of_what_the_user_does_not_of_internal_seed_documents():
    mentions = [
        "{0}:{1}: {2}".format(name, number, line.strip())
        for name in USER_TEXT
        for number, line in enumerate(read(name).splitlines(), 1)
        if re.search(r"\bseeds?\b", line, re.I)
    ]
    assert mentions == []


def test_readme_says_which_module_defaults_group_reaches_the_modules():
    readme = read("README.md")
    assert "group/opsvault.aws_backup.aws" in readme
    assert re.search(r"group/amazon\.aws\.aws.{0,40}(does \*\*not\*\*|does not)", readme, re.S)


def test_readme_says_how_to_point_the_modules_at_another_endpoint():
    readme = read("README.md")
    assert "endpoint_url" in readme and "AWS_ENDPOINT_URL" in readme
    assert "python -m tests.harness.moto_server --port" in readme


def test_one_boto3_minimum_everywhere_and_the_one_amazon_aws_supports():
    from ansible_collections.amazon.aws.plugins.module_utils.botocore import MINIMUM_BOTO3_VERSION

    stated = set(re.findall(r"boto(?:3|core)\W{1,3}(?:and `?botocore`? )?>?=?\s*(\d+\.\d+\.\d+)", read("requirements.txt")))
    stated |= set(re.findall(r"`boto3` and `botocore` (\d+\.\d+\.\d+) or newer", read("README.md")))
    assert stated == {MINIMUM_BOTO3_VERSION}
