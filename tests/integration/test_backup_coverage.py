"""opsvault.aws_backup.backup_coverage through real ansible-playbook runs against moto."""

import datetime
import html.parser
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.opsvault.aws_backup.plugins.module_utils import options as shared_options
from ansible_collections.opsvault.aws_backup.plugins.modules import backup_coverage

from tests.harness import aws_proxy
from tests.harness import fleet
from tests.harness.ansible_run import REPO
from tests.harness.ansible_run import run_playbook

MODULE = "opsvault.aws_backup.backup_coverage"
EAST, WEST = "us-east-1", "eu-west-1"
MANAGED = {"CreatedBy": "opsvault.aws_backup"}
FAR = "2999-01-01"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def ago(**delta):
    return utc_now() - datetime.timedelta(**delta)


def passed(**delta):
    return {"LastRestoreTest": ago(**delta).strftime("%Y-%m-%dT%H:%M:%SZ") + ":passed"}


def coverage_task(name="coverage", ignore_errors=False, **params):
    entry = {"name": name, MODULE: params}
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def ami(ec2, instance_id, name, created, state=None, region=EAST, **tags):
    tags = dict(dict(MANAGED, SourceInstanceId=instance_id, DeleteOn=FAR), **tags)
    image_id = ec2.create_image(
        InstanceId=instance_id,
        Name=name,
        TagSpecifications=[{"ResourceType": "image", "Tags": fleet.tag_list(tags)}],
    )["ImageId"]
    fleet.set_image(region, image_id, state=state, created=created)
    return image_id


def snapshot(ec2, volume_id, started, tags=None, service_tags=None, region=EAST):
    snapshot_id = fleet.add_snapshot(ec2, volume_id, tags)
    if service_tags:
        fleet.set_service_tags(region, snapshot_id, service_tags)
    fleet.set_snapshot(region, snapshot_id, started=started)
    return snapshot_id


def seed_every_status(aws):
    """A fleet in which each status is present once (twice where a second shows the rule); returns
    ``{resource: status}`` of every source and every backup the report must name, and nothing else."""
    ec2, west = aws.ec2(EAST), aws.ec2(WEST)
    expected = {}
    tested = passed(days=2)

    [ok] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    expected[ok] = "ok"
    expected[ami(ec2, ok, "web-new", ago(hours=1), **tested)] = "ok"
    expected[
        ami(ec2, ok, "web-old", ago(days=5), DeleteOn=(utc_now().date() - datetime.timedelta(days=1)).isoformat())
    ] = "expired_not_purged"

    [stale] = fleet.launch(ec2, {"Backup": "", "Name": "app"})
    expected[stale] = "stale"
    public = ami(ec2, stale, "app-shared", ago(days=3), **tested)
    ec2.modify_image_attribute(ImageId=public, LaunchPermission={"Add": [{"Group": "all"}]})
    expected[public] = "shared_public"

    [tight] = fleet.launch(ec2, {"Backup": "Hourly", "BackupRPO": "1h", "Name": "queue"})
    expected[tight] = "stale"  # 2 hours old is within the default RPO of a day, not within its own hour
    expected[ami(ec2, tight, "queue-1", ago(hours=2), **tested)] = "ok"

    [failed] = fleet.launch(ec2, {"Backup": "", "Name": "batch"})
    expected[failed] = "last_failed"
    expected[ami(ec2, failed, "batch-1", ago(days=1, hours=2), **tested)] = "ok"
    expected[ami(ec2, failed, "batch-2", ago(hours=1), state="failed")] = "ok"

    [pending] = fleet.launch(ec2, {"Backup": "", "Name": "etl"})
    expected[pending] = "pending_too_long"
    expected[ami(ec2, pending, "etl-1", ago(hours=10), state="pending")] = "ok"

    [missing] = fleet.launch(ec2, {"Backup": "", "Name": "cache"})
    expected[missing] = "missing"

    [untested] = fleet.launch(ec2, {"Backup": "", "Name": "search"})
    expected[untested] = "not_restore_tested"
    expected[ami(ec2, untested, "search-1", ago(hours=3))] = "ok"

    [gone] = fleet.launch(ec2, {"Backup": "", "Name": "old"})
    expected[ami(ec2, gone, "old-1", ago(days=2))] = "orphan"
    ec2.terminate_instances(InstanceIds=[gone])

    fleet.launch(ec2, {"Name": "not-selected"})  # no Backup tag: not in the report

    dlm_volume = fleet.add_volume(ec2, tags={"Backup": "Volumes", "Name": "logs"})
    expected[dlm_volume] = "ok"
    dlm = {"aws:dlm:lifecycle-policy-id": "policy-0123456789abcdef0", "aws:dlm:lifecycle-schedule-name": "daily"}
    expected[snapshot(ec2, dlm_volume, ago(hours=2), tested, dlm)] = "unmanaged"
    shared = snapshot(ec2, dlm_volume, ago(days=4), dict(MANAGED, VolumeId=dlm_volume, DeleteOn=FAR))
    ec2.modify_snapshot_attribute(
        SnapshotId=shared, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
    )
    expected[shared] = "shared_public"

    backup_volume = fleet.add_volume(ec2, tags={"Backup": "Volumes", "Name": "uploads"})
    expected[backup_volume] = "stale"
    source = "arn:aws:ec2:{0}:{1}:volume/{2}".format(EAST, fleet.ACCOUNT_ID, backup_volume)
    expected[snapshot(ec2, backup_volume, ago(days=3), tested, {"aws:backup:source-resource": source})] = "unmanaged"

    [far_away] = fleet.launch(west, {"Backup": "", "Name": "eu-web"})
    expected[far_away] = "missing"
    return expected


