"""A client for the subset of the Glance v2 API the agent needs: show an
image, stream its data to a file while hashing, create an image, upload its
data, delete it.  Works against a real Glance and against compute-images.

Retries (connection errors, 5xx) come from urllib3's Retry on idempotent
requests; every request has a connect and a read timeout.  An answer the
service refuses with (4xx) becomes a typed error carrying the service's own
reason (Glance writes it as JSON when asked, as an HTML page otherwise).
The token is never sent to another host: a redirect that leaves the server
loses it.  A download is cut as soon as it passes its bound; while it
receives, its bytes are written and hashed on two other threads
(imagecache/stream.py).
"""
import logging
import re

import lxml.html
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from imagecache import errors, stream, verify

LOG = logging.getLogger(__name__)
IMAGE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TOKEN_HEADER = "X-Auth-Token"
JSON = {"Accept": "application/json"}      # errors as JSON rather than an HTML page


def check_image_id(image_id):
    """Image ids end up in URLs and file names: allow only a safe alphabet."""
    if not isinstance(image_id, str) or not IMAGE_ID_RE.fullmatch(image_id):
        raise errors.InvalidImageId(f"invalid image id {image_id!r}")
    return image_id


def service_reason(resp):
    """The reason the service gave in an error answer, as one line of text:
    Glance's JSON ({"message": ...} or {"title", "description"}) or the
    text of its HTML error page, cut to 500 characters."""
    text = resp.text or ""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        text = " ".join(str(inner[k]) for k in ("message", "description", "explanation")
                        if inner.get(k)) or str(inner.get("title") or inner.get("error") or "")
    if "<" in text:
        try:
            doc = lxml.html.fromstring(text)
            for heading in doc.xpath("//title | //h1"):
                heading.drop_tree()
            text = doc.text_content()
        except (lxml.etree.ParserError, ValueError):
            pass
    text = " ".join(text.split())
    return text[:500] or resp.reason or f"HTTP {resp.status_code}"


ERRORS = {401: errors.ImageForbidden, 403: errors.ImageForbidden, 404: errors.ImageNotFound,
          413: errors.ImageTooLarge}
WHAT = {401: "unauthorized", 403: "forbidden", 404: "not found", 409: "conflict",
        413: "image too large"}


class _Session(requests.Session):
    def rebuild_auth(self, prepared_request, response):
        """requests drops Authorization on a redirect to another host;
        the token header must go the same way."""
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            prepared_request.headers.pop(TOKEN_HEADER, None)


class GlanceClient:
    def __init__(self, api_servers, token=None, connect_timeout=10.0, read_timeout=60.0,
                 retries=3):
        self.api_servers = [s.rstrip("/") for s in api_servers]
        self.timeout = (connect_timeout, read_timeout)
        self.session = _Session()
        retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.2,
                      status_forcelist=(500, 502, 503, 504),
                      allowed_methods={"GET", "HEAD", "DELETE"},
                      raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers[TOKEN_HEADER] = token

    @classmethod
    def from_conf(cls, conf):
        return cls(conf.image.api_servers, conf.image.auth_token, conf.image.connect_timeout,
                   conf.image.read_timeout, conf.image.num_retries)

    def _request(self, method, path, **kwargs):
        last = None
        for server in self.api_servers:
            try:
                resp = self.session.request(method, server + path, timeout=self.timeout, **kwargs)
            except requests.RequestException as e:
                last = e
                LOG.warning("image service %s: %s %s failed: %s", server, method, path, e)
                continue
            if 400 <= resp.status_code < 500:
                what = WHAT.get(resp.status_code, f"refused ({resp.status_code})")
                raise ERRORS.get(resp.status_code, errors.ImageServiceError)(
                    f"image service: {method} {path}: {what}: {service_reason(resp)}")
            if resp.status_code >= 500:
                last = f"answered {resp.status_code}: {service_reason(resp)}"
                LOG.warning("image service %s: %s %s %s", server, method, path, last)
                continue
            return resp
        raise errors.ImageServiceUnavailable(f"no image service reachable for {method} {path}: "
                                             f"{last}")

    def show(self, image_id):
        return self._request("GET", f"/v2/images/{check_image_id(image_id)}",
                             headers=JSON).json()

    def download(self, image_id, fd, algorithm=None, limit=None):
        """Stream the image's data into the open file descriptor fd; returns
        (bytes written, hex digest with algorithm or None).  More than limit
        bytes: ImageTooLarge, as soon as they arrive."""
        check_image_id(image_id)
        size = 0
        try:
            with self._request("GET", f"/v2/images/{image_id}/file", stream=True) as resp, \
                    stream.FileAndHash(fd, verify.hasher(algorithm)) as out:
                while True:
                    buf = out.buffer()
                    n = resp.raw.readinto(buf)
                    if not n:
                        out.give_back(buf)
                        break
                    size += n
                    if limit is not None and size > limit:
                        raise errors.ImageTooLarge(
                            f"image {image_id}: the service sent more than the {limit} "
                            "bytes it may have (its declared size, max_image_size_mb, or "
                            "the flavor's root disk)")
                    out.put(buf, n)
        except (requests.RequestException, OSError) as e:
            raise errors.ImageDownloadFailed(f"download of image {image_id} broke off after "
                                             f"{size} bytes: {e}")
        except Exception as e:
            if "urllib3" in type(e).__module__:      # a broken stream (ProtocolError, ...)
                raise errors.ImageDownloadFailed(f"download of image {image_id} broke off "
                                                 f"after {size} bytes: {e}") from None
            raise
        return size, out.hexdigest()

    def create(self, **meta):
        return self._request("POST", "/v2/images", json=meta, headers=JSON).json()

    def upload(self, image_id, fileobj):
        self._request("PUT", f"/v2/images/{check_image_id(image_id)}/file", data=fileobj,
                      headers={**JSON, "Content-Type": "application/octet-stream"})

    def delete(self, image_id):
        self._request("DELETE", f"/v2/images/{check_image_id(image_id)}", headers=JSON)


CORE_FIELDS = {"id", "name", "status", "disk_format", "container_format", "size",
               "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "min_disk",
               "min_ram", "owner", "visibility", "protected", "created_at", "updated_at",
               "tags", "file", "self", "schema", "direct_url", "locations", "os_hidden"}


def split_properties(image):
    """Glance v2 puts custom properties beside the core fields; return the
    core fields with the rest gathered under "properties"."""
    meta = {k: v for k, v in image.items() if k in CORE_FIELDS}
    meta["properties"] = {k: v for k, v in image.items() if k not in CORE_FIELDS}
    return meta
