"""What crosses between a device and the server: the head's arrays, by name, and nothing else."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord


def to_record(head: dict[str, np.ndarray]) -> ArrayRecord:
    """The head's parameters as a Flower ArrayRecord (names kept, in sorted order)."""
    return ArrayRecord({name: Array(np.ascontiguousarray(head[name], dtype=np.float32)) for name in sorted(head)})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The head's parameters from a Flower ArrayRecord (unchecked: pass them through ``check_head``)."""
    return {name: array.numpy() for name, array in record.items()}


def head_bytes(head: dict[str, np.ndarray]) -> int:
    """Bytes of the head's values (what a device sends or receives per round, before framing)."""
    return int(sum(np.asarray(v).nbytes for v in head.values()))
