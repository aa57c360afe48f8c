# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the S3 mirror does with each key, as pure functions: download or not, the merge of the
sorted listing with the sorted index, and the limit on deletes."""

MTIME_TOLERANCE = 1.0


def decide(obj, entry, local_stat):
    """What to do with a listed object: ``(download, reason)``.

    ``entry`` is its index entry or None, ``local_stat`` the ``os.stat_result`` of its local
    file or None.  Size and ETag decide whether the object changed, so an object rewritten
    with the same size is fetched again; the local file must still be the one the index
    describes (same size and mtime), else it is fetched again too.
    """
    if entry is None:
        return True, "new"
    if entry.size != obj.size or entry.etag != obj.etag:
        return True, "changed"
    if abs(entry.last_modified - obj.last_modified) >= MTIME_TOLERANCE:
        return True, "changed"
    if local_stat is None:
        return True, "missing locally"
    if local_stat.st_size != obj.size or abs(local_stat.st_mtime - obj.last_modified) >= MTIME_TOLERANCE:
        return True, "local copy differs"
    return False, "unchanged"


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
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    is_percent = text.endswith("%")
    number_text = text[:-1].strip() if is_percent else text
    try:
        number = float(number_text) if is_percent else int(number_text)
    except ValueError:
        raise ValueError("max_delete must be a number of files (25) or a percentage (10%), got {0!r}".format(value))
    if number < 0 or (is_percent and number > 100):
        raise ValueError("max_delete must be between 0 and 100% or a count of at least 0, got {0!r}".format(value))
    return number, is_percent


def delete_limit_exceeded(to_delete, indexed, max_delete):
    """None when ``to_delete`` files may go, else the reason (``max_delete`` from parse_max_delete)."""
    if max_delete is None or to_delete == 0:
        return None
    number, is_percent = max_delete
    if is_percent:
        share = 100.0 * to_delete / indexed if indexed else 100.0
        if share > number:
            return "{0} of {1} mirrored files ({2:.1f}%) would be deleted; max_delete is {3:g}%".format(
                to_delete, indexed, share, number
            )
        return None
    if to_delete > number:
        return "{0} files would be deleted; max_delete is {1}".format(to_delete, number)
    return None
