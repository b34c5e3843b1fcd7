"""The one error hierarchy of edgeft.

Every error a user can cause is an ``EdgeftError``; each also subclasses the
built-in error it is (``ValueError`` for a bad value, ``TypeError`` for a bad
type) so that generic handlers keep working. Messages say what was expected,
what came, and what to do about it.
"""


class EdgeftError(Exception):
    """Base class of every error edgeft raises on purpose."""


class ConfigError(EdgeftError, ValueError):
    """A configuration value or key is invalid."""


class BundleError(EdgeftError, ValueError):
    """A bundle is missing, corrupt, altered or of an unsupported format."""


class DataError(EdgeftError, ValueError):
    """Input data is empty, mislabelled, misshaped or contains NaN/inf."""


class DataTypeError(DataError, TypeError):
    """Input data is of the wrong type (e.g. non-text for a text model)."""


class StateError(EdgeftError, ValueError):
    """A saved personalization state is missing, corrupt or from another bundle."""


class StateConflictError(StateError):
    """Another process saved the state after this one loaded it; saving now would drop its versions."""


class NotFittedError(EdgeftError, AttributeError):
    """The model has no trained head yet; ``fit`` must be called first."""


class ExportError(EdgeftError, ValueError):
    """The exporter could not turn the given model or data into a bundle."""
