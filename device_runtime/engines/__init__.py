"""Two independent implementations of head training behind one small interface.

:class:`HeadEngine` is all the training loop and the personalizer see. The ORT
engine runs the bundle's training artifacts; the numpy engine computes the
same loss, the same AdamW step and takes the same learning rates, so each
checks the other (see the parity test) and numpy stands in where no
onnxruntime-training wheel exists (Python 3.13+, Linux aarch64).
"""

from device_runtime.engines.base import HeadEngine, open_engine, resolve_engine

__all__ = ["HeadEngine", "open_engine", "resolve_engine"]
