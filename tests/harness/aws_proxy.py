"""An AWS-like HTTP proxy in front of moto: request counts, latency, EC2 throttling and faults.

moto answers in milliseconds, never throttles and never fails. Modules reach this proxy through
``endpoint_url``; it forwards to moto and, as configured at run time, behaves like AWS under load:

* counts every request by service, region and API action (EC2/IAM/STS ``Action`` parameter,
  JSON ``X-Amz-Target``, S3 operation from method, path and query) and by outcome, and keeps a
  timeline: requests per second since the first one, by action, and when each action came first and last;
* adds latency to each answer (fixed, or uniform around a mean), and to each S3 listing page
  (``list_page_latency_ms``, on ListObjectsV2 and ListObjectVersions): S3 takes tens of milliseconds
  to answer a page of 1,000 keys where moto takes a few, which is what makes one sequential listing
  of a large bucket slow;
* throttles EC2 with token buckets per region (the SigV4 credential scope) and per API, sized and
  refilled by the action's family, answering ``RequestLimitExceeded`` with HTTP 503, as EC2 does.
  https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html
  ("Request throttling for the Amazon EC2 API": each API has its own bucket per account and region;
  mutating actions 50 tokens / 5 per second, non-mutating (Describe*) 100 / 20, unfiltered and
  unpaginated non-mutating 50 / 10; actions with their own limits, e.g. CreateSnapshot, DeleteSnapshot,
  DeregisterImage 100 / 5). ``bucket_scope: family`` makes the APIs of one family share a bucket;
* injects faults: a share of 500/503 answers before moto sees the request (``error_rate``) or after
  moto processed it (``error_after_rate``: the "timeout after success" case), connection resets before
  or after forwarding, and whole regions down.

Control, on the proxy's own port: ``GET /__proxy__/stats``, ``POST /__proxy__/config`` (a JSON object
of settings, merged), ``POST /__proxy__/reset`` (counts and buckets; ``{"config": true}`` also restores
the default settings). In-process: ``start(upstream)`` returns an ``AwsProxy``.

Run as ``python -m tests.harness.aws_proxy --upstream http://127.0.0.1:PORT --port N``.
"""

import argparse
import collections
import http.client
import http.server
import io
import json
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields

CONTROL_PREFIX = "/__proxy__/"


# ---------------------------------------------------------------- EC2 throttling model


@dataclass(frozen=True)
class Family:
    name: str
    burst: float
    refill_per_second: float


MUTATING = Family("mutating", 50, 5)
NON_MUTATING = Family("non-mutating", 100, 20)
UNFILTERED_NON_MUTATING = Family("unfiltered-non-mutating", 50, 10)
SNAPSHOT_AND_IMAGE = Family("snapshot-and-image", 100, 5)

SPECIFIC_FAMILIES = {action: SNAPSHOT_AND_IMAGE for action in ("CreateSnapshot", "DeleteSnapshot", "DeregisterImage")}
NON_MUTATING_PREFIXES = ("Describe", "Get", "List", "Search", "Head")
PAGINATION_PARAMETERS = ("MaxResults", "NextToken")


def ec2_family(action, params=None):
    """The throttling family of an EC2 API call (``params``: the request's query parameters)."""
    if action in SPECIFIC_FAMILIES:
        return SPECIFIC_FAMILIES[action]
    if action.startswith(NON_MUTATING_PREFIXES):
        if params is None:
            return NON_MUTATING
        filtered = any(key.startswith("Filter.") for key in params)
        paginated = any(key in params for key in PAGINATION_PARAMETERS)
        return NON_MUTATING if filtered or paginated else UNFILTERED_NON_MUTATING
    return MUTATING


def is_mutating(service, action):
    """Whether an API call changes something (counted for check_mode)."""
    if service == "s3":
        return not action.startswith(("Get", "Head", "List"))
    return not action.startswith(NON_MUTATING_PREFIXES)


class TokenBucket:
    """EC2's token bucket: ``burst`` tokens, refilled continuously at ``rate`` per second."""

    def __init__(self, burst, rate, clock=time.monotonic):
        self.burst = float(burst)
        self.rate = float(rate)
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


