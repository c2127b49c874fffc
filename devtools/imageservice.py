"""compute-images: a small image service speaking the Glance v2 subset the
agent uses (list/show/create/upload/download/delete), for the quickstart and
the tests where no Glance runs.  Images live in a directory: <id>.json holds
the metadata (properties are top-level keys, as in Glance), <id>.data the
bytes; size, checksum (md5) and os_hash_value (sha512, or the
--hashing-algorithm given) are computed on upload.  Errors are answered as
Glance answers them: an HTML page, or JSON when the client asks for it.
No authentication: bind it to loopback or a private network.

    compute-images serve --data-dir DIR [--bind 127.0.0.1] [--port 9292]
    compute-images upload --url URL --name NAME --disk-format raw FILE [--property k=v]
"""
import argparse
import datetime
import hashlib
import html
import http
import http.server
import json
import os
import re
import sys
import threading
import uuid

from imagecache.glance import IMAGE_ID_RE, GlanceClient

READONLY = {"id", "status", "size", "checksum", "os_hash_algo", "os_hash_value",
            "created_at", "updated_at", "file", "self", "schema", "virtual_size"}
PATH_RE = re.compile(r"/v2/images(?:/([^/]+)(/file)?)?/?")


def _now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImageStore:
    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        os.makedirs(root, exist_ok=True)

    def _meta_path(self, image_id):
        return os.path.join(self.root, image_id + ".json")

    def data_path(self, image_id):
        return os.path.join(self.root, image_id + ".data")

    def get(self, image_id):
        try:
            with open(self._meta_path(image_id)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def put(self, meta):
        tmp = self._meta_path(meta["id"]) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, self._meta_path(meta["id"]))

    def list(self):
        return [self.get(n[:-5]) for n in sorted(os.listdir(self.root)) if n.endswith(".json")]

    def delete(self, image_id):
        for p in (self._meta_path(image_id), self.data_path(image_id)):
            if os.path.exists(p):
                os.unlink(p)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = None  # set by make_server, as are:
    hashing_algorithm, image_size_cap = "sha512", None

    def log_message(self, fmt, *args):
        sys.stderr.write("compute-images: " + fmt % args + "\n")

    def _error(self, code, message):
        """An error answer as Glance's (webob's) are: JSON when the client
        asks for it, otherwise an HTML page; the reason is in both."""
        status = f"{code} {http.HTTPStatus(code).phrase}"
        if "application/json" in self.headers.get("Accept", ""):
            return self._reply(code, {"code": status, "title": http.HTTPStatus(code).phrase,
                                      "message": message})
        page = (f"<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n"
                f"  <h1>{status}</h1>\n  {html.escape(message)}<br /><br />\n\n\n\n"
                " </body>\n</html>").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def _reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        m = PATH_RE.fullmatch(self.path.split("?")[0])
        if not m:
            return None, None, False
        image_id = m.group(1)
        if image_id is not None and not IMAGE_ID_RE.fullmatch(image_id):
            return None, None, False
        return True, image_id, bool(m.group(2))

    def do_GET(self):
        ok, image_id, is_file = self._route()
        if not ok:
            return self._error(404, "not found")
        if image_id is None:
            return self._reply(200, {"images": self.store.list()})
        meta = self.store.get(image_id)
        if meta is None:
            return self._error(404, f"image {image_id} not found")
        if not is_file:
            return self._reply(200, meta)
        if meta["status"] != "active":
            return self._reply(204)
        path = self.store.data_path(image_id)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                self.wfile.write(chunk)

    def do_POST(self):
        ok, image_id, is_file = self._route()
        if not ok or image_id is not None:
            return self._error(404, "not found")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            return self._error(400, "body must be a JSON object")
        new_id = body.pop("id", None) or str(uuid.uuid4())
        if not IMAGE_ID_RE.fullmatch(str(new_id)):
            return self._error(400, "invalid id")
        with self.store.lock:
            if self.store.get(new_id):
                return self._error(409, f"image {new_id} exists")
            meta = {k: v for k, v in body.items() if k not in READONLY}
            meta.update(id=new_id, status="queued", size=None, checksum=None,
                        os_hash_algo=None, os_hash_value=None, created_at=_now(),
                        updated_at=_now(), visibility=body.get("visibility", "private"))
            self.store.put(meta)
        self._reply(201, meta)

    def do_PUT(self):
        ok, image_id, is_file = self._route()
        meta = self.store.get(image_id) if ok and is_file else None
        if meta is None:
            return self._error(404, "not found")
        if meta["status"] != "queued":
            return self._error(409, f"image {image_id} is {meta['status']}")
        meta["status"] = "saving"
        self.store.put(meta)
        md5, sha = hashlib.md5(usedforsecurity=False), hashlib.new(self.hashing_algorithm)
        tmp = self.store.data_path(image_id) + ".part"
        size = 0
        body = self._body_chunks()
        try:
            with open(tmp, "wb") as f:
                for chunk in body:
                    f.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)
                    if self.image_size_cap is not None and size > self.image_size_cap:
                        for _ in body:          # read it all: the client hears the 413
                            pass
                        raise OverflowError(f"Image exceeds the storage quota: more than "
                                            f"{self.image_size_cap} bytes")
            os.replace(tmp, self.store.data_path(image_id))
        except (OSError, ValueError, OverflowError) as e:
            meta["status"] = "queued"
            self.store.put(meta)
            if os.path.exists(tmp):
                os.unlink(tmp)
            self.close_connection = True        # the rest of a failed body is unread
            if isinstance(e, OverflowError):
                return self._error(413, str(e))
            return self._error(400, f"upload failed: {e}")
        meta.update(status="active", size=size, checksum=md5.hexdigest(),
                    os_hash_algo=self.hashing_algorithm, os_hash_value=sha.hexdigest(),
                    updated_at=_now())
        self.store.put(meta)
        self._reply(204)

    def _body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(n)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length", 0))
        while remaining:
            chunk = self.rfile.read(min(remaining, 1024 * 1024))
            if not chunk:
                raise ValueError("body ended early")
            remaining -= len(chunk)
            yield chunk

    def do_DELETE(self):
        ok, image_id, is_file = self._route()
        if not ok or image_id is None or is_file or self.store.get(image_id) is None:
            return self._error(404, "not found")
        self.store.delete(image_id)
        self._reply(204)


