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
