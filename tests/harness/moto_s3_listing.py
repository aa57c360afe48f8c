"""ListObjectsV2 pages served from a sorted key index, at the cost S3's pages have.

moto 5.2.5 answers every ListObjectsV2 page by copying and scanning every key of the bucket,
sorting the matches, and then cutting the page after the continuation token, so listing a bucket
of N keys in pages of 1,000 costs N^2/1,000: at 100,000 keys the listing alone takes minutes,
which S3's does not. S3 returns keys in UTF-8 binary order and a page of at most ``MaxKeys``
entries (keys and common prefixes) after ``StartAfter`` or the continuation token.
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/ListingKeysUsingAPIs.html

The patch keeps, per bucket, the sorted names of its keys (rebuilt when a key is added or removed,
not when one is overwritten) and serves a page by bisecting to its start and reading forward until
it is full, rolling keys up into common prefixes with the delimiter as moto does. The entries,
their order, the truncation and the continuation tokens are moto's own (the tests compare both).
"""

import bisect
import threading

from moto.s3.models import FakeDeleteMarker
from moto.s3.models import FakeTableStorageBucket
from moto.s3.models import S3Backend
from moto.s3.utils import _VersionedKeyStore

from moto.s3.exceptions import MethodNotAllowed

_PATCHED = False
_LOCK = threading.Lock()
ORIGINAL_LIST_OBJECTS_V2 = S3Backend.list_objects_v2


def sorted_names(store):
    """The sorted key names of a bucket's key store, rebuilt only after a key was added or removed."""
    with _LOCK:
        names = store.__dict__.get("_sorted_names")
        if names is None:
            names = sorted(dict.keys(store))
            store.__dict__["_sorted_names"] = names
        return names


def _forget(store):
    store.__dict__["_sorted_names"] = None


def list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys):
    if isinstance(bucket, FakeTableStorageBucket):
        raise MethodNotAllowed()
    prefix = prefix or ""
    names = sorted_names(bucket.keys)
    limit = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
    position = bisect.bisect_left(names, prefix)
    if limit:
        position = max(position, bisect.bisect_right(names, limit))
    entries = []
    last_folder = None
    wanted = max_keys + 1
    while position < len(names) and len(entries) < wanted:
        name = names[position]
        position += 1
        if not name.startswith(prefix):
            break
        if last_folder is not None and name.startswith(last_folder):
            continue
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            last_folder = prefix + rest.split(delimiter)[0] + delimiter
            if not limit or last_folder > limit:
                entries.append(last_folder)
            continue
        key = bucket.keys.get(name)
        if key is None or isinstance(key, FakeDeleteMarker):
            continue
        entries.append(key)
    return self._truncate_result(entries, max_keys)


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original_setitem = _VersionedKeyStore.__setitem__
    original_setlist = _VersionedKeyStore.setlist
    original_pop = _VersionedKeyStore.pop

    def setitem(self, key, value):
        if not dict.__contains__(self, key):
            _forget(self)
        return original_setitem(self, key, value)

    def setlist(self, key, list_):
        if not dict.__contains__(self, key):
            _forget(self)
        return original_setlist(self, key, list_)

    def pop(self, key):
        _forget(self)
        return original_pop(self, key)

    def delitem(self, key):
        _forget(self)
        return dict.__delitem__(self, key)

    _VersionedKeyStore.__setitem__ = setitem
    _VersionedKeyStore.setlist = setlist
    _VersionedKeyStore.pop = pop
    _VersionedKeyStore.__delitem__ = delitem
    S3Backend.list_objects_v2 = list_objects_v2
    _PATCHED = True
