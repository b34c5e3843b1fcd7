"""L2-SP: a penalty on the head's distance from the shipped head, ``strength / 2 * sum ||W - W_shipped||^2``.

It holds the head near what the server trained, so a few examples of a few
labels cannot drag it far (Li et al., "Explicit inductive bias for transfer
learning with convolutional networks", 2018). As in that paper it covers the
weight matrices, not the biases: the masked spare slots' biases (see
:mod:`device_runtime.labels`) drift under weight decay, and must not pay for it.
"""

from __future__ import annotations

# The frozen parameters through which the ORT training graph's term is set at run time (export.head builds them).
STRENGTH = "l2sp.strength"
ANCHOR = "l2sp.anchor."


def penalized(parameter_names: list[str]) -> list[str]:
    """The trainable parameters L2-SP covers: all but the biases."""
    return [name for name in parameter_names if not name.endswith("bias")]