def statuses(items):
    return {item["resource"]: item["status"] for item in items}


class ProblemRows(html.parser.HTMLParser):
    """The rows of the page's problems table: ``{resource: status}`` from the rows' data attributes."""

    def __init__(self):
        super().__init__()
        self.rows = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-resource" in attrs:
            self.rows[attrs["data-resource"]] = attrs["data-status"]


def page_rows(text):
    parser = ProblemRows()
    parser.feed(text)
    return parser.rows


def markdown_rows(text):
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("Status", "---"):
            rows[cells[2]] = cells[0]
    return rows


def files_of(tmp_path, stem):
    return {
        "json_path": str(tmp_path / (stem + ".json")),
        "html_path": str(tmp_path / (stem + ".html")),
        "markdown_path": str(tmp_path / (stem + ".md")),
    }


def test_every_status_is_named_exactly_in_the_result_json_html_and_markdown_with_only_describe_calls(
    aws, counting_proxy, tmp_path
):
    expected = seed_every_status(aws)
    problems = {resource: status for resource, status in expected.items() if status != "ok"}
    params = dict(regions=[EAST, WEST], require_restore_test=True, report_limit=100)

    def run(check, stem):
        counting_proxy.reset()
        tasks = [coverage_task(**dict(params, **files_of(tmp_path, stem)))]
        playbook = run_playbook(
            [
                {
                    "name": "coverage",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "module_defaults": {"group/opsvault.aws_backup.aws": {"region": EAST}},
                    "tasks": tasks,
                }
            ],
            tmp_path,
            endpoint=counting_proxy.endpoint,
            check=check,
        )
        return playbook.result("coverage"), counting_proxy.stats()

    result, stats = run(check=False, stem="report")

    assert result["changed"] is False and not result.get("failed"), result
    assert statuses(result["problems"]) == problems
    assert result["problems_total"] == len(problems)
    assert result["counts"]["sources"] == {
        "missing": 2,
        "last_failed": 1,
        "pending_too_long": 1,
        "stale": 3,
        "not_restore_tested": 1,
        "ok": 2,
    }
    assert result["counts"]["backups"] == {
        "shared_public": 2,
        "expired_not_purged": 1,
        "orphan": 1,
        "unmanaged": 2,
        "ok": 6,
    }
    assert result["coverage"]["percent"] == round(100 * 2 / 10, 1)
    assert result["coverage"]["regions"][WEST] == {"ok": 0, "total": 1, "percent": 0.0}
    assert result["coverage"]["policies"]["Hourly"] == {"ok": 0, "total": 1, "percent": 0.0}

    document = json.loads((tmp_path / "report.json").read_text())
    assert document["schema_version"] == 1 and document["account"] == fleet.ACCOUNT_ID
    assert document["regions"] == [EAST, WEST]
    assert statuses(document["sources"] + document["backups"]) == expected
    by_id = {item["resource"]: item for item in document["backups"]}
    makers = {item["maker"] for item in document["backups"] if item["status"] == "unmanaged"}
    assert makers == {"dlm", "aws_backup"}
    [dlm] = [item for item in document["backups"] if item["maker"] == "dlm"]
    assert dlm["maker_detail"] == "policy-0123456789abcdef0"
    [orphan] = [item for item in document["backups"] if item["status"] == "orphan"]
    assert orphan["purge"] is False and "keep_min" in orphan["reason"]
    assert [by_id[r]["purge"] for r, s in expected.items() if s == "expired_not_purged"] == [True]

    assert page_rows((tmp_path / "report.html").read_text()) == problems
    assert markdown_rows((tmp_path / "report.md").read_text()) == problems
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page

    assert stats["mutating"] == 0
    called = {record["action"] for record in stats["records"]}
    assert all(action.startswith(("Describe", "Get", "List")) for action in called), called
    for region in (EAST, WEST):
        for action, times in (("DescribeInstances", 1), ("DescribeVolumes", 1), ("DescribeImages", 1)):
            assert aws_proxy.count(stats, action=action, region=region) == times
        assert aws_proxy.count(stats, action="DescribeSnapshots", region=region) == 2

    preview, preview_stats = run(check=True, stem="preview")
    assert preview_stats["mutating"] == 0
    assert preview["changed"] is False and statuses(preview["problems"]) == problems
    assert preview["counts"] == result["counts"] and preview["coverage"] == result["coverage"]
    assert page_rows((tmp_path / "preview.html").read_text()) == problems


