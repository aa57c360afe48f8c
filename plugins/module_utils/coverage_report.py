# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The coverage report: counts and percentages from the classified items (module_utils/coverage.py),
and the files a person reads: a versioned JSON document, one self-contained HTML page (no external
assets, works offline) and Markdown, worst first."""

import datetime
import html
import json
import os
import tempfile

from ansible_collections.opsvault.aws_backup.plugins.module_utils import coverage
from ansible_collections.opsvault.aws_backup.plugins.module_utils.ebs import age_text
from ansible_collections.opsvault.aws_backup.plugins.module_utils.results import MSG_ITEMS

SCHEMA_VERSION = 1
TITLE = "Backup coverage"
CHART_ROWS = 40  # sources in the age chart

_SOURCE_RANK = {status: rank for rank, status in enumerate(coverage.SOURCE_STATUSES)}
_BACKUP_RANK = {status: rank for rank, status in enumerate(coverage.BACKUP_STATUSES)}


def _worst_first(rank):
    def key(item):
        age = item.get("newest_ok_age_seconds", item.get("age_seconds"))
        return (rank[item["status"]], -(age if age is not None else float("inf")), item["region"], item["resource"])

    return key


def _percent(ok, total):
    return round(100.0 * ok / total, 1) if total else None


def _share(items, field):
    groups = {}
    for item in items:
        group = groups.setdefault(item[field], {"ok": 0, "total": 0})
        group["total"] += 1
        group["ok"] += item["status"] == coverage.OK
    return {
        name: dict(group, percent=_percent(group["ok"], group["total"]))
        for name, group in sorted(groups.items(), key=lambda pair: (_percent(pair[1]["ok"], pair[1]["total"]), pair[0]))
    }


def build(sources, backups, regions, account, generated_at, options, errors=()):
    """The whole report as data: every item, worst first, with counts and coverage per region and policy,
    and the ``errors`` (regions that could not be described are missing from it)."""
    sources = sorted(sources, key=_worst_first(_SOURCE_RANK))
    backups = sorted(backups, key=_worst_first(_BACKUP_RANK))
    ok = sum(1 for item in sources if item["status"] == coverage.OK)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": generated_at.isoformat(),
        "account": account,
        "regions": list(regions),
        "options": options,
        "counts": {
            "sources": {
                status: sum(1 for i in sources if i["status"] == status) for status in coverage.SOURCE_STATUSES
            },
            "backups": {
                status: sum(1 for i in backups if i["status"] == status) for status in coverage.BACKUP_STATUSES
            },
        },
        "coverage": {
            "percent": _percent(ok, len(sources)),
            "ok": ok,
            "total": len(sources),
            "regions": _share(sources, "region"),
            "policies": _share(sources, "policy"),
        },
        "errors": list(errors),
        "sources": sources,
        "backups": backups,
    }


def problems(report):
    """The sources and backups whose status is not ok, worst first (sources before backups)."""
    return [item for item in report["sources"] + report["backups"] if item["status"] != coverage.OK]


def age_of(item):
    seconds = item.get("newest_ok_age_seconds", item.get("age_seconds"))
    if seconds is None:
        return "never" if "newest_ok_age_seconds" in item else "unknown"
    return age_text(datetime.timedelta(seconds=seconds))


def msg_lines(report):
    """The lines of ``msg``: the coverage, then a line per problem status with its first few items."""
    cover = report["coverage"]
    if cover["total"]:
        lines = ["coverage {0}% ({1} of {2} sources ok)".format(cover["percent"], cover["ok"], cover["total"])]
    else:
        lines = ["no sources selected"]
    for kind, statuses in (("source", coverage.SOURCE_STATUSES), ("backup", coverage.BACKUP_STATUSES)):
        items = report[kind + "s"]
        for status in statuses[:-1]:
            matching = [item for item in items if item["status"] == status]
            if matching:
                shown = "; ".join(
                    "{0} ({1}): {2}".format(item["resource"], item["region"], item["reason"])
                    for item in matching[:MSG_ITEMS]
                )
                more = len(matching) - MSG_ITEMS
                lines.append(
                    "{0} {1} {2}(s): {3}{4}".format(
                        len(matching), status, kind, shown, " (and {0} more)".format(more) if more > 0 else ""
                    )
                )
    return lines


# ---------------------------------------------------------------- files


def write_file(path, text):
    """Write atomically: a temporary file beside ``path``, then a rename. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".coverage-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def to_json(report):
    return json.dumps(report, indent=1, sort_keys=False) + "\n"


