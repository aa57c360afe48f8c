"""The request-cost patch of the moto harness gives moto's own answers: headers, bodies, backends, timestamps."""

import contextlib
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
from moto.backends import get_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey

from tests.harness import moto_request_cost
from tests.harness.moto_server import ACCOUNT_ID

BUCKET = "request-cost"


@contextlib.contextmanager
def unpatched():
    moto_request_cost.unapply()
    try:
        yield
    finally:
        moto_request_cost.apply()


def answer(request):
    """``(status, headers without the varying ones, body with its request id blanked, request ids)``."""
    try:
        with urllib.request.urlopen(request) as response:
            status, headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, dict(exc.headers), exc.read()
    request_id = headers.pop("x-amzn-requestid", None)
    headers.pop("Date", None)
    in_body = re.findall(rb"<RequestId>([^<]*)</RequestId>", body)
    return status, headers, re.sub(rb"<RequestId>[^<]*</RequestId>", b"<RequestId/>", body), request_id, in_body


def requests(endpoint):
    """S3 listings and errors (bodies without and with ``<RequestId>``), an STS query call."""
    listing = "{0}/{1}?{2}".format(endpoint, BUCKET, urllib.parse.urlencode({"list-type": "2", "max-keys": "2"}))
    missing = "{0}/no-such-bucket-here?list-type=2".format(endpoint)
    sts = urllib.request.Request(
        endpoint + "/",
        data=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261202/us-east-1/sts/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    return [listing, missing, sts]


@pytest.fixture
def endpoint(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key in ("a", "b/c", "\u00e9t\u00e9", "z"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return aws.endpoint


def test_answers_are_moto_s_own(endpoint):
    patched = [answer(request) for request in requests(endpoint)]
    with unpatched():
        original = [answer(request) for request in requests(endpoint)]
    assert [entry[:3] for entry in patched] == [entry[:3] for entry in original]
    for _status, _headers, _body, request_id, in_body in patched + original:
        assert request_id, "x-amzn-requestid header missing"
        # Where a body names its request id, it is the header's, patched or not.
        assert in_body in ([], [request_id.encode()])
    assert [bool(entry[4]) for entry in patched] == [False, True, True]
    assert [entry[0] for entry in patched] == [200, 404, 200]


def test_the_backend_of_a_host_is_moto_s_answer():
    app = DomainDispatcherApplication(lambda backend: None)
    hosts = [
        None,
        "moto_api",
        "s3",
        "ec2",
        "s3.us-east-1.amazonaws.com",
        "bucket.s3.eu-west-1.amazonaws.com",
        "ec2.ap-southeast-2.amazonaws.com",
        "sts.amazonaws.com",
        "iam.amazonaws.com",
        "example.com",
    ]
    patched = [app.get_backend_for_host(host) for host in hosts * 2]
    original = [moto_request_cost.ORIGINAL_GET_BACKEND_FOR_HOST(app, host) for host in hosts * 2]
    assert patched == original
    assert patched[hosts.index("s3.us-east-1.amazonaws.com")] == "s3"
    assert patched[hosts.index("ec2.ap-southeast-2.amazonaws.com")] == "ec2"


def test_last_modified_text_follows_an_overwrite(endpoint, aws):
    s3 = aws.client("s3")
    bucket = get_backend("s3")[ACCOUNT_ID]["global"].get_bucket(BUCKET)
    key = bucket.keys["a"]
    first = key.last_modified_ISO8601
    assert first == moto_request_cost.ORIGINAL_LAST_MODIFIED_ISO8601.fget(key)
    key.last_modified = key.last_modified.replace(year=2020)
    assert key.last_modified_ISO8601 == moto_request_cost.ORIGINAL_LAST_MODIFIED_ISO8601.fget(key)
    assert key.last_modified_ISO8601.startswith("2020-")
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"overwritten")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="a")["Contents"][0]["LastModified"]
    assert listed.year != 2020
    assert isinstance(bucket.keys["a"], FakeKey)
    assert bucket.keys["a"].last_modified_ISO8601 == moto_request_cost.ORIGINAL_LAST_MODIFIED_ISO8601.fget(
        bucket.keys["a"]
    )
