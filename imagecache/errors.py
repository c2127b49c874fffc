"""Typed errors of the image client and cache.  str() is the reason an
operator reads in the instance fault."""


class ImageError(Exception):
    pass


class InvalidImageId(ImageError):
    pass


class ImageNotFound(ImageError):
    pass


class ImageServiceUnavailable(ImageError):
    """No image service answered, or it answered with a server error."""


class ImageServiceError(ImageError):
    """The image service refused the request (a 4xx answer); str() is its
    own reason."""


class ImageForbidden(ImageServiceError):
    """401 or 403: the agent's credentials do not allow this."""


class ImageTooLarge(ImageServiceError):
    """The image is larger than it may be: the service said so (413), or
    its record or its data passed the agent's bound."""


class ImageNotActive(ImageError):
    pass


class ImageChecksumMismatch(ImageError):
    pass


class UnverifiedImage(ImageError):
    """The image carries no hash the agent accepts to check its data."""


class ImageDownloadFailed(ImageError):
    pass


class UnsafeImage(ImageError):
    """The image's bytes are not what its metadata claims, or are dangerous
    for qemu-img (a backing file, an unknown format)."""


class InsufficientSpace(ImageError):
    """The cache's filesystem lacks room for the image plus the reserve."""
