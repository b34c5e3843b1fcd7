"""Registry errors: part of edgeft's one hierarchy, each tied to an HTTP status."""

from edgeft.errors import EdgeftError


class RegistryError(EdgeftError):
    """A registry request failed: the server's answer or the reason it could not be reached."""

    status = 500


class InvalidRequestError(RegistryError, ValueError):
    """A name, version, path or upload is malformed or unsafe."""

    status = 400


class UnauthorizedError(RegistryError, PermissionError):
    """No bearer token, or the wrong one."""

    status = 401


class NotFoundError(RegistryError, LookupError):
    """No such bundle, version or file."""

    status = 404


class VersionExistsError(RegistryError, ValueError):
    """Versions are immutable: this one was published already."""

    status = 409


class RangeNotSatisfiableError(InvalidRequestError):
    """The requested range starts past the end of the file."""

    status = 416


class PayloadTooLargeError(RegistryError, ValueError):
    """The upload exceeds the registry's size limit."""

    status = 413