def test_fail_under_fails_the_task_after_the_files_are_written(aws, play, tmp_path):
    ec2 = aws.ec2(EAST)
    [covered] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    ami(ec2, covered, "web-1", ago(hours=1))
    [uncovered] = fleet.launch(ec2, {"Backup": "", "Name": "db"})

    run = play([coverage_task(ignore_errors=True, fail_under=75, **files_of(tmp_path, "report"))])

    result = run.result("coverage")
    assert result["failed"] is True and result["changed"] is False
    assert "Coverage 50.0% (1 of 2 sources ok)" in result["msg"]
    assert "coverage 50.0% is under fail_under 75.0%" in result["msg"].lower()
    assert "1 missing source(s): {0} ({1}): no backup at all".format(uncovered, EAST) in result["msg"]
    assert json.loads((tmp_path / "report.json").read_text())["coverage"]["percent"] == 50.0
    assert page_rows((tmp_path / "report.html").read_text()) == {uncovered: "missing"}

    run = play([coverage_task(fail_under=50)])
    assert run.rc == 0 and not run.result("coverage").get("failed")


@pytest.mark.parametrize(
    "params, named",
    [
        ({"rpo": "soon"}, "rpo 'soon' is not an age"),
        ({"pending_limit": "0"}, "pending_limit must be more than zero, got '0'"),
        ({"fail_under": 120}, "fail_under must be a percentage between 0 and 100, got 120"),
        (
            {"html_path": "/nonexistent-reports/coverage.html"},
            "html_path '/nonexistent-reports/coverage.html' cannot be written: directory /nonexistent-reports",
        ),
        ({"keep_min": 0}, "keep_min must be at least 1"),
    ],
)
def test_bad_input_fails_naming_the_option_and_value_before_any_call(aws, counting_proxy, tmp_path, params, named):
    run = run_playbook(
        [
            {
                "name": "coverage",
                "hosts": "localhost",
                "gather_facts": False,
                "module_defaults": {"group/opsvault.aws_backup.aws": {"region": EAST}},
                "tasks": [coverage_task(ignore_errors=True, **params)],
            }
        ],
        tmp_path,
        endpoint=counting_proxy.endpoint,
    )
    result = run.result("coverage")
    assert result["failed"] is True
    assert named in result["msg"], result["msg"]
    assert counting_proxy.stats()["total"] == 0


