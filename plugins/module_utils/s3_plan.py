# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the S3 mirror does with each key, as pure functions: download, adopt or leave alone, the merge
of the sorted listing with the sorted index, and the limits on deletes and replacements."""

import stat

MTIME_TOLERANCE = 1.0
# The reason of a file found complete on disk (the object's size and LastModified) that the index does not
# describe, as a killed run leaves it: it is recorded without a GET.
ADOPT = "complete on disk"
CHANGED = "changed"


def decide(obj, entry, local_stat):
    """What to do with a listed object: ``(download, reason)``.

    ``entry`` is its index entry or None, ``local_stat`` the ``os.lstat`` result of its local
    file or None.  Size and ETag (and the version, when both have one) decide whether the object
    changed, so an object rewritten with the same size is fetched again; the local file must
    still be the one the index describes (same size and mtime), else it is fetched again too.

    A regular file with the object's size and LastModified as mtime (what the mirror gives the
    files it places) is adopted, ``(False, ADOPT)``, when the index does not describe it: a new
    key, or a changed one whose index entry has another LastModified (else the mtime cannot tell
    the two versions apart).
    """
    if entry is None:
        return (False, ADOPT) if _holds(local_stat, obj) else (True, "new")
    changed = entry.size != obj.size or entry.etag != obj.etag
    changed = changed or (obj.version_id is not None and entry.version_id not in (None, obj.version_id))
    if changed or abs(entry.last_modified - obj.last_modified) >= MTIME_TOLERANCE:
        if abs(entry.last_modified - obj.last_modified) >= MTIME_TOLERANCE and _holds(local_stat, obj):
            return False, ADOPT
        return True, CHANGED
    if local_stat is None:
        return True, "missing locally"
    if local_stat.st_size != obj.size or abs(local_stat.st_mtime - obj.last_modified) >= MTIME_TOLERANCE:
        return True, "local copy differs"
    return False, "unchanged"


def _holds(local_stat, obj):
    """Whether a local file looks like the mirror's copy of ``obj``: regular, same size, mtime its LastModified."""
    return (
        local_stat is not None
        and stat.S_ISREG(local_stat.st_mode)
        and local_stat.st_size == obj.size
        and abs(local_stat.st_mtime - obj.last_modified) < MTIME_TOLERANCE
    )


def merge(listing, index_entries):
    """Merge two key-sorted streams: yields ``(object or None, entry or None)`` in key order.

    Both are read lazily, so memory does not grow with the bucket.
    """
    entries = iter(index_entries)
    entry = next(entries, None)
    for obj in listing:
        while entry is not None and entry.key < obj.key:
            yield None, entry
            entry = next(entries, None)
        if entry is not None and entry.key == obj.key:
            yield obj, entry
            entry = next(entries, None)
        else:
            yield obj, None
    while entry is not None:
        yield None, entry
        entry = next(entries, None)


def parse_max_delete(value):
    """``None`` (no limit), ``"25"`` (files) or ``"10%"`` (of the files in the index) -> ``(number, is_percent)``."""
    return parse_file_limit(value, "max_delete")


def parse_file_limit(value, option):
    """A limit on files, ``max_delete`` or ``max_changed``: ``None`` (no limit), ``"25"`` (files) or ``"10%"``
    (of the files in the index) -> ``(number, is_percent)``; raises ValueError naming the option and value."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    is_percent = text.endswith("%")
    number_text = text[:-1].strip() if is_percent else text
    try:
        number = float(number_text) if is_percent else int(number_text)
    except ValueError:
        raise ValueError("{0} must be a number of files (25) or a percentage (10%), got {1!r}".format(option, value))
    if number < 0 or (is_percent and number > 100):
        raise ValueError("{0} must be between 0 and 100% or a count of at least 0, got {1!r}".format(option, value))
    return number, is_percent


def change_limit_exceeded(to_replace, indexed, max_changed):
    """None when ``to_replace`` mirrored files may be replaced in one run, else the reason."""
    return _limit_exceeded(
        to_replace, indexed, max_changed, "max_changed", "mirrored files", "would be replaced by changed objects"
    )


def delete_limit_exceeded(to_delete, indexed, max_delete):
    """None when ``to_delete`` files may go, else the reason (``max_delete`` from parse_max_delete)."""
    return _limit_exceeded(to_delete, indexed, max_delete, "max_delete", "files", "would be deleted")


def _limit_exceeded(count, indexed, limit, option, counted, outcome):
    """None when ``count`` of ``indexed`` mirrored files are within ``limit`` (``(number, is_percent)``)."""
    if limit is None or count == 0:
        return None
    number, is_percent = limit
    if is_percent:
        share = 100.0 * count / indexed if indexed else 100.0
        if share > number:
            return "{0} of {1} mirrored files ({2:.1f}%) {3}; {4} is {5:g}%".format(
                count, indexed, share, outcome, option, number
            )
        return None
    if count > number:
        return "{0} {1} {2}; {3} is {4}".format(count, counted, outcome, option, number)
    return None
