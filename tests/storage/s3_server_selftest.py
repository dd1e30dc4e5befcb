#!/usr/bin/env python3
"""The test S3 server's SigV4 verifier (s3_server.expected_signature) agrees with botocore, AWS's own Python SDK
(Debian's python3-botocore), on requests like those fme sends, and disagrees once a signed part changes.
Exit status 0 when it does."""

import datetime
import os
import sys
import urllib.parse
from unittest import mock

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3_server import expected_signature  # noqa: E402

FIXED = datetime.datetime(2026, 12, 5, 1, 2, 3)


def botocore_signed(method, url, body, headers):
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = FIXED
        S3SigV4Auth(Credentials("FMETESTKEY", "fme/test/secret"), "s3", "eu-west-1").add_auth(req)
    return req


def check(method, url, body, headers):
    req = botocore_signed(method, url, body, headers)
    h = {k.lower(): v for k, v in req.headers.items()}
    auth = h["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    signature = auth.split("Signature=")[1]
    h.setdefault("host", urllib.parse.urlsplit(url).netloc)
    parts = urllib.parse.urlsplit(url)
    args = ("fme/test/secret", "eu-west-1", method, parts.path, parts.query, h, signed, h["x-amz-date"], h["x-amz-content-sha256"])
    got = expected_signature(*args)
    assert got == signature, f"{method} {url}: verifier {got}, botocore {signature}"
    changed = dict(h, **{"x-amz-content-sha256": "0" * 64})
    assert expected_signature(*args[:5], changed, *args[6:]) != signature, "a changed signed header must change the signature"
    assert expected_signature("other", *args[1:]) != signature, "another secret must change the signature"


check("PUT", "http://127.0.0.1:9000/fme-test/runs/a/shard-00000.safetensors", b"abc" * 1000,
      {"Content-Type": "application/octet-stream", "Content-MD5": "kAFQmDzST7DWlj99KOF/cg==", "x-amz-meta-sha256": "ab" * 32})
check("PUT", "http://127.0.0.1:9000/fme-test/big/x?partNumber=3&uploadId=0f3a9c", b"part", {"Content-Type": "application/octet-stream"})
check("POST", "http://127.0.0.1:9000/fme-test/big/x?uploads=", b"", {"Content-Type": "application/octet-stream"})
check("HEAD", "http://127.0.0.1:9000/fme-test", b"", {})
check("GET", "http://127.0.0.1:9000/fme-test?list-type=2&max-keys=1", b"", {})
check("DELETE", "http://127.0.0.1:9000/fme-test/big/x?uploadId=0f3a9c", b"", {})
print("s3_server's SigV4 verifier agrees with botocore on 6 requests")
