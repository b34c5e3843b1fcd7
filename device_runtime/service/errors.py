"""Service errors: part of edgeft's one hierarchy, each with its HTTP status."""

from edgeft.errors import EdgeftError


class ServiceError(EdgeftError):
    """A request the service cannot serve as asked."""

    status = 400


class FieldError(ServiceError, ValueError):
    """One field of the request is invalid (answered as 422, naming the field)."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobConflictError(ServiceError, RuntimeError):
    """A personalization job is running already."""

    status = 409


class JobNotFoundError(ServiceError, LookupError):
    """No job with that id."""

    status = 404


class PayloadTooLargeError(ServiceError, ValueError):
    """The request body exceeds the service's limit."""

    status = 413
