"""ListObjectsV2 pages served from a sorted key index and rendered directly, at the cost S3's pages have.

moto 5.2.5 answers every ListObjectsV2 page by copying and scanning every key of the bucket,
sorting the matches, and then cutting the page after the continuation token, so listing a bucket
of N keys in pages of 1,000 costs N^2/1,000: at 100,000 keys the listing alone takes minutes,
which S3's does not. It then renders the page with its generic response serializer, which parses
each key's LastModified back from text with dateutil and looks every field up through its
attribute picker: about 170 ms of CPU for a page of 1,000 keys on an idle core, so one moto process
serves at most a few pages a second at any client concurrency. S3 returns keys in UTF-8 binary
order and a page of at most ``MaxKeys`` entries (keys and common prefixes) after ``StartAfter`` or
the continuation token, in tens of milliseconds at any bucket size.
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
https://docs.aws.amazon.com/AmazonS3/latest/userguide/ListingKeysUsingAPIs.html

The patch keeps, per bucket, the sorted names of its keys (rebuilt when a key is added or removed,
not when one is overwritten) and serves a page by bisecting to its start and reading forward until
it is full, rolling keys up into common prefixes with the delimiter as moto does and bisecting past
the rest of a common prefix instead of reading its keys. moto's own ListObjectsV2 handler still
reads the request and builds the answer; only its rendering is replaced by one that writes the
same XML, element for element in the order of the botocore model moto's serializer follows. The
entries, their order, the truncation, the continuation tokens and the response bytes are moto's own
(tests/unit/harness/test_moto_s3_listing.py compares them).
"""

import bisect
import re
import threading
from xml.sax.saxutils import escape
from xml.sax.saxutils import quoteattr

from moto import settings
from moto.core.serialize import TimestampSerializer
from moto.core.utils import get_service_model
from moto.s3.exceptions import MethodNotAllowed
from moto.s3.models import FakeDeleteMarker
from moto.s3.models import FakeTableStorageBucket
from moto.s3.models import S3Backend
from moto.s3.responses import S3Response
from moto.s3.utils import _VersionedKeyStore

_STORE_WATCHED = False
_LOCK = threading.Lock()
_MODEL = {}
ORIGINAL_LIST_OBJECTS_V2 = S3Backend.list_objects_v2
ORIGINAL_LIST_OBJECTS_V2_RESPONSE = S3Response.list_objects_v2
# moto's S3 serializer writes timestamps in this form (TimestampSerializer.ISO8601_MICRO_ZEROED).
_ZEROED_TIMESTAMP = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z\Z")
_TIMESTAMPS = TimestampSerializer(TimestampSerializer.TIMESTAMP_FORMAT_ISO8601_ZEROED)


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


def _after_prefix(names, position, folder):
    """The position of the first name at or after ``position`` that does not start with ``folder``."""
    last = folder[-1]
    if last == "\U0010ffff":
        while position < len(names) and names[position].startswith(folder):
            position += 1
        return position
    return bisect.bisect_left(names, folder[:-1] + chr(ord(last) + 1), position)


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
    wanted = max_keys + 1
    while position < len(names) and len(entries) < wanted:
        name = names[position]
        if not name.startswith(prefix):
            break
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            folder = prefix + rest.split(delimiter)[0] + delimiter
            if not limit or folder > limit:
                entries.append(folder)
            position = _after_prefix(names, position + 1, folder)
            continue
        position += 1
        key = bucket.keys.get(name)
        if key is None or isinstance(key, FakeDeleteMarker):
            continue
        entries.append(key)
    return self._truncate_result(entries, max_keys)


def _scalar_text(kind):
    """How moto's XML serializer writes a scalar of this model type."""
    if kind == "boolean":
        return lambda value: "true" if value is True or str(value).lower() == "true" else "false"
    if kind in ("integer", "long"):
        return lambda value: str(int(value))
    if kind == "timestamp":
        zeroed = TimestampSerializer.TIMESTAMP_FORMAT_ISO8601_ZEROED
        return lambda value: (
            value
            if isinstance(value, str) and _ZEROED_TIMESTAMP.match(value)
            else _TIMESTAMPS._convert_timestamp_to_str(value, zeroed)
        )
    return str