def throttle_floor(calls, bucket_scope="action", families=None):
    """The fewest seconds EC2's buckets (full at the start) allow for ``calls``.

    ``calls``: ``{(region, action): count}`` of EC2 calls that must succeed. ``families``: optional
    ``{action: Family}`` for actions whose family depends on parameters (filtered Describe calls).
    Returns ``(seconds, {bucket: seconds})``.
    """
    needed = collections.Counter()
    sizes = {}
    for (region, action), count in calls.items():
        family = (families or {}).get(action) or ec2_family(action)
        key = (region, action if bucket_scope == "action" else family.name)
        needed[key] += count
        sizes[key] = family
    per_bucket = {
        "{0}/{1}".format(*key): max(0.0, (count - sizes[key].burst) / sizes[key].refill_per_second)
        for key, count in needed.items()
    }
    return (max(per_bucket.values()) if per_bucket else 0.0), per_bucket


# ---------------------------------------------------------------- request identification

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


def credential_scope(headers, query):
    """``(region, service)`` from the SigV4 Authorization header or a presigned URL's query."""
    match = _CREDENTIAL_SCOPE.search(headers.get("Authorization") or "")
    if not match:
        credential = (query.get("X-Amz-Credential") or [""])[0]
        match = _CREDENTIAL_SCOPE.search("Credential=" + credential)
    if not match:
        return "unknown", "unknown"
    return match.group(1), match.group(2)


_S3_SUBRESOURCES = {
    "acl": "Acl",
    "cors": "Cors",
    "encryption": "Encryption",
    "lifecycle": "LifecycleConfiguration",
    "location": "Location",
    "logging": "Logging",
    "notification": "NotificationConfiguration",
    "ownershipControls": "OwnershipControls",
    "policy": "Policy",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "Replication",
    "tagging": "Tagging",
    "versioning": "Versioning",
    "website": "Website",
    "attributes": "Attributes",
    "retention": "Retention",
    "legal-hold": "LegalHold",
    "object-lock": "ObjectLockConfiguration",
}
_S3_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}


def s3_operation(method, path, query, headers):
    """The S3 API operation of a path-style request."""
    parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
    bucket = parts[0]
    has_key = len(parts) > 1 and parts[1] != ""
    verb = _S3_VERBS.get(method, method.title())
    if not bucket:
        return "ListBuckets" if method == "GET" else verb + "Service"
    if "uploads" in query:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if "uploadId" in query:
        return {
            "PUT": "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, verb + "MultipartUpload")
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    for name, title in _S3_SUBRESOURCES.items():
        if name in query:
            if name == "location":
                return "GetBucketLocation"
            return verb + ("Object" if has_key else "Bucket") + title
    if not has_key:
        if method == "GET":
            if "versions" in query:
                return "ListObjectVersions"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}.get(method, verb + "Bucket")
    if method == "PUT" and "x-amz-copy-source" in headers:
        return "CopyObject"
    return verb + "Object"


def identify(method, path, query, headers, body):
    """``(service, region, action, params)`` of one request."""
    region, service = credential_scope(headers, query)
    if service == "s3":
        return service, region, s3_operation(method, path, query, headers), query
    target = headers.get("X-Amz-Target")
    if target:
        return service, region, target.rsplit(".", 1)[-1], {}
    params = dict(query)
    content_type = headers.get("Content-Type") or ""
    if body and "x-www-form-urlencoded" in content_type:
        params.update(urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
    action = (params.get("Action") or [None])[0] or rest_operation(service, method, path.split("?", 1)[0])
    return service, region, action or method + " " + path.split("?", 1)[0], params


_REST_ROUTES = {}


def rest_operation(service, method, path):
    """The operation of a REST-JSON request (Recycle Bin: ``PATCH /rules/{identifier}/lock`` is LockRule),
    from the method and request URI of each operation in botocore's model of the service; None if none matches."""
    if service not in _REST_ROUTES:
        import botocore.session  # the proxy runs where boto3 does

        routes = []
        try:
            model = botocore.session.get_session().get_service_model(service)
        except Exception:  # pylint: disable=broad-except
            model = None
        if model is not None and model.metadata.get("protocol") in ("rest-json", "rest-xml"):
            for name in model.operation_names:
                http = model.operation_model(name).http
                uri = http["requestUri"].split("?", 1)[0]
                pattern = re.sub(r"\\{[^}]+\\+\\}", ".+", re.escape(uri))
                pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", pattern)
                routes.append((http["method"], re.compile("^" + pattern + "$"), name))
        _REST_ROUTES[service] = routes
    for route_method, pattern, name in _REST_ROUTES[service]:
        if route_method == method and pattern.match(path):
            return name
    return None


# ---------------------------------------------------------------- error bodies


def error_body(service, code, message):
    request_id = str(uuid.uuid4())
    if service == "ec2":
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{0}</Code><Message>{1}</Message>'
            "</Error></Errors><RequestID>{2}</RequestID></Response>".format(code, message, request_id)
        )
    if service == "s3":
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{0}</Code><Message>{1}</Message>'
            "<RequestId>{2}</RequestId></Error>".format(code, message, request_id)
        )
    return (
        "<ErrorResponse><Error><Type>Receiver</Type><Code>{0}</Code><Message>{1}</Message></Error>"
        "<RequestId>{2}</RequestId></ErrorResponse>".format(code, message, request_id)
    )


