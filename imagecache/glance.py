"""A client for the subset of the Glance v2 API the agent needs: show an
image, stream its data to a file while hashing, create an image, upload its
data, delete it.  Works against a real Glance and against compute-images.

Retries (connection errors, 5xx) come from urllib3's Retry on idempotent
requests; every request has a connect and a read timeout.
"""
import hashlib
import logging
import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from imagecache import errors

LOG = logging.getLogger(__name__)
IMAGE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK = 1024 * 1024


def check_image_id(image_id):
    """Image ids end up in URLs and file names: allow only a safe alphabet."""
    if not isinstance(image_id, str) or not IMAGE_ID_RE.match(image_id):
        raise errors.InvalidImageId(f"invalid image id {image_id!r}")
    return image_id


class GlanceClient:
    def __init__(self, api_servers, token=None, connect_timeout=10.0, read_timeout=60.0,
                 retries=3):
        self.api_servers = [s.rstrip("/") for s in api_servers]
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.2,
                      status_forcelist=(500, 502, 503, 504),
                      allowed_methods={"GET", "HEAD", "DELETE"},
                      raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if token:
            self.session.headers["X-Auth-Token"] = token

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
            if resp.status_code == 404:
                raise errors.ImageNotFound(f"image service: {path} not found")
            if resp.status_code >= 400:
                raise errors.ImageServiceUnavailable(
                    f"image service answered {resp.status_code} to {method} {path}: "
                    f"{resp.text[:200]}")
            return resp
        raise errors.ImageServiceUnavailable(f"no image service reachable for {method} {path}: "
                                             f"{last}")

    def show(self, image_id):
        return self._request("GET", f"/v2/images/{check_image_id(image_id)}").json()

    def download(self, image_id, fileobj, expected=None):
        """Stream the image data into fileobj; verify against the hashes in
        expected (an image dict); return the number of bytes written."""
        check_image_id(image_id)
        algo = (expected or {}).get("os_hash_algo")
        want = (expected or {}).get("os_hash_value")
        md5_want = (expected or {}).get("checksum")
        if algo and algo not in hashlib.algorithms_guaranteed:
            raise errors.ImageChecksumMismatch(f"unsupported os_hash_algo {algo!r}")
        hasher = hashlib.new(algo) if algo and want else None
        md5 = hashlib.md5(usedforsecurity=False) if md5_want and not hasher else None
        size = 0
        try:
            with self._request("GET", f"/v2/images/{image_id}/file", stream=True) as resp:
                for chunk in resp.iter_content(CHUNK):
                    fileobj.write(chunk)
                    size += len(chunk)
                    for h in (hasher, md5):
                        if h:
                            h.update(chunk)
        except requests.RequestException as e:
            raise errors.ImageDownloadFailed(f"download of image {image_id} broke off after "
                                             f"{size} bytes: {e}")
        expected_size = (expected or {}).get("size")
        if expected_size is not None and size != expected_size:
            raise errors.ImageDownloadFailed(
                f"image {image_id}: got {size} bytes, expected {expected_size}")
        if hasher and hasher.hexdigest() != want:
            raise errors.ImageChecksumMismatch(f"image {image_id}: {algo} mismatch")
        if md5 and md5.hexdigest() != md5_want:
            raise errors.ImageChecksumMismatch(f"image {image_id}: md5 checksum mismatch")
        if not hasher and not md5:
            LOG.warning("image %s has no checksum; its data could not be verified", image_id)
        return size

    def create(self, **meta):
        return self._request("POST", "/v2/images", json=meta).json()

    def upload(self, image_id, fileobj):
        self._request("PUT", f"/v2/images/{check_image_id(image_id)}/file", data=fileobj,
                      headers={"Content-Type": "application/octet-stream"})

    def delete(self, image_id):
        self._request("DELETE", f"/v2/images/{check_image_id(image_id)}")


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