def _element(name, inner):
    return "<{0}>{1}</{0}>".format(name, inner) if inner else "<{0}/>".format(name)


def _structure_writer(shape):
    """``write(value, out)``: appends the XML of the body members of a structure present in ``value`` (a dict),
    in the model's order, as moto's serializer writes them."""
    members = [
        (member, _writer(member_shape.serialization.get("name", member), member_shape))
        for member, member_shape in shape.members.items()
        if "location" not in member_shape.serialization
    ]

    def write(value, out):
        for member, write_member in members:
            member_value = value.get(member)
            if member_value is not None:
                write_member(member_value, out)

    return write


def _writer(name, shape):
    """``write(value, out)``: appends the elements moto's serializer writes for one member: one, or one per
    item of a flattened list (none for an empty one)."""
    kind = shape.type_name
    if kind == "structure":
        body = _structure_writer(shape)

        def write_structure(value, out):
            inner = []
            body(value, inner)
            out.append(_element(name, "".join(inner)))

        return write_structure
    if kind != "list":
        text = _scalar_text(kind)
        return lambda value, out: out.append(_element(name, escape(text(value))))
    member = shape.member
    flattened = shape.serialization.get("flattened")
    item_name = member.serialization.get("name", name if flattened else "member")
    if member.type_name == "structure":
        body = _structure_writer(member)

        def write_item(item, out):
            # moto leaves out a list item that serializes to nothing.
            if item is not None:
                inner = []
                body(item, inner)
                if inner:
                    out.append(_element(item_name, "".join(inner)))

    else:
        write_item = _writer(item_name, member)

    def write_list(value, out):
        items = []
        for item in value:
            write_item(item, items)
        if flattened:
            out.extend(items)
        else:
            out.append(_element(name, "".join(items)))

    return write_list


def _output_model():
    """What moto's serializer renders ListObjectsV2 from: (root element, namespace, writer of the body)."""
    if "output" not in _MODEL:
        model = get_service_model("s3")
        shape = model.operation_model("ListObjectsV2").output_shape
        _MODEL["output"] = (
            shape.serialization["resultWrapper"],
            model.metadata["xmlNamespace"],
            _structure_writer(shape),
        )
    return _MODEL["output"]


def render_list_objects_v2(response, action_result):
    """What ``S3Response.serialized`` returns for a ListObjectsV2 result, without the generic serializer."""
    result = action_result.result
    if isinstance(result, Exception) or settings.PRETTIFY_RESPONSES:
        return S3Response.serialized(response, action_result)
    root, namespace, write = _output_model()
    parts = []
    write(result, parts)
    body = '<?xml version="1.0" encoding="utf-8"?>\n<{0} xmlns={1}>{2}</{0}>'.format(
        root, quoteattr(namespace), "".join(parts)
    )
    headers = {"Content-Type": "application/xml"}
    headers.update(response.response_headers)
    return 200, headers, body


def list_objects_v2_response(self):
    self.serialized = lambda action_result: render_list_objects_v2(self, action_result)
    try:
        return ORIGINAL_LIST_OBJECTS_V2_RESPONSE(self)
    finally:
        del self.serialized


def unapply():
    """moto's own ListObjectsV2 again (its scan of the bucket and its serializer)."""
    S3Backend.list_objects_v2 = ORIGINAL_LIST_OBJECTS_V2
    S3Response.list_objects_v2 = ORIGINAL_LIST_OBJECTS_V2_RESPONSE


def apply():
    global _STORE_WATCHED
    S3Backend.list_objects_v2 = list_objects_v2
    S3Response.list_objects_v2 = list_objects_v2_response
    if _STORE_WATCHED:
        return
    # The index of a key store is dropped whenever a key is added or removed.
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
    _STORE_WATCHED = True
