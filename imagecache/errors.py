"""Typed errors of the image client and cache.  str() is the reason an
operator reads in the instance fault."""


class ImageError(Exception):
    pass


class InvalidImageId(ImageError):
    pass


class ImageNotFound(ImageError):
    pass


class ImageServiceUnavailable(ImageError):
    pass


class ImageNotActive(ImageError):
    pass


class ImageChecksumMismatch(ImageError):
    pass


class ImageDownloadFailed(ImageError):
    pass


class UnsafeImage(ImageError):
    """The image's bytes are not what its metadata claims, or are dangerous
    for qemu-img (a backing file, an unknown format)."""


class InsufficientSpace(ImageError):
    """The cache's filesystem lacks room for the image plus the reserve."""
