"""moto honours ``If-Match`` on CompleteMultipartUpload, as S3 does.

moto 5.2.5 checks ``If-None-Match: *`` when a multipart upload completes, but not ``If-Match``:
a multipart upload meant to replace one version of an object overwrites whatever is there. S3
completes the upload only while the object's ETag still matches, answers 412 PreconditionFailed
otherwise, and 404 NoSuchKey when the object is gone.
https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html ("If-Match")
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
"""

from moto.s3.exceptions import MissingKey
from moto.s3.exceptions import PreconditionFailed
from moto.s3.responses import S3Response

_PATCHED = False


def apply():
    global _PATCHED
    if _PATCHED:
        return
    original = S3Response._key_response_post

    def key_response_post(self, request, body, bucket_name, query, key_name):
        if_match = self.headers.get("If-Match")
        if query.get("uploadId") and if_match:
            existing = self.backend.get_object(bucket_name, key_name)
            if existing is None:
                raise MissingKey(key_name)
            if existing.etag.replace('"', "") != if_match.replace('"', ""):
                raise PreconditionFailed("If-Match")
        return original(self, request, body, bucket_name, query, key_name)

    S3Response._key_response_post = key_response_post
    _PATCHED = True
