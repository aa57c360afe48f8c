"""moto's fixed costs per request and per listed key, which AWS does not put on the caller's machine.

moto serves every service from one Python process, so each request's CPU in moto is CPU the
modules under test do not get, and bounds the pages a second any number of clients can get. AWS
routes a request by its endpoint and SigV4 credential scope and answers a ListObjectsV2 page in tens
of milliseconds on its own machines:
https://docs.aws.amazon.com/general/latest/gr/rande.html (service endpoints)
https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html (credential scope)
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html

moto 5.2.5 spends, per request and per key, work whose result never changes:

* ``DomainDispatcherApplication.get_backend_for_host`` lists moto's package folder (``os.listdir``
  and an ``isdir`` per service) and matches the host against every service's URL patterns, twice
  per request. Here its answer is kept per host: the folder and the patterns do not change while the
  server runs.
* ``BaseResponse._enrich_response`` runs a regular expression with a look-behind over the whole body
  to put the request id into a ``<RequestId>`` element; a ListObjectsV2 page has none. Here a body
  without ``<RequestId>`` is returned as it is, which is what the substitution returns for it (the
  ``x-amzn-requestid`` header is still set).
* ``FakeKey.last_modified_ISO8601`` formats the key's LastModified again for every listing that
  names the key. Here the text is kept with the datetime it was made from, and made again when the
  key's LastModified is another one (an overwrite).

Every answer is the one moto gives (tests/unit/harness/test_moto_request_cost.py compares them).
"""

from moto.core.responses import BaseResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.s3.models import FakeKey
from moto.utilities.aws_headers import gen_amzn_requestid_long

ORIGINAL_GET_BACKEND_FOR_HOST = DomainDispatcherApplication.get_backend_for_host
ORIGINAL_ENRICH_RESPONSE = BaseResponse._enrich_response  # pylint: disable=protected-access
ORIGINAL_LAST_MODIFIED_ISO8601 = FakeKey.last_modified_ISO8601


def get_backend_for_host(self, host):
    # moto calls it holding the dispatcher's lock (get_application).
    backends = self.__dict__.setdefault("_backend_for_host", {})
    if host not in backends:
        backends[host] = ORIGINAL_GET_BACKEND_FOR_HOST(self, host)
    return backends[host]


def enrich_response(headers, body):
    if isinstance(body, str) and "<RequestId>" not in body:
        if "status" in headers:
            headers["status"] = str(headers["status"])
        gen_amzn_requestid_long(headers)  # the x-amzn-requestid header, as moto sets it
        return headers, body
    return ORIGINAL_ENRICH_RESPONSE(headers, body)


def last_modified_iso8601(self):
    made_from = self.last_modified
    kept = self.__dict__.get("_last_modified_iso8601")
    if kept is None or kept[0] is not made_from:
        kept = (made_from, ORIGINAL_LAST_MODIFIED_ISO8601.fget(self))
        self.__dict__["_last_modified_iso8601"] = kept
    return kept[1]


def apply():
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host
    BaseResponse._enrich_response = staticmethod(enrich_response)  # pylint: disable=protected-access
    FakeKey.last_modified_ISO8601 = property(last_modified_iso8601)


def unapply():
    DomainDispatcherApplication.get_backend_for_host = ORIGINAL_GET_BACKEND_FOR_HOST
    BaseResponse._enrich_response = staticmethod(ORIGINAL_ENRICH_RESPONSE)  # pylint: disable=protected-access
    FakeKey.last_modified_ISO8601 = ORIGINAL_LAST_MODIFIED_ISO8601
