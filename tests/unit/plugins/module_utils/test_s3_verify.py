"""s3_verify: ETags, multipart ETags and checksums."""

import base64
import hashlib
import zlib

from ansible_collections.opsvault.aws_backup.plugins.module_utils import s3_verify as verify


def test_etag_helpers(tmp_path):
    assert verify.md5_of_etag('"0cc175b9c0f1b6a831c399e269772661"') == "0cc175b9c0f1b6a831c399e269772661"
    assert verify.md5_of_etag('"0cc175b9c0f1b6a831c399e269772661-2"') is None
    assert verify.multipart_etag_parts('"0cc175b9c0f1b6a831c399e269772661-12"') == 12
    assert verify.multipart_etag_parts('"0cc175b9c0f1b6a831c399e269772661"') is None
    assert verify.uniform_part_sizes(11, 5, 3) == [5, 5, 1]
    assert verify.uniform_part_sizes(10, 5, 2) == [5, 5]
    assert verify.uniform_part_sizes(16, 5, 3) is None
    assert verify.uniform_part_sizes(10, 5, 0) is None

    data = b"0123456789a"
    path = tmp_path / "f"
    path.write_bytes(data)
    digests = [hashlib.md5(data[0:5]).digest(), hashlib.md5(data[5:10]).digest(), hashlib.md5(data[10:]).digest()]
    expected = '"{0}-3"'.format(hashlib.md5(b"".join(digests)).hexdigest())
    assert verify.multipart_etag(str(path), [5, 5, 1]) == expected
    assert verify.multipart_etag(str(path), [6, 4, 1]) != expected


def test_checksums_against_a_response(tmp_path):
    data = b"hello"
    path = tmp_path / "f"
    path.write_bytes(data)
    digests = verify.digest_file(str(path))
    good = {
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
        "ChecksumSHA1": base64.b64encode(hashlib.sha1(data).digest()).decode(),
        "ChecksumCRC32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(),
        "ChecksumCRC32C": "not computed here",
    }
    assert verify.checksum_mismatches(digests, good) == []
    assert digests.md5.hexdigest() == hashlib.md5(data).hexdigest()
    bad = dict(good, ChecksumSHA256=base64.b64encode(b"x" * 32).decode(), ChecksumCRC32="AAAAAA==")
    assert verify.checksum_mismatches(digests, bad) == ["ChecksumSHA256", "ChecksumCRC32"]
    assert verify.checksum_mismatches(digests, dict(bad, ChecksumType="COMPOSITE")) == []
    assert verify.checksum_mismatches(digests, {"ChecksumSHA256": "abc-3"}) == []
    only_md5 = verify.digest_file(str(path), checksums=())
    assert verify.checksum_mismatches(only_md5, bad) == []