def test_a_directory_as_html_path_is_refused(aws, play, tmp_path):
    run = play([coverage_task(ignore_errors=True, html_path=str(tmp_path))])
    assert "html_path {0!r} is a directory".format(str(tmp_path)) in run.result("coverage")["msg"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(chromium() is None, reason="no chromium (apt-get install chromium) to render the HTML report")
def test_the_html_page_renders_in_a_headless_browser_with_the_expected_rows(aws, play, tmp_path):
    expected = seed_every_status(aws)
    problems = {resource: status for resource, status in expected.items() if status != "ok"}
    page = tmp_path / "report.html"
    run = play([coverage_task(regions=[EAST, WEST], require_restore_test=True, report_limit=5, html_path=str(page))])
    assert run.rc == 0, run.result("coverage")
    assert len(run.result("coverage")["problems"]) == 5

    profile = tmp_path / "profile"
    rendered = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--user-data-dir={0}".format(profile),
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, HOME=str(tmp_path)),
    )
    assert rendered.returncode == 0, rendered.stderr
    dom = rendered.stdout
    assert page_rows(dom) == problems
    assert '<span class="big" id="coverage-percent">20.0%</span>' in dom
    assert "<svg" in dom and "Age of the newest successful backup" in dom


# ---------------------------------------------------------------- the shipped playbook

PLAYBOOK = "opsvault.aws_backup.coverage_report"
REPORT_TASK = "Describe every source and backup and give each a status"
FILE_OPTIONS = ("json_path", "html_path", "markdown_path")
PLAYBOOK_ENV = {"AWS_REGION": EAST, "ANSIBLE_SHOW_CUSTOM_STATS": "true", "ANSIBLE_INJECT_INVOCATION": "true"}


def module_spec():
    return shared_options.argument_spec(shared_options.REGIONAL, **backup_coverage.ARGUMENT_SPEC)


def shipped_report_task():
    [play] = yaml.safe_load((REPO / "playbooks" / "coverage_report.yml").read_text())
    [block] = play["tasks"]
    return {task["name"]: task for task in block["block"]}[REPORT_TASK][MODULE]


def test_the_playbook_passes_each_option_from_its_variable_and_documents_it():
    args = dict(shipped_report_task())
    # Over the accounts inventory, the host's own region, role and external id.
    host_options = {"region": "aws_region", "assume_role_arn": "aws_role_arn", "external_id": "aws_external_id"}
    assert {option: args.pop(option) for option in host_options} == {
        option: "{{{{ {0} | default(omit, true) }}}}".format(variable) for option, variable in host_options.items()
    }
    assert sorted(args) == sorted(module_spec())
    header = (REPO / "playbooks" / "coverage_report.yml").read_text().split("\n- name:", 1)[0]
    for option, spec in module_spec().items():
        variable = "coverage_report_" + option
        assert re.search(r"^#\s+{0}\s".format(variable), header, re.M), option
        if option in FILE_OPTIONS:
            continue
        expected = (
            ["{{{{ omit if {0} | default('') in [none, ''] else {0} }}}}".format(variable)]
            if spec["type"] in ("int", "bool", "float")
            else ["{{{{ {0} | default(omit, true) }}}}".format(variable)]
        )
        assert args[option] in expected, (option, args[option])


def test_the_playbook_writes_the_files_publishes_the_counts_and_fails_under_the_threshold(
    aws, counting_proxy, tmp_path
):
    ec2 = aws.ec2(EAST)
    [covered] = fleet.launch(ec2, {"Backup": "", "Name": "web"})
    ami(ec2, covered, "web-1", ago(hours=1))
    [uncovered] = fleet.launch(ec2, {"Backup": "", "Name": "db"})
    unanswered = {"coverage_report_" + option: "" for option in module_spec()}
    reports = tmp_path / "reports"
    reports.mkdir()

    def run(check=False, **extra):
        counting_proxy.reset()
        playbook = run_playbook(
            PLAYBOOK,
            tmp_path,
            endpoint=counting_proxy.endpoint,
            extra_vars=dict(unanswered, **extra),
            check=check,
            env=PLAYBOOK_ENV,
        )
        return playbook, counting_proxy.stats()

    preview, stats = run(check=True)
    assert preview.rc == 0, preview.stdout
    assert stats["mutating"] == 0
    args = preview.result(REPORT_TASK)["invocation"]["module_args"]
    for option, spec in module_spec().items():
        assert args[option] == spec.get("default"), option
    assert preview.output["global_custom_stats"] == {
        "coverage_report_counts": preview.result(REPORT_TASK)["counts"],
        "coverage_report_percent": 50.0,
        "coverage_report_problems": 1,
    }

    failing, stats = run(coverage_report_dir=str(reports), coverage_report_fail_under=75)
    assert failing.rc != 0 and stats["mutating"] == 0
    assert failing.result(REPORT_TASK)["failed"] is True
    assert page_rows((reports / "coverage.html").read_text()) == {uncovered: "missing"}
    assert markdown_rows((reports / "coverage.md").read_text()) == {uncovered: "missing"}
    assert json.loads((reports / "coverage.json").read_text())["coverage"]["percent"] == 50.0
    assert failing.output["global_custom_stats"]["coverage_report_percent"] == 50.0
    assert "Coverage 50.0% is under fail_under 75.0%" in failing.result("Summarise the coverage")["msg"]

    passing, _stats = run(
        coverage_report_fail_under=0, coverage_report_html_path=str(tmp_path / "page.html"), coverage_report_rpo="2h"
    )
    assert passing.rc == 0, passing.stdout
    assert page_rows((tmp_path / "page.html").read_text()) == {uncovered: "missing"}
    assert passing.result(REPORT_TASK)["invocation"]["module_args"]["json_path"] is None


