"""What an image's data must be, decided before a byte is read: which hash
it is checked against and how many bytes may arrive at most.  Pure
functions of the image service's record and the agent's settings; the
same hash policy checks what the image service says it stored of a
snapshot the agent uploaded.

- The hash: os_hash_algo/os_hash_value (Glance's "multihash") with one of
  sha256, sha384 or sha512; the md5 `checksum` only when no multihash is
  given and md5 is allowed; no hash at all only when unverified images
  are allowed.
- The bound: the size the record declares, the configured largest image,
  and the flavor's root disk (with room for a qcow2's tables), whichever
  is smallest: a stream longer than that is cut as soon as it passes it.
"""
import hashlib
import re

from imagecache import errors

SECURE = ("sha256", "sha384", "sha512")
HEX = re.compile(r"[0-9a-f]+")


def expected_hash(meta, allow_md5=True, allow_unverified=False):
    """(algorithm, hex digest) the image's data must hash to, or (None,
    None) for an unverified image that is allowed."""
    image = meta.get("id", "?")
    algo, value = meta.get("os_hash_algo"), meta.get("os_hash_value")
    if algo or value:
        if algo not in SECURE:
            raise errors.ImageChecksumMismatch(
                f"image {image}: os_hash_algo {algo!r} is not one of {', '.join(SECURE)}")
        value = str(value or "").lower()
        if not HEX.fullmatch(value) or len(value) != hashlib.new(algo).digest_size * 2:
            raise errors.ImageChecksumMismatch(f"image {image}: os_hash_value is no {algo} "
                                               "digest")
        return algo, value
    checksum = str(meta.get("checksum") or "").lower()
    if checksum:
        if not allow_md5:
            raise errors.UnverifiedImage(f"image {image} has only an md5 checksum, and md5 "
                                         "is not accepted ([image] allow_md5_checksum)")
        if not HEX.fullmatch(checksum) or len(checksum) != 32:
            raise errors.ImageChecksumMismatch(f"image {image}: checksum is no md5 digest")
        return "md5", checksum
    if not allow_unverified:
        raise errors.UnverifiedImage(f"image {image} has no hash to verify its data against "
                                     "([image] allow_unverified_images)")
    return None, None


def hasher(algorithm):
    if algorithm is None:
        return None
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    return hashlib.new(algorithm)


def download_limit(declared_size, max_image_bytes, root_bytes=None):
    """The most bytes a download may bring; ImageTooLarge when the record
    itself declares more."""
    limits = [max_image_bytes]
    if root_bytes:
        limits.append(root_bytes + root_bytes // 64 + 1024 * 1024)   # qcow2 tables
    limit = min(limits)
    if declared_size is not None:
        if declared_size > limit:
            raise errors.ImageTooLarge(
                f"the image is {declared_size} bytes, more than the {limit} allowed "
                "(max_image_size_mb, or the flavor's root disk)")
        limit = declared_size
    return limit