_PROBLEM_COLUMNS = ("Status", "Kind", "Resource", "Region", "Name", "Age of newest backup", "Reason")


def _row(item):
    return (
        item["status"],
        item["kind"],
        item["resource"],
        item["region"],
        item.get("name") or "",
        age_of(item),
        item["reason"]
        + (" (maker: {0})".format(item["maker"]) if item.get("maker") not in (None, "opsvault.aws_backup") else ""),
    )


def _summary_rows(report):
    cover = report["coverage"]
    rows = [("all", cover["percent"], cover["ok"], cover["total"])]
    rows += [("region " + name, g["percent"], g["ok"], g["total"]) for name, g in cover["regions"].items()]
    rows += [("policy " + name, g["percent"], g["ok"], g["total"]) for name, g in cover["policies"].items()]
    return rows


def _percent_text(percent):
    return "n/a" if percent is None else "{0}%".format(percent)


def _header(report):
    return "{0}: account {1}, {2}, generated {3}".format(
        TITLE, report["account"] or "unknown", ", ".join(report["regions"]), report["generated_at"]
    )


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report):
    lines = ["# " + _header(report), ""]
    for error in report["errors"]:
        lines += ["**Not in this report: {resource} ({action}): {code} {message}**".format(**error), ""]
    lines += ["## Coverage", "", "| scope | coverage | ok | sources |", "|---|---|---|---|"]
    lines += [
        "| {0} | {1} | {2} | {3} |".format(_md_cell(s), _percent_text(p), o, t) for s, p, o, t in _summary_rows(report)
    ]
    lines += ["", "## Counts", ""]
    for kind in ("sources", "backups"):
        counts = report["counts"][kind]
        lines.append("- {0}: {1}".format(kind, ", ".join("{0} {1}".format(s, n) for s, n in counts.items())))
    found = problems(report)
    lines += ["", "## Problems ({0})".format(len(found)), ""]
    if found:
        lines += ["| " + " | ".join(_PROBLEM_COLUMNS) + " |", "|" + "---|" * len(_PROBLEM_COLUMNS)]
        lines += ["| " + " | ".join(_md_cell(cell) for cell in _row(item)) + " |" for item in found]
    else:
        lines.append("None: every source is backed up within its RPO.")
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:.9em;vertical-align:top}
th{background:#f0f0f0}
td:nth-child(-n+6){white-space:nowrap}
.big{font-size:2em;font-weight:bold}
.status{font-weight:bold;white-space:nowrap}
.bad{color:#b00020}.warn{color:#9a5b00}.good{color:#1b7a1b}
svg text{font-size:11px;font-family:system-ui,sans-serif}
"""
_SEVERITY = {
    coverage.MISSING: "bad",
    coverage.LAST_FAILED: "bad",
    coverage.SHARED_PUBLIC: "bad",
    coverage.PENDING_TOO_LONG: "warn",
    coverage.STALE: "warn",
    coverage.NOT_RESTORE_TESTED: "warn",
    coverage.EXPIRED_NOT_PURGED: "warn",
    coverage.ORPHAN: "warn",
    coverage.UNMANAGED: "warn",
    coverage.OK: "good",
}


def _e(text):
    return html.escape(str(text if text is not None else ""))


def _chart(report):
    """An inline SVG bar_width per source: the age of its newest successful backup against its RPO (worst first)."""
    rows = [item for item in report["sources"] if item["status"] != coverage.OK][:CHART_ROWS]
    if not rows:
        return ""
    ages = [item["newest_ok_age_seconds"] for item in rows if item["newest_ok_age_seconds"] is not None]
    scale = max(ages + [item["rpo_seconds"] for item in rows] + [1])
    width, label, height = 360, 220, 16
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="age of the newest backup per source" '
        'width="{0}" height="{1}">'.format(label + width + 90, height * len(rows) + 4)
    ]
    for number, item in enumerate(rows):
        y = number * height + 2
        age = item["newest_ok_age_seconds"]
        bar_width = width if age is None else max(1, int(width * age / scale))
        rpo = int(width * item["rpo_seconds"] / scale)
        colour = "#b00020" if _SEVERITY[item["status"]] == "bad" else "#d08000"
        parts.append('<text x="0" y="{0}">{1}</text>'.format(y + 12, _e(item["resource"])))
        parts.append(
            '<rect x="{0}" y="{1}" width="{2}" height="{3}" fill="{4}" opacity="{5}"/>'.format(
                label, y + 2, bar_width, height - 4, colour, "0.35" if age is None else "1"
            )
        )
        parts.append('<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#222"/>'.format(label + rpo, y, y + height))
        parts.append('<text x="{0}" y="{1}">{2}</text>'.format(label + width + 6, y + 12, _e(age_of(item))))
    parts.append("</svg>")
    return "<h2>Age of the newest successful backup (line: RPO)</h2>\n" + "".join(parts) + "\n"


def to_html(report):
    cover = report["coverage"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>{0}</title>'.format(_e(TITLE)),
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<style>{0}</style></head><body>".format(_CSS),
        "<h1>{0}</h1>".format(_e(_header(report))),
        '<p><span class="big" id="coverage-percent">{0}</span> of {1} sources backed up within their RPO</p>'.format(
            _e(_percent_text(cover["percent"])), cover["total"]
        ),
    ]
    for error in report["errors"]:
        out.append(
            '<p class="status bad">Not in this report: {0}</p>'.format(
                _e("{resource} ({action}): {code} {message}".format(**error))
            )
        )
    out += [
        '<h2>Coverage</h2><table id="coverage"><tr><th>scope</th><th>coverage</th><th>ok</th><th>sources</th></tr>',
    ]
    for scope, percent, ok, total in _summary_rows(report):
        out.append(
            "<tr><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td></tr>".format(
                _e(scope), _e(_percent_text(percent)), ok, total
            )
        )
    out.append('</table><h2>Counts</h2><table id="counts"><tr><th>kind</th><th>status</th><th>count</th></tr>')
    for kind in ("sources", "backups"):
        for status, number in report["counts"][kind].items():
            out.append(
                '<tr><td>{0}</td><td class="status {1}">{2}</td><td>{3}</td></tr>'.format(
                    kind, _SEVERITY[status], _e(status), number
                )
            )
    out.append("</table>")
    out.append(_chart(report))
    found = problems(report)
    out.append("<h2>Problems ({0})</h2>".format(len(found)))
    if found:
        out.append(
            '<table id="problems"><tr>' + "".join("<th>{0}</th>".format(_e(c)) for c in _PROBLEM_COLUMNS) + "</tr>"
        )
        for item in found:
            cells = _row(item)
            out.append(
                '<tr data-status="{0}" data-resource="{1}"><td class="status {2}">{0}</td>{3}</tr>'.format(
                    _e(item["status"]),
                    _e(item["resource"]),
                    _SEVERITY[item["status"]],
                    "".join("<td>{0}</td>".format(_e(cell)) for cell in cells[1:]),
                )
            )
        out.append("</table>")
    else:
        out.append("<p>None: every source is backed up within its RPO.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


RENDERERS = {"json_path": to_json, "html_path": to_html, "markdown_path": to_markdown}


# ---------------------------------------------------------------- many hosts

ORGANISATION = "organisation"
COVERAGE_ACTION = "opsvault.aws_backup.backup_coverage"
HOST_OK, HOST_FAILED = "ok", "failed"


def _host_row(entry):
    """One host of a host_results file: its status, what ran, the first failure, its coverage (when the
    coverage report ran on it) and its problems, each tagged with the host's account."""
    tasks = entry.get("tasks") or []
    failures = [task for task in tasks if task.get("failed")]
    reports = [
        task["result"] for task in tasks if task.get("action") == COVERAGE_ACTION and "coverage" in task["result"]
    ]
    report = reports[-1] if reports else None
    account = entry.get("account_id") or (report or {}).get("account")
    row = {
        "host": entry["host"],
        "account_id": account,
        "region": entry.get("region"),
        "status": HOST_FAILED if entry.get("failed") or failures else HOST_OK,
        "actions": list(dict.fromkeys(task.get("action") for task in tasks)),
        "message": (failures[0].get("result") or {}).get("msg") if failures else None,
        "coverage": None,
        "counts": None,
        "problems_total": 0,
    }
    problems_found = []
    if report:
        row["coverage"] = {key: report["coverage"][key] for key in ("percent", "ok", "total")}
        row["counts"] = report.get("counts")
        row["problems_total"] = report.get("problems_total", len(report.get("problems", [])))
        problems_found = [dict(item, account_id=account, host=entry["host"]) for item in report.get("problems", [])]
    return row, problems_found


def _host_share(rows, field):
    groups = {}
    for row in rows:
        group = groups.setdefault(str(row[field]), {"ok": 0, "total": 0, "hosts": 0, "failed_hosts": 0})
        group["hosts"] += 1
        group["failed_hosts"] += row["status"] == HOST_FAILED
        if row["coverage"]:
            group["ok"] += row["coverage"]["ok"]
            group["total"] += row["coverage"]["total"]
    return {name: dict(group, percent=_percent(group["ok"], group["total"])) for name, group in sorted(groups.items())}


def merge(entries, generated_at, sources=()):
    """One organisation-wide report from the host_results entries of many (account, region) hosts: every
    host listed, failed ones first and named with their failure, the coverage summed over the hosts that
    reported it, per account and per region, and the problems each host's report listed."""
    rows, found = [], []
    for entry in entries:
        row, problems_found = _host_row(entry)
        rows.append(row)
        found.extend(problems_found)
    rows.sort(key=lambda row: (row["status"] != HOST_FAILED, str(row["account_id"]), str(row["region"]), row["host"]))
    source_key, backup_key = _worst_first(_SOURCE_RANK), _worst_first(_BACKUP_RANK)
    found.sort(key=lambda item: (0,) + source_key(item) if item["status"] in _SOURCE_RANK else (1,) + backup_key(item))
    reported = [row for row in rows if row["coverage"]]
    ok, total = sum(row["coverage"]["ok"] for row in reported), sum(row["coverage"]["total"] for row in reported)
    counts = {"hosts": len(rows), "failed_hosts": sum(1 for row in rows if row["status"] == HOST_FAILED)}
    for kind, statuses in (("sources", coverage.SOURCE_STATUSES), ("backups", coverage.BACKUP_STATUSES)):
        counts[kind] = {
            status: sum((row["counts"] or {}).get(kind, {}).get(status, 0) for row in reported) for status in statuses
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": ORGANISATION,
        "generated_at": generated_at.isoformat(),
        "sources": list(sources),
        "counts": counts,
        "coverage": {
            "percent": _percent(ok, total),
            "ok": ok,
            "total": total,
            "accounts": _host_share(rows, "account_id"),
            "regions": _host_share(rows, "region"),
        },
        "failed_hosts": [row["host"] for row in rows if row["status"] == HOST_FAILED],
        "hosts": rows,
        "problems": found,
        "problems_total": sum(row["problems_total"] for row in rows),
    }


def merged_msg_lines(report):
    counts, cover = report["counts"], report["coverage"]
    lines = ["{0} host(s), {1} failed".format(counts["hosts"], counts["failed_hosts"])]
    if cover["total"]:
        lines.append("coverage {0}% ({1} of {2} sources ok)".format(cover["percent"], cover["ok"], cover["total"]))
    failed = [row for row in report["hosts"] if row["status"] == HOST_FAILED]
    if failed:
        shown = "; ".join("{0}: {1}".format(row["host"], row["message"]) for row in failed[:MSG_ITEMS])
        more = len(failed) - MSG_ITEMS
        lines.append("failed host(s): {0}{1}".format(shown, " (and {0} more)".format(more) if more > 0 else ""))
    if report["problems_total"]:
        lines.append("{0} problem(s) in the hosts' reports".format(report["problems_total"]))
    return lines


_HOST_COLUMNS = ("Status", "Host", "Account", "Region", "Coverage", "Ok", "Sources", "Problems", "Ran", "Failure")


def _host_cells(row):
    cover = row["coverage"] or {}
    return (
        row["status"],
        row["host"],
        row["account_id"] or "",
        row["region"] or "",
        _percent_text(cover.get("percent")) if row["coverage"] else "no report",
        cover.get("ok", ""),
        cover.get("total", ""),
        row["problems_total"],
        ", ".join(str(action).rsplit(".", 1)[-1] for action in row["actions"]),
        row["message"] or "",
    )


def _merged_header(report):
    counts = report["counts"]
    return "{0}: {1} hosts ({2} failed), generated {3}".format(
        TITLE, counts["hosts"], counts["failed_hosts"], report["generated_at"]
    )


def _merged_scopes(report):
    cover = report["coverage"]
    rows = [("all", cover["percent"], cover["ok"], cover["total"])]
    for field in ("accounts", "regions"):
        rows += [
            ("{0} {1}".format(field[:-1], name), g["percent"], g["ok"], g["total"]) for name, g in cover[field].items()
        ]
    return rows


def merged_markdown(report):
    lines = ["# " + _merged_header(report), ""]
    failed = [row for row in report["hosts"] if row["status"] == HOST_FAILED]
    lines += ["## Failed hosts ({0})".format(len(failed)), ""]
    if failed:
        lines += ["| Host | Account | Region | Failure |", "|---|---|---|---|"]
        lines += [
            "| {0} | {1} | {2} | {3} |".format(
                *(_md_cell(c) for c in (r["host"], r["account_id"], r["region"], r["message"]))
            )
            for r in failed
        ]
    else:
        lines.append("None.")
    lines += ["", "## Coverage", "", "| scope | coverage | ok | sources |", "|---|---|---|---|"]
    lines += [
        "| {0} | {1} | {2} | {3} |".format(_md_cell(s), _percent_text(p), o, t) for s, p, o, t in _merged_scopes(report)
    ]
    lines += ["", "## Hosts ({0})".format(len(report["hosts"])), ""]
    lines += ["| " + " | ".join(_HOST_COLUMNS) + " |", "|" + "---|" * len(_HOST_COLUMNS)]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in _host_cells(row)) + " |" for row in report["hosts"]]
    lines += ["", "## Problems ({0})".format(report["problems_total"]), ""]
    if report["problems"]:
        lines += ["| Account | " + " | ".join(_PROBLEM_COLUMNS) + " |", "|" + "---|" * (len(_PROBLEM_COLUMNS) + 1)]
        lines += [
            "| " + " | ".join(_md_cell(cell) for cell in (item["account_id"],) + _row(item)) + " |"
            for item in report["problems"]
        ]
    else:
        lines.append("None listed.")
    return "\n".join(lines) + "\n"


