"""edgeft: export a model once, personalize its head on every device.

This package is the shared core: the bundle format, configuration, errors and
the ``edgeft`` command line. Both the workstation and the device side depend
on it, so it imports only what the base install has (numpy, pydantic,
cryptography, tqdm) and, in the registry's server alone, the serve extra;
never torch, export/, device_runtime/ or fleet/ at import time (the command
line imports those inside the commands that need them; tests/test_rooms.py
checks it).
"""

__version__ = "0.1.0"
