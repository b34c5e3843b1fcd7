"""edgeft: export a model once, personalize its head on every device.

This package is the shared core: the bundle format, configuration, errors and
the ``edgeft`` command line. It imports nothing heavier than the standard
library, so both the workstation and the device side can depend on it.
"""

__version__ = "0.1.0"
