# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Proof that a downloaded file holds the object's bytes: its size, the MD5 of a single-part ETag,
the multipart ETag, and the additional checksums S3 keeps (SHA256, SHA1, CRC32).

A mismatch raises MirrorError with the code ``SizeMismatch`` or ``ChecksumMismatch``.
"""

import base64
import hashlib
import re
import zlib

from ansible_collections.opsvault.aws_backup.plugins.module_utils.s3_listing import MirrorError

COMPUTABLE_CHECKSUMS = ("ChecksumSHA256", "ChecksumSHA1", "ChecksumCRC32")
CHUNK = 1024 * 1024

_MD5_ETAG = re.compile(r'^"?([0-9a-f]{32})"?$')
_MULTIPART_ETAG = re.compile(r'^"?([0-9a-f]{32})-([0-9]+)"?$')
_KMS = ("aws:kms", "aws:kms:dsse")


def md5_of_etag(etag):
    """The hex MD5 an ETag stands for when it is a plain MD5 (single-part, not SSE-KMS/SSE-C), else None."""
    match = _MD5_ETAG.match(etag or "")
    return match.group(1) if match else None


def expected_md5(response):
    """The MD5 a GetObject response's ETag promises, None under SSE-C or SSE-KMS (their ETags are not MD5s)."""
    if response.get("SSECustomerAlgorithm") or response.get("ServerSideEncryption") in _KMS:
        return None
    return md5_of_etag(response.get("ETag"))


def multipart_etag_parts(etag):
    """The part count of a multipart ETag (``"<md5>-<parts>"``), else None."""
    match = _MULTIPART_ETAG.match(etag or "")
    return int(match.group(2)) if match else None


def multipart_etag(path, part_sizes, chunk_size=CHUNK):
    """The multipart ETag of a local file cut into parts of the given sizes (MD5 of the parts' MD5s)."""
    digests = []
    with open(path, "rb") as handle:
        for part_size in part_sizes:
            part = hashlib.md5()
            remaining = part_size
            while remaining > 0:
                chunk = handle.read(min(chunk_size, remaining))
                if not chunk:
                    break
                part.update(chunk)
                remaining -= len(chunk)
            digests.append(part.digest())
    return '"{0}-{1}"'.format(hashlib.md5(b"".join(digests)).hexdigest(), len(part_sizes))


def uniform_part_sizes(total_size, first_part_size, parts_count):
    """Part sizes when every part but the last has the size of the first (what SDKs upload)."""
    if parts_count < 1 or first_part_size <= 0:
        return None
    sizes = [first_part_size] * (parts_count - 1)
    last = total_size - first_part_size * (parts_count - 1)
    if last <= 0 or last > first_part_size:
        return None
    return sizes + [last]


class Digests:
    """MD5 and the additional checksums S3 returns that the standard library computes (SHA256, SHA1, CRC32)."""

    def __init__(self, md5=True, checksums=COMPUTABLE_CHECKSUMS):
        self.md5 = hashlib.md5() if md5 else None
        self.sha256 = hashlib.sha256() if "ChecksumSHA256" in checksums else None
        self.sha1 = hashlib.sha1() if "ChecksumSHA1" in checksums else None
        self.crc32 = 0 if "ChecksumCRC32" in checksums else None

    def update(self, chunk):
        if self.md5 is not None:
            self.md5.update(chunk)
        if self.sha256 is not None:
            self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        if self.crc32 is not None:
            self.crc32 = zlib.crc32(chunk, self.crc32)

    def checksum(self, name):
        """The base64 value of ChecksumSHA256/ChecksumSHA1/ChecksumCRC32, or None when not computed."""
        if name == "ChecksumSHA256" and self.sha256 is not None:
            return base64.b64encode(self.sha256.digest()).decode()
        if name == "ChecksumSHA1" and self.sha1 is not None:
            return base64.b64encode(self.sha1.digest()).decode()
        if name == "ChecksumCRC32" and self.crc32 is not None:
            return base64.b64encode(self.crc32.to_bytes(4, "big")).decode()
        return None


def digest_file(path, md5=True, checksums=COMPUTABLE_CHECKSUMS, chunk_size=CHUNK):
    digests = Digests(md5, checksums)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digests.update(chunk)
    return digests


def checksum_mismatches(digests, response):
    """Names of the full-object checksums in a GetObject/HeadObject response that the data does not match."""
    if response.get("ChecksumType") == "COMPOSITE":
        return []
    mismatches = []
    for name in COMPUTABLE_CHECKSUMS:
        expected = response.get(name)
        computed = digests.checksum(name)
        if expected and "-" not in expected and computed is not None and computed != expected:
            mismatches.append(name)
    return mismatches


def computable_checksums(obj):
    """The names of the object's additional checksums (from its listing) that the mirror can compute."""
    return [name for name in COMPUTABLE_CHECKSUMS if name[len("Checksum") :] in obj.checksum_algorithms]


def check_size(obj, size):
    if size != obj.size:
        raise MirrorError("SizeMismatch", "got {0} bytes, the listing says {1}".format(size, obj.size))


def check_digests(obj, digests, md5, response):
    """The MD5 (when the ETag is one) and the checksums of ``response`` against what was computed."""
    if md5 and digests.md5.hexdigest() != md5:
        raise MirrorError("ChecksumMismatch", "MD5 of the data differs from the ETag {0}".format(obj.etag))
    mismatches = checksum_mismatches(digests, response)
    if mismatches:
        raise MirrorError("ChecksumMismatch", "{0} of the data differs".format(", ".join(mismatches)))


class ObjectVerifier:
    """The checks that need S3 again: part sizes for a multipart ETag, checksums of a ranged download."""

    def __init__(self, client, bucket):
        self.client = client
        self.bucket = bucket

    def verify_file(self, path, obj, etag=True):
        """A file fetched in ranged parts: no response carried the whole object's checksums, so ask for them.

        With ``etag=False``, only the object's additional checksums are checked (none: nothing is read).
        """
        head = {}
        checksums = computable_checksums(obj)
        if checksums:
            head = self.client.head_object(ChecksumMode="ENABLED", **self._object_params(obj))
        md5 = md5_of_etag(obj.etag) if etag else None
        if md5 is None and not checksums and not etag:
            return
        check_digests(obj, digest_file(path, md5=md5 is not None, checksums=checksums), md5, head)
        if etag:
            self.verify_multipart_etag(path, obj)

    def _object_params(self, obj):
        params = dict(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag)
        if obj.version_id is not None:
            params["VersionId"] = obj.version_id
        return params

    def verify_multipart_etag(self, path, obj):
        """Nothing for a single-part ETag; else the file's multipart ETag, cut as the upload was."""
        parts = multipart_etag_parts(obj.etag)
        if not parts:
            return
        first_size, parts_count = self._part_size(obj, 1)
        sizes = uniform_part_sizes(obj.size, first_size, parts_count or parts)
        if sizes and multipart_etag(path, sizes) == obj.etag:
            return
        sizes = [first_size] + [self._part_size(obj, number)[0] for number in range(2, parts + 1)]
        if sum(sizes) != obj.size or multipart_etag(path, sizes) != obj.etag:
            raise MirrorError("ChecksumMismatch", "multipart ETag of the data differs from {0}".format(obj.etag))

    def _part_size(self, obj, number):
        params = dict(Bucket=self.bucket, Key=obj.key, PartNumber=number)
        if obj.version_id is not None:
            params["VersionId"] = obj.version_id
        head = self.client.head_object(**params)
        return head["ContentLength"], head.get("PartsCount")