def merged_html(report):
    cover = report["coverage"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>{0}</title>'.format(_e(TITLE)),
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<style>{0}</style></head><body>".format(_CSS),
        "<h1>{0}</h1>".format(_e(_merged_header(report))),
        '<p><span class="big" id="coverage-percent">{0}</span> of {1} sources backed up within their RPO</p>'.format(
            _e(_percent_text(cover["percent"])), cover["total"]
        ),
    ]
    for row in report["hosts"]:
        if row["status"] == HOST_FAILED:
            out.append(
                '<p class="status bad" data-failed-host="{0}">Failed: {1}</p>'.format(
                    _e(row["host"]),
                    _e("{0} ({1}, {2}): {3}".format(row["host"], row["account_id"], row["region"], row["message"])),
                )
            )
    out.append(
        '<h2>Coverage</h2><table id="coverage"><tr><th>scope</th><th>coverage</th><th>ok</th><th>sources</th></tr>'
    )
    for scope, percent, ok, total in _merged_scopes(report):
        out.append(
            "<tr><td>{0}</td><td>{1}</td><td>{2}</td><td>{3}</td></tr>".format(
                _e(scope), _e(_percent_text(percent)), ok, total
            )
        )
    out.append('</table><h2>Hosts ({0})</h2><table id="hosts"><tr>'.format(len(report["hosts"])))
    out.append("".join("<th>{0}</th>".format(_e(c)) for c in _HOST_COLUMNS) + "</tr>")
    for row in report["hosts"]:
        cells = _host_cells(row)
        out.append(
            '<tr data-host="{0}" data-status="{1}"><td class="status {2}">{1}</td>{3}</tr>'.format(
                _e(row["host"]),
                _e(row["status"]),
                "bad" if row["status"] == HOST_FAILED else "good",
                "".join("<td>{0}</td>".format(_e(cell)) for cell in cells[1:]),
            )
        )
    out.append("</table><h2>Problems ({0})</h2>".format(report["problems_total"]))
    if report["problems"]:
        columns = ("Account",) + _PROBLEM_COLUMNS
        out.append('<table id="problems"><tr>' + "".join("<th>{0}</th>".format(_e(c)) for c in columns) + "</tr>")
        for item in report["problems"]:
            cells = (item["account_id"],) + _row(item)
            out.append(
                '<tr data-status="{0}" data-resource="{1}">{2}</tr>'.format(
                    _e(item["status"]), _e(item["resource"]), "".join("<td>{0}</td>".format(_e(c)) for c in cells)
                )
            )
        out.append("</table>")
    else:
        out.append("<p>None listed.</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


MERGED_RENDERERS = {"json_path": to_json, "html_path": merged_html, "markdown_path": merged_markdown}