SERVER_ERRORS = {
    500: {"ec2": "InternalError", "s3": "InternalError", "default": "InternalFailure"},
    503: {"ec2": "Unavailable", "s3": "ServiceUnavailable", "default": "ServiceUnavailable"},
}


# ---------------------------------------------------------------- settings and counters


@dataclass
class ProxyConfig:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    list_page_latency_ms: float = 0.0
    throttle: bool = False
    bucket_scope: str = "action"
    bucket_overrides: dict = field(default_factory=dict)
    error_rate: float = 0.0
    error_after_rate: float = 0.0
    reset_rate: float = 0.0
    reset_after_rate: float = 0.0
    fault_services: list = field(default_factory=list)
    fault_actions: list = field(default_factory=list)
    down_regions: list = field(default_factory=list)
    down_mode: str = "reset"
    seed: int = None

    def update(self, changes):
        known = {item.name for item in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(
                "unknown proxy setting(s): {0}; known: {1}".format(", ".join(unknown), ", ".join(sorted(known)))
            )
        if changes.get("bucket_scope", self.bucket_scope) not in ("action", "family"):
            raise ValueError("bucket_scope must be 'action' or 'family'")
        if changes.get("down_mode", self.down_mode) not in ("reset", "unavailable"):
            raise ValueError("down_mode must be 'reset' or 'unavailable'")
        for key, value in changes.items():
            setattr(self, key, value)

    def latency_seconds(self, rng):
        jitter = rng.uniform(-self.latency_jitter_ms, self.latency_jitter_ms) if self.latency_jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def faults_apply(self, service, action):
        if self.fault_services and service not in self.fault_services:
            return False
        return not self.fault_actions or action in self.fault_actions


LISTING_PAGES = ("ListObjectsV2", "ListObjectVersions")
OUTCOMES = ("ok", "throttled", "error", "error_after", "reset", "reset_after", "down")
FORWARDED_OUTCOMES = ("ok", "error_after", "reset_after")


class Counters:
    def __init__(self, clock=time.monotonic):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.clock = clock
        self.first_request = None
        self.per_second = collections.Counter()
        self.first_seen = {}
        self.last_seen = {}

    def add(self, service, region, action, outcome):
        now = self.clock()
        with self.lock:
            self.counts[(service, region, action, outcome)] += 1
            if self.first_request is None:
                self.first_request = (now, time.time())
            offset = now - self.first_request[0]
            key = "{0}:{1}".format(service, action) if outcome == "ok" else outcome
            self.per_second[(int(offset), key)] += 1
            kind = "mutating" if is_mutating(service, action) and outcome == "ok" else None
            for name in ("any", "{0}:{1}".format(service, action), kind):
                if name:
                    self.first_seen.setdefault(name, offset)
                    self.last_seen[name] = offset

    def timeline(self):
        """Requests per second since the first one, by action (answered) or by outcome (``throttled``, ...).

        ``started``: the first request's wall-clock time; ``first``/``last``: seconds from it to the first
        and last request of each action, of any (``any``), and of the successful mutating ones (``mutating``).
        """
        with self.lock:
            seconds = collections.defaultdict(dict)
            for (second, key), number in sorted(self.per_second.items()):
                seconds[second][key] = number
            return {
                "started": self.first_request[1] if self.first_request else None,
                "per_second": [[second, seconds[second]] for second in sorted(seconds)],
                "first": {name: round(value, 3) for name, value in self.first_seen.items()},
                "last": {name: round(value, 3) for name, value in self.last_seen.items()},
            }

    def snapshot(self):
        with self.lock:
            items = sorted(self.counts.items())
        records = [
            dict(service=s, region=r, action=a, outcome=o, count=n, mutating=is_mutating(s, a))
            for (s, r, a, o), n in items
        ]
        requests, outcomes = collections.Counter(), collections.Counter()
        for record in records:
            requests["{service}:{action}".format(**record)] += record["count"]
            outcomes[record["outcome"]] += record["count"]
        return {
            "records": records,
            "requests": dict(requests),
            "outcomes": dict(outcomes),
            "total": sum(outcomes.values()),
            "mutating": sum(record["count"] for record in records if record["mutating"]),
            "timeline": self.timeline(),
        }


# ---------------------------------------------------------------- the proxy


class AwsProxy:
    """Shared state of one proxy: settings, counters, buckets, and the upstream address."""

    def __init__(self, upstream, config=None):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = parsed.hostname, parsed.port or 80
        self.config = ProxyConfig()
        self.config.update(config or {})
        self.counters = Counters()
        self.buckets = {}
        self.lock = threading.Lock()
        self.rng = random.Random(self.config.seed)
        self.fault_streams = {}
        self.sleep = time.sleep
        self.server = None
        self.thread = None
        self.endpoint = None

    # settings -------------------------------------------------
    def configure(self, **changes):
        with self.lock:
            self.config.update(changes)
            if "seed" in changes:
                self.rng = random.Random(changes["seed"])
                self.fault_streams = {}
            if {"bucket_scope", "bucket_overrides", "throttle"} & set(changes):
                self.buckets = {}

    def reset(self, config=False):
        with self.lock:
            self.counters = Counters()
            self.buckets = {}
            if config:
                self.config = ProxyConfig()
                self.rng = random.Random()
                self.fault_streams = {}

    def stats(self):
        snapshot = self.counters.snapshot()
        snapshot["config"] = asdict(self.config)
        return snapshot

    # decisions ------------------------------------------------
    def chance(self, rate, service, action):
        """One draw from the fault stream of (service, action).

        Each action has a stream of its own, seeded from ``seed``: the n-th call of an action meets the same
        fault in every run, however the calls of other actions and threads interleave with it."""
        if rate <= 0:
            return False
        with self.lock:
            stream = self.fault_streams.get((service, action))
            if stream is None:
                seed = self.config.seed
                stream = random.Random(None if seed is None else "{0}/{1}/{2}".format(seed, service, action))
                self.fault_streams[(service, action)] = stream
            return stream.random() < rate

    def bucket_for(self, region, action, params):
        family = ec2_family(action, params)
        name = action if self.config.bucket_scope == "action" else family.name
        override = self.config.bucket_overrides.get(action) or self.config.bucket_overrides.get(family.name)
        burst, rate = override if override else (family.burst, family.refill_per_second)
        with self.lock:
            key = (region, name)
            if key not in self.buckets:
                self.buckets[key] = TokenBucket(burst, rate)
            return self.buckets[key]

    def decide(self, service, region, action, params):
        """What happens to this request: one of OUTCOMES (``ok`` = forward and answer)."""
        config = self.config
        if region in config.down_regions:
            return "down"
        if config.throttle and service == "ec2" and not self.bucket_for(region, action, params).take():
            return "throttled"
        if config.faults_apply(service, action):
            for outcome, rate in (
                ("error", config.error_rate),
                ("reset", config.reset_rate),
                ("error_after", config.error_after_rate),
                ("reset_after", config.reset_after_rate),
            ):
                if self.chance(rate, service, action):
                    return outcome
        return "ok"

    # lifecycle ------------------------------------------------
    def start(self, port=0):
        handler = type("BoundHandler", (ProxyHandler,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="aws-proxy", daemon=True)
        self.thread.start()
        self.endpoint = "http://127.0.0.1:{0}".format(self.server.server_address[1])
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy = None
    upstream = None

    def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
        return

    def do_GET(self):
        self.handle_request()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_request(self):
        body = self.read_body()
        split = urllib.parse.urlsplit(self.path)
        if split.path.startswith(CONTROL_PREFIX):
            return self.control(split.path[len(CONTROL_PREFIX) :], body)
        proxy = self.proxy
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        service, region, action, params = identify(self.command, split.path, query, self.headers, body)
        latency = proxy.config.latency_seconds(proxy.rng)
        if action in LISTING_PAGES:
            latency += proxy.config.list_page_latency_ms / 1000.0
        if latency:
            proxy.sleep(latency)
        outcome = proxy.decide(service, region, action, params)
        proxy.counters.add(service, region, action, outcome)

        if outcome == "down":
            if proxy.config.down_mode == "reset":
                return self.reset_connection()
            return self.answer_error(service, 503)
        if outcome == "throttled":
            return self.send_plain(503, error_body("ec2", "RequestLimitExceeded", "Request limit exceeded."))
        if outcome == "error":
            return self.answer_error(service, proxy.rng.choice((500, 503)))
        if outcome == "reset":
            return self.reset_connection()

        status, reason, headers, data = self.forward(body)
        if outcome == "error_after":
            return self.answer_error(service, 500)
        if outcome == "reset_after":
            return self.reset_connection()
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD":
            length = dict((name.lower(), value) for name, value in headers).get("content-length")
            if length is not None:
                self.send_header("Content-Length", length)
            return self.send_all(b"")
        self.send_header("Content-Length", str(len(data)))
        self.send_all(data)

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_all(self, data):
        """End the headers and send them with the body in one write (no Nagle/delayed-ACK stall)."""
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []

    def forward(self, body):
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        if body or self.command in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(
                    self.proxy.upstream_host, self.proxy.upstream_port, timeout=300
                )
            try:
                self.upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = self.upstream.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, ConnectionError):
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise

    def answer_error(self, service, status):
        codes = SERVER_ERRORS[status]
        code = codes.get(service, codes["default"])
        self.send_plain(status, error_body(service, code, "Injected by the test proxy."))

    def send_plain(self, status, text, content_type="text/xml"):
        data = text.encode("utf-8")
        self.send_response_only(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_all(b"" if self.command == "HEAD" else data)

    def reset_connection(self):
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for stream in (self.rfile, self.wfile):
            try:
                stream.close()
            except OSError:
                pass
        self.connection.close()
        self.wfile = io.BytesIO()

    def control(self, command, body):
        proxy = self.proxy
        try:
            payload = json.loads(body) if body else {}
            if command == "stats" and self.command == "GET":
                result = proxy.stats()
            elif command == "config" and self.command == "POST":
                proxy.configure(**payload)
                result = asdict(proxy.config)
            elif command == "reset" and self.command == "POST":
                proxy.reset(config=bool(payload.get("config")))
                result = asdict(proxy.config)
            else:
                return self.send_plain(404, json.dumps({"error": "no such control " + command}), "application/json")
        except (ValueError, TypeError) as exc:
            return self.send_plain(400, json.dumps({"error": str(exc)}), "application/json")
        self.send_plain(200, json.dumps(result), "application/json")

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        if self.upstream is not None:
            self.upstream.close()


# ---------------------------------------------------------------- helpers for tests and benchmarks


def start(upstream, config=None, port=0):
    """Start a proxy in this process in front of ``upstream``; returns the AwsProxy (``.endpoint``)."""
    return AwsProxy(upstream, config).start(port)


class ProxyControl:
    """Drive a proxy (in this process or another) through its control endpoints."""

    def __init__(self, endpoint):
        self.endpoint = endpoint.rstrip("/")

    def call(self, command, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.endpoint + CONTROL_PREFIX + command, data=data, method="GET" if payload is None else "POST"
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    def stats(self):
        return self.call("stats")

    def configure(self, **changes):
        return self.call("config", changes)

    def reset(self, config=False):
        return self.call("reset", {"config": config})


def count(stats, action=None, outcome=None, region=None, service=None, mutating=None):
    """Sum of the stats records matching every given field."""
    wanted = dict(action=action, outcome=outcome, region=region, service=service, mutating=mutating)
    return sum(
        record["count"]
        for record in stats["records"]
        if all(value is None or record[key] == value for key, value in wanted.items())
    )


def forwarded(stats, **match):
    """Requests that reached moto (ok, error_after, reset_after)."""
    return sum(count(stats, outcome=outcome, **match) for outcome in FORWARDED_OUTCOMES)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the moto server, e.g. http://127.0.0.1:5000")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the chosen port here once listening")
    parser.add_argument("--config", default="{}", help="initial settings as a JSON object")
    args = parser.parse_args()
    proxy = start(args.upstream, json.loads(args.config), args.port)
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(proxy.endpoint.rsplit(":", 1)[1])
    print("aws proxy listening on {0} -> {1}".format(proxy.endpoint, args.upstream), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
