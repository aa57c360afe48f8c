# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The result vocabulary every module shares.

* what was done goes under a plural resource key (``images``, ``snapshots``, ...), each item
  ``state: planned`` in check mode;
* ``skipped_resources``: ``{resource, region, reason}`` for everything left alone;
* ``errors``: ``{resource, region, action, code, message}``;
* ``msg``: what a person reads in a job log without ``-v``: a count per action and the first
  few items with their reasons, "would" in check mode, short whatever the size of the run.
"""

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

PLANNED = "planned"
MSG_ITEMS = 3  # items shown per line of the summary
MSG_ITEM_CHARS = 160


def error_code(exc):
    try:
        if isinstance(exc, ClientError):
            return exc.response.get("Error", {}).get("Code", "ClientError")
    except NameError:
        pass
    return getattr(exc, "code", None) or type(exc).__name__


def error_message(exc):
    try:
        if isinstance(exc, ClientError):
            return exc.response.get("Error", {}).get("Message") or str(exc)
    except NameError:
        pass
    return getattr(exc, "message", None) or str(exc)


def error_entry(resource, region, action, exc=None, code=None, message=None):
    """One item of ``errors``: from an exception, or from ``code`` and ``message``."""
    return {
        "resource": resource,
        "region": region,
        "action": action,
        "code": code or error_code(exc),
        "message": message if message is not None else error_message(exc),
    }


def skipped_entry(resource, region, reason, **details):
    """One item of ``skipped_resources``; ``details`` add ids a next task may need."""
    return dict(details, resource=resource, region=region, reason=reason)


def _clip(text):
    text = " ".join(str(text).split())
    return text if len(text) <= MSG_ITEM_CHARS else text[: MSG_ITEM_CHARS - 3] + "..."


def _listed(items, describe, total=None):
    shown = "; ".join(_clip(describe(item)) for item in items[:MSG_ITEMS])
    more = (len(items) if total is None else total) - min(len(items), MSG_ITEMS)
    if not shown:
        return ""
    return ": " + shown + (" (and {0} more)".format(more) if more > 0 else "")


class Summary:
    """Builds ``msg``: one line per action, e.g. ``created 26 AMI(s): web-1 (i-0...), ...``.

    ``check_mode`` turns each past-tense verb into its "would" form.
    """

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.lines = []

    def done(self, past, present, noun, items, describe, total=None):
        """``past``/``present``: ``"deleted"``/``"delete"``; nothing is written for no items.

        ``total``: the count when ``items`` holds only the first few (a result capped in size).
        """
        verb = "would " + present if self.check_mode else past
        self._line(verb + " {0} " + noun, items, describe, total)

    def skipped(self, items, noun="resource(s)", total=None):
        self._line("left alone {0} " + noun, items, lambda item: "{resource}: {reason}".format(**item), total)

    def errors(self, items, total=None):
        describe = "{resource} in {region} ({action}): {code} {message}".format
        self._line("{0} error(s)", items, lambda item: describe(**item), total)

    def _line(self, head, items, describe, total):
        count = len(items) if total is None else total
        if count:
            self.lines.append(head.format(count) + _listed(items, describe, total))

    def note(self, text):
        if text:
            self.lines.append(_clip(text) if len(text) > 4 * MSG_ITEM_CHARS else text)

    def text(self, nothing="nothing to do"):
        if not self.lines:
            return ("check mode: " if self.check_mode else "") + nothing
        prefix = "check mode, nothing changed. " if self.check_mode else ""
        return prefix + ". ".join(line[:1].upper() + line[1:] for line in self.lines) + "."


def finish(module, result):
    """Exit with the result; when any item failed, fail the task after all the rest was done."""
    if result.get("errors"):
        module.fail_json(**result)
    module.exit_json(**result)
