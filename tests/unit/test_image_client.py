"""The image client against small local HTTP servers (no daemons): which
hash an image is checked against, how much it may send, the service's own
reasons for a refusal, and a token that never follows a redirect away."""
import hashlib
import http.server
import json
import os
import threading

import pytest

from imagecache import errors, verify
from imagecache.glance import GlanceClient, service_reason

SHA = {"os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(b"x").hexdigest()}


# -- which hash, how many bytes (pure) -----------------------------------------------

@pytest.mark.parametrize("meta,allow_md5,allow_unverified,result", [
    (SHA, True, False, ("sha512", SHA["os_hash_value"])),
    ({"os_hash_algo": "sha256", "os_hash_value": "AB" * 32}, True, False, ("sha256", "ab" * 32)),
    ({"checksum": "0" * 32}, True, False, ("md5", "0" * 32)),
    (dict(SHA, checksum="0" * 32), False, False, ("sha512", SHA["os_hash_value"])),
    ({}, True, True, (None, None)),
])
def test_the_hash_an_image_is_checked_against(meta, allow_md5, allow_unverified, result):
    assert verify.expected_hash(meta, allow_md5, allow_unverified) == result


@pytest.mark.parametrize("meta,allow_md5,error,words", [
    ({"os_hash_algo": "md5", "os_hash_value": "0" * 32}, True, errors.ImageChecksumMismatch,
     "not one of sha256, sha384, sha512"),
    ({"os_hash_algo": "sha1", "os_hash_value": "0" * 40}, True, errors.ImageChecksumMismatch,
     "not one of"),
    ({"os_hash_algo": "sha512", "os_hash_value": "xyz"}, True, errors.ImageChecksumMismatch,
     "no sha512 digest"),
    ({"checksum": "0" * 32}, False, errors.UnverifiedImage, "allow_md5_checksum"),
    ({}, True, errors.UnverifiedImage, "allow_unverified_images"),
])
def test_images_without_an_accepted_hash_are_refused(meta, allow_md5, error, words):
    with pytest.raises(error, match=words):
        verify.expected_hash(dict(meta, id="img"), allow_md5, False)


def test_a_download_is_bounded_by_the_smallest_limit():
    GiB = 1024 ** 3
    assert verify.download_limit(None, 10 * GiB) == 10 * GiB
    assert verify.download_limit(None, 10 * GiB, GiB) == GiB + GiB // 64 + 1024 * 1024
    assert verify.download_limit(5000, 10 * GiB, GiB) == 5000       # the declared size
    with pytest.raises(errors.ImageTooLarge, match="more than"):
        verify.download_limit(2 * GiB, 10 * GiB, GiB)


# -- a server that answers what a test wants -----------------------------------------------

class Server:
    def __init__(self, handle):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append((self.path, dict(self.headers)))
                handle(self)
            do_PUT = do_GET

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(h, code, body=b"", ctype="application/json", headers=()):
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


@pytest.fixture
def serve():
    servers = []

    def start(handle):
        servers.append(Server(handle))
        return servers[-1]
    yield start
    for s in servers:
        s.close()


GLANCE_413_HTML = (b"<html>\n <head>\n  <title>413 Request Entity Too Large</title>\n </head>\n"
                   b" <body>\n  <h1>413 Request Entity Too Large</h1>\n  Image exceeds the "
                   b"storage quota: 1073741824 bytes.<br /><br />\n\n\n\n </body>\n</html>")


@pytest.mark.parametrize("code,body,ctype,error,words", [
    (413, GLANCE_413_HTML, "text/html", errors.ImageTooLarge,
     "image too large: Image exceeds the storage quota: 1073741824 bytes."),
    (403, json.dumps({"code": "403 Forbidden", "title": "Forbidden",
                      "message": "You are not authorized to complete upload_image"}).encode(),
     "application/json", errors.ImageForbidden,
     "forbidden: You are not authorized to complete upload_image"),
    (400, json.dumps({"error": {"message": "Invalid disk format"}}).encode(),
     "application/json", errors.ImageServiceError, "refused \\(400\\): Invalid disk format"),
])
def test_a_refusal_carries_the_services_own_reason(serve, code, body, ctype, error, words):
    s = serve(lambda h: reply(h, code, body, ctype))
    with pytest.raises(error, match=words) as e:
        GlanceClient([f"http://127.0.0.1:{s.port}"], retries=0).show("img")
    assert "<" not in str(e.value)


def test_the_reason_of_an_html_page_is_its_text():
    class Resp:
        text, status_code, reason = GLANCE_413_HTML.decode(), 413, "Too Large"

        def json(self):
            raise ValueError
    assert service_reason(Resp()) == "Image exceeds the storage quota: 1073741824 bytes."


def test_the_token_does_not_follow_a_redirect_to_another_host(serve):
    def elsewhere(h):
        reply(h, 200, json.dumps({"id": "img"}).encode())
    other = serve(elsewhere)

    def redirect(h):
        if h.path.startswith("/same"):
            return reply(h, 200, json.dumps({"id": "img"}).encode())
        reply(h, 302, headers=[("Location", f"http://localhost:{other.port}/v2/images/img")]
              if "again" not in h.path else [("Location", "/same")])
    first = serve(redirect)
    client = GlanceClient([f"http://127.0.0.1:{first.port}"], token="s3cret", retries=0)
    assert client.show("img") == {"id": "img"}
    assert first.seen[0][1].get("X-Auth-Token") == "s3cret"
    assert "X-Auth-Token" not in other.seen[0][1]
    client._request("GET", "/again")                          # a redirect on the same server
    assert first.seen[-1][0] == "/same" and first.seen[-1][1].get("X-Auth-Token") == "s3cret"


def test_a_stream_longer_than_its_bound_is_cut(serve, tmp_path):
    sent = []

    def endless(h):            # no Content-Length: streams until the client hangs up
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            for _ in range(1024):
                h.wfile.write(b"\0" * 1024 * 1024)
                sent.append(1)
        except OSError:
            pass
    s = serve(endless)
    fd = os.open(tmp_path / "img", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(errors.ImageTooLarge, match="more than the 8388608 bytes"):
        GlanceClient([f"http://127.0.0.1:{s.port}"], retries=0).download(
            "img", fd, "sha512", limit=8 * 1024 * 1024)
    os.close(fd)
    assert os.path.getsize(tmp_path / "img") <= 8 * 1024 * 1024 + 4 * 1024 * 1024
    assert len(sent) < 1024                                   # it stopped reading


def test_a_download_hashes_what_it_writes(serve, tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 5)
    s = serve(lambda h: reply(h, 200, data, "application/octet-stream"))
    fd = os.open(tmp_path / "img", os.O_WRONLY | os.O_CREAT)
    size, digest = GlanceClient([f"http://127.0.0.1:{s.port}"]).download("img", fd, "sha384")
    os.close(fd)
    assert (size, digest) == (len(data), hashlib.sha384(data).hexdigest())
    assert (tmp_path / "img").read_bytes() == data