def make_server(data_dir, bind="127.0.0.1", port=9292, hashing_algorithm="sha512",
                image_size_cap=None):
    handler = type("BoundHandler", (Handler,), {
        "store": ImageStore(data_dir), "hashing_algorithm": hashing_algorithm,
        "image_size_cap": image_size_cap})
    server = http.server.ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True
    return server


def _upload(args):
    props = dict(p.split("=", 1) for p in args.property)
    client = GlanceClient([args.url])
    meta = client.create(name=args.name, disk_format=args.disk_format,
                         container_format=args.container_format, **props)
    with open(args.file, "rb") as f:
        client.upload(meta["id"], f)
    print(meta["id"])


def main(argv=None):
    p = argparse.ArgumentParser(prog="compute-images", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the image service")
    s.add_argument("--data-dir", required=True)
    s.add_argument("--bind", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9292)
    s.add_argument("--hashing-algorithm", default="sha512",
                   choices=["sha256", "sha384", "sha512"],
                   help="the os_hash_algo of uploaded images (Glance's hashing_algorithm)")
    s.add_argument("--image-size-cap", type=int, metavar="BYTES",
                   help="refuse uploads larger than this with 413 (Glance's image_size_cap)")
    u = sub.add_parser("upload", help="create an image and upload a file into it")
    u.add_argument("--url", default="http://127.0.0.1:9292")
    u.add_argument("--name", required=True)
    u.add_argument("--disk-format", required=True, choices=["raw", "qcow2", "aki", "ari"])
    u.add_argument("--container-format", default="bare")
    u.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
    u.add_argument("file")
    args = p.parse_args(argv)
    if args.cmd == "upload":
        return _upload(args)
    server = make_server(args.data_dir, args.bind, args.port, args.hashing_algorithm,
                         args.image_size_cap)
    print(f"compute-images serving {args.data_dir} on http://{args.bind}:{server.server_port}",
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
