#!/usr/bin/env python3
"""A small S3-compatible server for fme's tests, on loopback: what fme's S3 client uses, checked as S3 checks it.

Why here: Debian has no S3 server package (moto, MinIO and s3rver are not in Debian; Ceph's radosgw needs a
cluster). Every request's AWS SigV4 signature is verified (an unknown key is 403 InvalidAccessKeyId, a wrong
signature 403 SignatureDoesNotMatch, a payload whose x-amz-content-sha256 is not its hash 400
XAmzContentSHA256Mismatch); Content-MD5 is checked (400 BadDigest); objects and multipart uploads (initiate,
upload part, complete, abort, with S3's ETags) live in memory. The verifier is checked against botocore's signer
(AWS's own Python SDK, Debian's python3-botocore) in tests/storage/s3_server_selftest.py.

    python3 s3_server.py --port N [--bucket NAME ...] [--access-key K --secret-key S] [--region R]

Prints "ready PORT" once listening (--port 0: on a port the kernel picks, free of races with other tests);
stops on SIGTERM.

For tests, unsigned: GET /_fme/faults?status=503&count=N makes the next N requests answer 503 SlowDown (any
5xx status; status=0 drops the connection unanswered); GET /_fme/puts lists the keys stored since it was last
read; and GET /_fme/audit lists, a line each, every manifest
put while an object it lists (a shard with its size and x-amz-meta-sha256, samples.jsonl's recorded bytes) was
not yet stored whole: a writer must put a run's manifest last.
"""

import argparse
import base64
import hashlib
import hmac
import json
import re
import signal
import socket
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNSIGNED = "UNSIGNED-PAYLOAD"


def uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_query(raw):
    pairs = []
    for item in raw.split("&") if raw else []:
        k, _, v = item.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(k), False), uri_encode(urllib.parse.unquote(v), False)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def expected_signature(secret, region, method, raw_path, raw_query, headers, signed, amz_date, payload_hash):
    """AWS SigV4 (S3 flavour: the path is not normalised or encoded twice) of a request as received."""
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    canonical = "\n".join([method, raw_path, canonical_query(raw_query), canonical_headers, ";".join(signed), payload_hash])
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class S3Error(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Store:
    def __init__(self, buckets):
        self.lock = threading.Lock()
        self.buckets = {b: {} for b in buckets}  # bucket -> key -> (data, etag, meta)
        self.uploads = {}  # upload id -> (bucket, key, meta, {part number: (data, etag)})
        self.faults = []   # injected answers for the next requests: an HTTP status, or 0 to drop the connection
        self.audit = []    # manifests that listed an object not (yet) stored whole
        self.puts = []     # keys stored (PUT, or a completed multipart upload) since /_fme/puts was last read

    def check_manifest(self, bucket, key, data):
        """What a run's manifest promises: every shard it lists, and samples.jsonl's recorded prefix, are
        already stored whole (the writer puts the manifest last). Broken promises are kept for GET /_fme/audit."""
        try:
            m = json.loads(data)
        except ValueError:
            return  # not a run's manifest
        if not isinstance(m, dict):
            return
        base = key[: -len("manifest.json")]
        objects = self.buckets[bucket]
        for s in m.get("shards", []):
            name = base + s["file"]
            obj = objects.get(name)
            if obj is None:
                self.audit.append(f"{key} lists {name}, which is not stored")
            elif len(obj[0]) != s["bytes"] or obj[2].get("x-amz-meta-sha256") != s["sha256"]:
                self.audit.append(f"{key} lists {name}, stored with another size or sha256")
        want = m.get("samples_jsonl_bytes", 0)
        if want:
            obj = objects.get(base + "samples.jsonl")
            if obj is None or len(obj[0]) != want:
                self.audit.append(f"{key} records {want} bytes of {base}samples.jsonl, stored: {None if obj is None else len(obj[0])}")


def make_handler(store, keys, region):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body=b"", headers=None, head=False):
            """A HEAD answer carries the object's Content-Length (in `headers`) and no body."""
            headers = dict(headers or {})
            headers.setdefault("Content-Length", "0" if head else str(len(body)))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head and body:
                self.wfile.write(body)

        def error(self, e, head=False):
            body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{e.code}</Code><Message>{e.message}</Message>"
                    f"</Error>").encode()
            self.reply(e.status, b"" if head else body, {"Content-Type": "application/xml"}, head=head)

        def authenticate(self, body):
            h = {k.lower(): v for k, v in self.headers.items()}
            auth = h.get("authorization", "")
            m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$", auth)
            if not m:
                raise S3Error(403, "AccessDenied", "a SigV4 Authorization header is required")
            access, date, reg, signed, signature = m.groups()
            if access not in keys:
                raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
            payload = h.get("x-amz-content-sha256")
            if payload is None:
                raise S3Error(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
            if payload != UNSIGNED and payload != hashlib.sha256(body).hexdigest():
                raise S3Error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
            signed = signed.split(";")
            if "host" not in signed or "x-amz-date" not in signed or any(s not in h for s in signed):
                raise S3Error(403, "SignatureDoesNotMatch", f"signed headers {signed} must include host and x-amz-date and all be present")
            path, _, query = self.path.partition("?")
            want = expected_signature(keys[access], reg, self.command, path, query, h, signed, h["x-amz-date"], payload)
            if reg != region or date != h["x-amz-date"][:8] or not hmac.compare_digest(want, signature):
                raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")

        def admin(self, query):
            """Test control, unsigned: /_fme/faults?status=503&count=N (or status=0: drop the connection)
            queues injected answers; /_fme/audit lists broken manifest promises, one per line."""
            q = urllib.parse.parse_qs(query)
            with store.lock:
                if self.path.startswith("/_fme/faults"):
                    store.faults += [int(q["status"][0])] * int(q.get("count", ["1"])[0])
                    return self.reply(200, b"ok")
                if self.path.startswith("/_fme/puts"):
                    puts, store.puts = store.puts, []
                    return self.reply(200, "".join(k + "\n" for k in puts).encode())
                return self.reply(200, "".join(a + "\n" for a in store.audit).encode())

        def handle_any(self, head=False):
            try:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path, _, query = self.path.partition("?")
                if path.startswith("/_fme/"):
                    return self.admin(query)
                with store.lock:
                    fault = store.faults.pop(0) if store.faults else None
                if fault == 0:  # a reset: the request read, no answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault:
                    raise S3Error(fault, "SlowDown" if fault == 503 else "InternalError", "injected by the test")
                self.authenticate(body)
                path, _, query = self.path.partition("?")
                q = urllib.parse.parse_qs(query, keep_blank_values=True)
                parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
                bucket, key = parts[0], parts[1] if len(parts) > 1 else ""
                with store.lock:
                    if bucket not in store.buckets:
                        raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist")
                    self.serve(bucket, key, q, body, head)
            except S3Error as e:
                self.error(e, head)

        def serve(self, bucket, key, q, body, head):
            objects = store.buckets[bucket]
            meta = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")}
            if self.command in ("PUT", "POST") and "content-md5" in {k.lower() for k in self.headers.keys()}:
                if base64.b64encode(hashlib.md5(body).digest()).decode() != self.headers["Content-MD5"]:
                    raise S3Error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
            if not key:
                if self.command == "HEAD":
                    return self.reply(200, head=True, headers={"Content-Length": "0"})
                if self.command == "GET":
                    prefix = q.get("prefix", [""])[0]
                    names = sorted(k for k in objects if k.startswith(prefix))[: int(q.get("max-keys", ["1000"])[0])]
                    xml = "".join(f"<Contents><Key>{k}</Key><Size>{len(objects[k][0])}</Size></Contents>" for k in names)
                    return self.reply(200, f"<ListBucketResult><Name>{bucket}</Name>{xml}</ListBucketResult>".encode())
                raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            if self.command == "POST" and "uploads" in q:
                uid = uuid.uuid4().hex
                store.uploads[uid] = (bucket, key, meta, {})
                return self.reply(200, f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                                       f"<UploadId>{uid}</UploadId></InitiateMultipartUploadResult>".encode())
            if "uploadId" in q:
                uid = q["uploadId"][0]
                up = store.uploads.get(uid)
                if up is None or up[:2] != (bucket, key):
                    raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.")
                if self.command == "PUT":
                    etag = hashlib.md5(body).hexdigest()
                    up[3][int(q["partNumber"][0])] = (body, etag)
                    return self.reply(200, headers={"ETag": f'"{etag}"'})
                if self.command == "DELETE":
                    del store.uploads[uid]
                    return self.reply(204)
                if self.command == "POST":
                    listed = re.findall(r"<PartNumber>(\d+)</PartNumber>\s*<ETag>&?(?:quot;)?\"?([0-9a-f]{32})\"?", body.decode())
                    if not listed or [int(p) for p, _ in listed] != sorted(int(p) for p, _ in listed):
                        raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
                    data, digests = b"", b""
                    for p, etag in listed:
                        part = up[3].get(int(p))
                        if part is None or part[1] != etag:
                            raise S3Error(400, "InvalidPart", f"part {p} was not uploaded or its ETag differs")
                        data += part[0]
                        digests += bytes.fromhex(etag)
                    etag = f"{hashlib.md5(digests).hexdigest()}-{len(listed)}"
                    objects[key] = (data, etag, up[2])
                    store.puts.append(key)
                    del store.uploads[uid]
                    if key.endswith("manifest.json"):
                        store.check_manifest(bucket, key, data)
                    return self.reply(200, f"<CompleteMultipartUploadResult><Key>{key}</Key><ETag>\"{etag}\"</ETag>"
                                           f"</CompleteMultipartUploadResult>".encode())
            if self.command == "PUT":
                etag = hashlib.md5(body).hexdigest()
                objects[key] = (body, etag, meta)
                store.puts.append(key)
                if key.endswith("manifest.json"):
                    store.check_manifest(bucket, key, body)
                return self.reply(200, headers={"ETag": f'"{etag}"'})
            if self.command == "DELETE":
                objects.pop(key, None)
                return self.reply(204)
            if self.command in ("GET", "HEAD"):
                if key not in objects:
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
                data, etag, m = objects[key]
                headers = {"ETag": f'"{etag}"', "Content-Type": "application/octet-stream", **m}
                if head:
                    headers["Content-Length"] = str(len(data))
                return self.reply(200, data, headers, head=head)
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

        def do_GET(self):
            self.handle_any()

        def do_HEAD(self):
            self.handle_any(head=True)

        def do_PUT(self):
            self.handle_any()

        def do_POST(self):
            self.handle_any()

        def do_DELETE(self):
            self.handle_any()

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bucket", action="append", default=[])
    ap.add_argument("--access-key", default="FMETESTKEY")
    ap.add_argument("--secret-key", default="fme/test/secret")
    ap.add_argument("--region", default="us-east-1")
    a = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(Store(a.bucket), {a.access_key: a.secret_key}, a.region))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"ready {server.server_address[1]}", flush=True)  # --port 0: the port the kernel gave
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
