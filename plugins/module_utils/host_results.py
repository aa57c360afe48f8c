# -*- coding: utf-8 -*-
# Copyright: Contributors to the opsvault.aws_backup project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Where the host_results callback puts each host's results, and how the coverage report reads
them back: one JSON document per host, ``<host>.json``, in a folder or under an S3 prefix
(``s3://bucket/prefix/``)."""

import json
import os
import tempfile

S3_SCHEME = "s3://"
SUFFIX = ".json"


def is_s3(location):
    return str(location).startswith(S3_SCHEME)


def parse_s3_url(url):
    """``s3://bucket/prefix/`` -> ``(bucket, prefix)``; the prefix ends in ``/`` unless empty."""
    bucket, _sep, prefix = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError("an S3 location is s3://bucket/prefix/, got {0!r}".format(url))
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def file_name(host):
    return host + SUFFIX


def to_text(entry):
    return json.dumps(entry, indent=1, sort_keys=True, default=str)


def write_folder(directory, entries):
    """Each entry as ``<directory>/<host>.json``, written whole (a temporary file, then a rename)."""
    os.makedirs(directory, exist_ok=True)
    for entry in entries:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".{0}.".format(entry["host"]))
        with os.fdopen(handle, "w") as out:
            out.write(to_text(entry))
        os.replace(temporary, os.path.join(directory, file_name(entry["host"])))


def write_s3(client, url, entries):
    """Each entry as the object ``<prefix><host>.json`` (a PUT replaces an object whole)."""
    bucket, prefix = parse_s3_url(url)
    for entry in entries:
        client.put_object(
            Bucket=bucket,
            Key=prefix + file_name(entry["host"]),
            Body=to_text(entry).encode("utf-8"),
            ContentType="application/json",
        )


def _parsed(name, text):
    try:
        entry = json.loads(text)
    except ValueError as exc:
        raise ValueError("host result {0} is not JSON: {1}".format(name, exc))
    if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or "tasks" not in entry:
        raise ValueError("host result {0} is not a host_results file (no host and tasks)".format(name))
    return entry


def read_folder(directory):
    """Every ``*.json`` of ``directory`` (not its temporary files), sorted by name."""
    if not os.path.isdir(directory):
        raise ValueError("host_results {0!r} is not a directory".format(directory))
    entries = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(SUFFIX) and not name.startswith("."):
            with open(os.path.join(directory, name), encoding="utf-8") as stream:
                entries.append(_parsed(os.path.join(directory, name), stream.read()))
    return entries


def read_s3(client, url):
    """Every ``<prefix>*.json`` object directly under the prefix, sorted by key."""
    bucket, prefix = parse_s3_url(url)
    entries = []
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
    for page in pages:
        for item in page.get("Contents", []):
            if item["Key"].endswith(SUFFIX):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                entries.append(_parsed(S3_SCHEME + bucket + "/" + item["Key"], body.decode("utf-8")))
    return entries
