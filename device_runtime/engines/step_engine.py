"""The head (and a fused bundle's last blocks, and LoRA) trained by plain onnxruntime, through the step graphs.

A bundle's ``head/step_model.onnx`` is one whole training step in standard ONNX operators
(:mod:`export.step_graph`): an ``InferenceSession`` of any onnxruntime build runs it, on any execution
provider it has. The parameters and AdamW's moments live in ``OrtValue`` s on the session's device, bound
with IOBinding, so a step's new values become the next step's inputs without a copy to the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from device_runtime.engines import l2sp as l2sp_term
from device_runtime.engines import step_io
from device_runtime.engines.base import HeadEngine
from device_runtime.engines.npz_state import AdamState
from device_runtime.engines.numpy_engine import shipped_parameters
from device_runtime.head_graph import output_layer
from device_runtime.sessions import resolve_providers, session_options
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.errors import BundleError, ConfigError, ExportError, StateError

_DEVICES = {"CUDAExecutionProvider": "cuda"}  # where an OrtValue lives for a provider; any other keeps it on the CPU


def step_graphs_problem(bundle: Bundle) -> str | None:
    """None where ``bundle`` ships step graphs, else one sentence (no trailing period) saying why not."""
    if bundle.manifest.head.step_batch and layout.STEP_MODEL in bundle.manifest.files:
        return None
    return f"bundle {bundle.manifest.name!r} ships no step graphs (exported before them, or without torch)"


class StepEngine(HeadEngine):
    """AdamW on the bundle's trainable parameters through its step graph, on plain onnxruntime.

    Args:
        bundle: a bundle with step graphs (``head.step_batch`` > 0).
        state: a file written by :meth:`save` (the numpy engine's format); None starts from the shipped head.
        weight_decay: AdamW's decoupled weight decay (a graph input: any value, exactly).
        threads: intra-op and inter-op threads of the sessions (0 lets ORT choose).
        providers: execution providers in order of preference (as the backbone's).

    Raises:
        BundleError: the bundle has no step graphs, or no numpy-readable parameters.
        StateError: ``state`` is not such a state, or does not fit the bundle.
    """

    name = "step"
    state_suffix = ".npz"

    def __init__(
        self,
        bundle: Bundle,
        state: Path | None,
        weight_decay: float,
        threads: tuple[int, int] = (0, 0),
        providers: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        problem = step_graphs_problem(bundle)
        if problem:
            raise BundleError(f"{problem[0].upper()}{problem[1:]}. Re-export it with this edgeft, or use engine='ort'.")
        spec = bundle.manifest.head
        options = session_options(*threads)
        chosen = resolve_providers(providers)
        train_options = session_options(*threads)
        # ORT's memory pattern plans one block for all of a run's intermediates; without it the decomposed step's
        # peak was a quarter lower (77 against 104 MB for two MiniLM layers, batch 8) at the same step time.
        train_options.enable_mem_pattern = False
        self._train = ort.InferenceSession(str(bundle.file(layout.STEP_MODEL)), train_options, providers=chosen)
        self._eval_path = bundle.file(layout.STEP_EVAL_MODEL)
        self._eval = ort.InferenceSession(str(self._eval_path), options, providers=chosen)
        self._device = _DEVICES.get(self._train.get_providers()[0], "cpu")
        rows = next(i.shape[0] for i in self._train.get_inputs() if i.name == step_io.FEATURES)
        self._batch = rows if isinstance(rows, int) else None  # None: the graph takes any batch (export.step_batch)
        self._trainable = list(spec.trainable)
        self._frozen = set(spec.frozen)
        self._penalized = l2sp_term.penalized(self._trainable)
        self.weight_decay = weight_decay
        self.l2sp = 0.0
        shipped = shipped_parameters(bundle)
        adam = AdamState.fresh({name: shipped[name] for name in self._trainable}) if state is None else AdamState.load(state)
        self._check_state(adam, state)
        self._step = adam.step
        self._values: dict[str, ort.OrtValue] = {}
        self._bindings: dict[int, ort.IOBinding] = {}  # by step parity; see _binding
        self._put({**adam.params, **_renamed(adam.m, step_io.first_moment), **_renamed(adam.v, step_io.second_moment)})
        self._put({step_io.anchor(name): shipped[name] for name in self._penalized})
        # A step writes each new parameter and moment into a buffer of its own, allocated once: fresh outputs at every
        # step made ONNX Runtime's arena grow by their size at each of the first steps.
        self._updated = [o.name.removeprefix(step_io.updated("")) for o in self._train.get_outputs() if o.name != step_io.LOSS]
        self._spare = {name: self._buffer_like(self._values[name]) for name in self._updated}
        self._loss = ort.OrtValue.ortvalue_from_shape_and_type([], np.float32, "cpu")
        self._inputs = [i.name for i in self._train.get_inputs()]

    def train_step(self, features: np.ndarray, targets: np.ndarray, lr: float) -> float:
        n = len(targets)
        if self._batch is not None and n > self._batch:
            raise ConfigError(
                f"The bundle's step graph trains on at most {self._batch} examples per step (head.step_batch), got a "
                f"batch of {n}. Use batch_size <= {self._batch}, re-export the bundle, or use engine='ort' or 'numpy'."
            )
        # A fixed-batch graph (bundles of an earlier edgeft) is padded with rows that repeat real ones: weighted 0,
        # they add nothing, and an all-zero row would not be a valid input (a text cut's mask channel of zeros makes
        # its L2 norm's gradient 0/0, and 0 * NaN is NaN).
        rows = np.arange(self._batch or n) % n
        padded = np.ascontiguousarray(np.asarray(features, np.float32)[rows])
        labels = np.asarray(targets, np.int64)[rows]
        binding = self._binding()
        batch = {
            step_io.FEATURES: padded,
            step_io.TARGETS: labels,
            step_io.ROW_WEIGHTS: (np.arange(len(rows)) < n).astype(np.float32),
            step_io.STEP: np.float32(self._step + 1),
            step_io.LEARNING_RATE: np.float32(lr),
            step_io.WEIGHT_DECAY: np.float32(self.weight_decay),
            step_io.L2SP_STRENGTH: np.float32(self.l2sp),
        }
        for name, value in batch.items():
            binding.bind_cpu_input(name, np.asarray(value))
        try:
            self._train.run_with_iobinding(binding)
        except RuntimeError as e:  # shapes and dtypes are validated first; this is ORT itself failing
            raise StateError(f"ONNX Runtime failed in a training step: {e}") from e
        # The new values become current, and the old ones the buffers the next step writes into.
        for name in self._spare:
            self._values[name], self._spare[name] = self._spare[name], self._values[name]
        self._step += 1
        return float(self._loss.numpy())

    def _binding(self) -> ort.IOBinding:
        """The step's binding of the current values as inputs and the spare buffers as outputs.

        Steps swap the two sets, so two bindings (even and odd steps) serve every step until a value is replaced
        (:meth:`_put`): a step binds only its batch and scalars, and reads no output but the loss.
        """
        parity = self._step % 2
        if parity not in self._bindings:
            binding = self._train.io_binding()
            for name in self._inputs:
                if name in self._values:
                    binding.bind_ortvalue_input(name, self._values[name])
            binding.bind_ortvalue_output(step_io.LOSS, self._loss)
            for name, value in self._spare.items():
                binding.bind_ortvalue_output(step_io.updated(name), value)
            self._bindings[parity] = binding
        return self._bindings[parity]

    def logits(self, features: np.ndarray) -> np.ndarray:
        binding = self._eval.io_binding()
        binding.bind_cpu_input(step_io.FEATURES, np.ascontiguousarray(features, np.float32))
        for name in self._trainable:
            binding.bind_ortvalue_input(name, self._values[name])
        binding.bind_output(step_io.LOGITS, "cpu")
        self._eval.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy().copy()  # a view would outlive the binding that owns its memory

    def parameters(self) -> dict[str, np.ndarray]:
        # OrtValue.numpy() is a view of memory the OrtValue owns: once a step or set_parameters replaces the value,
        # that memory is freed and reused, and a view kept (a head version, the guard's snapshot) would change under it.
        return {name: self._values[name].numpy().copy() for name in self._trainable}

    def set_parameters(self, values: dict[str, np.ndarray]) -> None:
        unknown = sorted(set(values) - set(self._trainable) - self._frozen)
        if unknown:
            raise StateError(f"The bundle's head has no trainable parameters {unknown[:4]}; this head is not the bundle's.")
        self._put({name: values[name] for name in self._trainable if name in values})

    def claim_outputs(self, slots: list[int], reset_weights: bool) -> None:
        layer = output_layer(self._trainable)
        changed = {
            step_io.anchor(name): self._values[step_io.anchor(name)].numpy().copy() for name in layer if name in self._penalized
        }
        if reset_weights:
            changed |= {name: self._values[name].numpy().copy() for name in layer}
        for value in changed.values():
            value[slots] = 0.0
        self._put(changed)

    def save(self, path: str | os.PathLike) -> None:
        values = {name: value.numpy().copy() for name, value in self._values.items()}
        AdamState(
            {name: values[name] for name in self._trainable},
            {name: values[step_io.first_moment(name)] for name in self._trainable},
            {name: values[step_io.second_moment(name)] for name in self._trainable},
            self._step,
        ).save(path)

    def export_head(self, path: str | os.PathLike) -> None:
        """The evaluation graph with the current parameters as its weights."""
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError as e:
            raise ExportError("Exporting an inference model needs the onnx package (pip install onnx).") from e
        model = onnx.load(str(self._eval_path))
        values = self.parameters()
        kept = [i for i in model.graph.input if i.name not in values]
        del model.graph.input[:]
        model.graph.input.extend(kept)
        model.graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in values.items())
        onnx.save(model, str(path))

    def _put(self, arrays: dict[str, np.ndarray]) -> None:
        self._bindings.clear()  # they hold the values replaced
        for name, value in arrays.items():
            self._values[name] = ort.OrtValue.ortvalue_from_numpy(np.require(value, np.float32, "C").copy(), self._device)

    def _buffer_like(self, value: ort.OrtValue) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_shape_and_type(value.shape(), np.float32, self._device)

    def _check_state(self, adam: AdamState, path: Path | None) -> None:
        missing = [name for name in self._trainable if name not in adam.params or name not in adam.m or name not in adam.v]
        if missing:
            raise StateError(f"{path} holds no parameters or moments for {missing[:4]}: it is not a state of this bundle's head.")


def _renamed(arrays: dict[str, np.ndarray], rename: Callable[[str], str]) -> dict[str, np.ndarray]:
    return {rename(name): value for name, value in arrays.items()}