# ---------------------------------------------------------------- the S3 mirror


def test_s3_mirror_records_its_last_complete_run_and_the_report_judges_each_dest_by_the_rpo(aws, play, tmp_path):
    s3 = aws.client("s3", EAST)
    s3.create_bucket(Bucket="images")
    s3.put_object(Bucket="images", Key="a.jpg", Body=b"a")
    fresh, old, never, failed, preview = (str(tmp_path / name) for name in ("fresh", "old", "never", "failed", "check"))

    run = play(
        [
            {"name": "mirror", "opsvault.aws_backup.s3_mirror": {"bucket": "images", "dest": fresh}},
            {"name": "again", "opsvault.aws_backup.s3_mirror": {"bucket": "images", "dest": old}},
            {
                "name": "preview",
                "opsvault.aws_backup.s3_mirror": {"bucket": "images", "dest": preview},
                "check_mode": True,
            },
            {
                "name": "broken",
                "opsvault.aws_backup.s3_mirror": {"bucket": "no-such-bucket", "dest": failed},
                "ignore_errors": True,
            },
        ]
    )
    assert run.rc == 0 and run.result("broken")["failed"] is True
    record = json.loads((tmp_path / "fresh" / ".s3_mirror_last_run.json").read_text())
    assert (record["bucket"], record["prefix"], record["listed"]) == ("images", "", 1)
    assert abs((datetime.datetime.fromisoformat(record["finished_at"]) - utc_now()).total_seconds()) < 120
    assert not os.path.exists(os.path.join(preview, ".s3_mirror_last_run.json"))
    assert not os.path.exists(os.path.join(failed, ".s3_mirror_last_run.json"))
    stale_record = tmp_path / "old" / ".s3_mirror_last_run.json"
    stale_record.write_text(json.dumps(dict(record, finished_at=ago(days=2).isoformat())))

    run = play(
        [
            coverage_task(
                mirror_dests=[fresh, old, never, failed], rpo="1d", **files_of(tmp_path, "report"), ignore_errors=True
            )
        ]
    )

    result = run.result("coverage")
    assert run.rc == 0 and not result.get("failed"), result
    expected = {fresh: "ok", old: "stale", never: "missing", failed: "missing"}
    document = json.loads((tmp_path / "report.json").read_text())
    assert statuses(document["sources"]) == expected
    by_dest = {item["resource"]: item for item in document["sources"]}
    assert by_dest[fresh]["name"] == "s3://images/" and by_dest[fresh]["region"] == "local"
    assert by_dest[old]["reason"] == "the last complete run finished 2 days ago (RPO 1 day)"
    assert by_dest[never]["reason"] == "no complete s3_mirror run recorded in {0}".format(never)
    problems = {dest: status for dest, status in expected.items() if status != "ok"}
    assert statuses(result["problems"]) == problems
    assert page_rows((tmp_path / "report.html").read_text()) == problems
    assert markdown_rows((tmp_path / "report.md").read_text()) == problems
    assert result["coverage"]["policies"]["s3_mirror"] == {"ok": 1, "total": 4, "percent": 25.0}
