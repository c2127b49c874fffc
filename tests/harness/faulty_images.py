"""A proxy in front of compute-images that misbehaves on request, for the
image-cache and snapshot failure tests: it lies about an image's hash,
sends half of an image's data and drops the connection, swallows an
upload (stall_uploads) without ever answering, strips an image's hashes,
sends more data than the image's size (pad_transfer), or declares no size
and streams 5 GiB of zeros (endless)."""
import http.client
import http.server
import json
import threading
import urllib.parse


class FaultyProxy:
    def __init__(self, upstream):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lie_about_hash, self.cut_transfer = set(), set()
        self.strip_hash, self.pad_transfer, self.endless = set(), set(), set()
        self.stall_uploads = False
        self.stalled = threading.Event()      # an upload is being held
        self._release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                if self.command == "PUT" and proxy.stall_uploads:
                    self.rfile.read1(65536)
                    proxy.stalled.set()
                    proxy._release.wait()
                    self.close_connection = True
                    return
                parts = self.path.strip("/").split("/")
                image_id = parts[2] if len(parts) >= 3 else None
                if self.command == "GET" and len(parts) == 4 and image_id in proxy.endless:
                    return self._endless()
                body = None
                if "Content-Length" in self.headers:
                    body = self.rfile.read(int(self.headers["Content-Length"]))
                elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = b"".join(self._chunks())
                    del self.headers["Transfer-Encoding"]
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port,
                                                  timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                if self.command == "GET" and len(parts) == 3 and resp.status == 200:
                    meta = json.loads(data)
                    if image_id in proxy.lie_about_hash:
                        meta["os_hash_value"] = "0" * 128
                    if image_id in proxy.strip_hash:
                        meta.update(os_hash_algo=None, os_hash_value=None, checksum=None)
                    if image_id in proxy.endless:
                        meta["size"] = None
                    data = json.dumps(meta).encode()
                if (self.command == "GET" and len(parts) == 4 and resp.status == 200
                        and image_id in proxy.pad_transfer):
                    data += b"\0" * 1024 * 1024
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if (self.command == "GET" and len(parts) == 4 and parts[3] == "file"
                        and image_id in proxy.cut_transfer):
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)

            def _endless(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                zeros = b"\0" * 1024 * 1024
                try:
                    for _ in range(5 * 1024):
                        self.wfile.write(zeros)
                except OSError:          # the agent hung up: what the test wants
                    pass

            def _chunks(self):
                while n := int(self.rfile.readline().split(b";")[0], 16):
                    yield self.rfile.read(n)
                    self.rfile.readline()
                self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
