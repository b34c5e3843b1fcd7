"""Input validation for the device side: done once, at the public boundary."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_runtime.tensor import fit_length
from edgeft.errors import DataError, DataTypeError
from edgeft.manifest import InputSpec


def check_inputs(X: object, spec: InputSpec) -> list[str] | np.ndarray:
    """Examples checked for the bundle's modality: texts, uint8 images, or float tensors.

    Raises:
        DataTypeError: ``X`` is of a type the bundle's model cannot read.
        DataError: ``X`` is empty or misshaped.
    """
    if spec.modality == "image":
        return check_images(X)
    if spec.modality == "tensor":
        return check_tensors(X, spec)
    return check_texts(X)


def check_texts(X: object) -> list[str]:
    """A non-empty list of strings, or a typed error saying what came instead."""
    if isinstance(X, (str, bytes)):
        raise DataTypeError("X must be a list of texts, got a single string; wrap it in a list: [text].")
    if not isinstance(X, Sequence) and not isinstance(X, np.ndarray):
        raise DataTypeError(f"X must be a list of texts, got {type(X).__name__}.")
    texts = list(X)
    if not texts:
        raise DataError("X is empty: at least one example is needed.")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataTypeError(
                f"X[{i}] is {type(text).__name__}, but this bundle's model reads text: every example must be a str."
            )
        if not text.isascii():
            check_encodable(text, f"X[{i}]")
    return texts


def check_encodable(text: str, where: str) -> None:
    """A lone surrogate (half of a UTF-16 pair, e.g. from a bad decode) is no character a tokenizer, a label file or
    ``state.json`` can hold.

    Raises:
        DataError: ``text`` (named ``where``) holds a lone surrogate.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(
            f"{where} holds {text[e.start]!r} at position {e.start}, a lone surrogate that is not valid Unicode text; "
            "decode the source with errors='replace' or drop the character."
        ) from None


def check_images(X: object) -> np.ndarray:
    """uint8 images as one array of shape (n, height, width, channels), channels 1 or 3.

    Accepts an array (n, h, w) of grey images or (n, h, w, c), or a list of
    same-shaped images. Pixels are expected in RGB order, 0..255.
    """
    if isinstance(X, (str, bytes)) or not isinstance(X, (Sequence, np.ndarray)):
        raise DataTypeError(f"X must be an array of uint8 images, got {type(X).__name__}.")
    if isinstance(X, np.ndarray) and X.ndim == 0:
        raise DataError("X is a single number (a 0-d array), not images: give an array (n, height, width[, channels]).")
    if len(X) == 0:
        raise DataError("X is empty: at least one example is needed.")
    if not isinstance(X, np.ndarray):
        if any(isinstance(x, str) for x in X):
            raise DataTypeError("X holds text, but this bundle's model reads images: pass uint8 pixel arrays.")
        shapes = {np.shape(x) for x in X}
        if len(shapes) > 1:
            raise DataError(f"X holds images of different shapes {sorted(shapes)[:3]}; give images of one size.")
        X = np.stack([np.asarray(x) for x in X])
    if X.dtype != np.uint8:
        raise DataTypeError(
            f"X has dtype {X.dtype}, but this bundle's model reads uint8 pixels (0..255). Pixels scaled to 0..1 "
            "become uint8 as np.round(x * 255).astype(np.uint8); a signal or features that are not pixels need a "
            "tensor bundle (docs/export.md, float tensors) instead."
        )
    if X.ndim == 3:
        X = X[..., None]
    if X.ndim != 4 or X.shape[-1] not in (1, 3) or 0 in X.shape[1:3]:
        raise DataError(
            f"X has shape {X.shape}, but an image bundle expects (n, height, width) grey images or "
            "(n, height, width, channels) with 1 or 3 channels, every side at least one pixel."
        )
    return X


def check_tensors(X: object, spec: InputSpec) -> np.ndarray:
    """Finite numbers of the bundle's shape as one float32 array (n, *tensor_shape), windows fit to its length.

    Accepts an array (n, channels, steps) or (n, features), or a list of examples; under the "crop_or_pad"
    length policy, windows of any length (a list may mix lengths), cropped or padded as the bundle says.

    Raises:
        DataTypeError: ``X`` is not numbers (text, objects, booleans, complex).
        DataError: ``X`` is empty, of another shape, of another length under "exact", or holds NaN or inf.
    """
    expected = _expected_shape(spec, "n, ")
    if isinstance(X, (str, bytes)) or not isinstance(X, (Sequence, np.ndarray)) or getattr(X, "ndim", 1) == 0:
        raise DataTypeError(f"X must be a float array of shape {expected}, got {type(X).__name__}.")
    if len(X) == 0:
        raise DataError("X is empty: at least one example is needed.")
    if isinstance(X, np.ndarray):
        array = fit_length(_numeric(X, "X", spec, batch=True), spec)
    else:
        if any(isinstance(x, (str, bytes)) for x in X):
            raise DataTypeError(f"X holds text, but this bundle's model reads float tensors of shape {expected}.")
        array = np.stack([fit_length(_numeric(np.asarray(x), f"X[{i}]", spec, batch=False), spec) for i, x in enumerate(X)])
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"X holds NaN or inf in {len(rows)} example(s) (first: X[{rows[0]}]); fill or drop the gaps before "
            "they reach the model, which would otherwise give NaN features without any error."
        )
    return array


def _expected_shape(spec: InputSpec, batch: str) -> str:
    """The shape the bundle takes, in words: ``batch`` is "n, " for a batch, "" for one example."""
    shape = list(spec.tensor_shape)
    if len(shape) == 1:
        return f"({batch}{shape[0]})"
    steps = "any number of steps" if spec.length_policy == "crop_or_pad" else str(shape[1])
    return f"({batch}{shape[0]}, {steps})"


def _numeric(x: np.ndarray, where: str, spec: InputSpec, batch: bool) -> np.ndarray:
    """``x`` as float32 after checking its dtype and axes (all but the steps, which fit_length settles)."""
    expected = _expected_shape(spec, "n, " if batch else "")
    if x.dtype.kind not in "fiu":
        raise DataTypeError(f"{where} has dtype {x.dtype}, but this bundle's model reads numbers: float tensors {expected}.")
    shape = tuple(spec.tensor_shape)
    fixed = shape if spec.length_policy == "exact" else shape[:1]
    if x.ndim != len(shape) + batch or x.shape[batch : batch + len(fixed)] != fixed or 0 in x.shape[batch:]:
        hint = " (a single example: pass X[None], a batch of one)" if batch and x.shape[: len(fixed)] == fixed else ""
        raise DataError(f"{where} has shape {x.shape}, but this bundle expects {expected}{hint}.")
    return x.astype(np.float32, copy=False)


_REEXPORT = "re-export the bundle with those labels"


def check_labels(y: object, labels: Sequence[str], n_examples: int, fix: str = _REEXPORT) -> np.ndarray:
    """Label strings mapped to class indices of the bundle's label set.

    ``fix`` is the advice for unknown labels: on a device the bundle must be
    re-exported; at export the label set can still grow.

    Raises:
        DataError: ``y`` has another length than X, or holds labels the bundle
            does not know.
    """
    if isinstance(y, (str, bytes)) or not isinstance(y, (Sequence, np.ndarray)):
        raise DataTypeError(f"y must be a list of labels, got {type(y).__name__}.")
    values = [str(v) for v in y]
    if len(values) != n_examples:
        raise DataError(f"X has {n_examples} examples but y has {len(values)} labels; they must match one to one.")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for v in values if v not in index})
    if unknown:
        raise DataError(
            f"Label(s) {', '.join(map(repr, unknown[:5]))} are not in the bundle's label set "
            f"{list(labels)}. A head cannot learn a class it has no output for; {fix}."
        )
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def check_features(features: object, feature_size: int, source: str = "features") -> np.ndarray:
    """A finite float (n, feature_size) array, or a typed error saying what came instead.

    Raises:
        DataTypeError: not a numeric array.
        DataError: wrong shape, or NaN/inf values (which would train a NaN head without any error).
    """
    array = np.asarray(features)
    if array.dtype.kind not in "fiu":
        raise DataTypeError(f"{source} must be a float array, got dtype {array.dtype}.")
    if array.ndim != 2 or array.shape[1] != feature_size:
        raise DataError(f"{source} has shape {array.shape}, but the bundle expects (n, {feature_size}).")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{source} holds NaN or inf in {len(rows)} row(s) (first: row {rows[0]}); "
            "training on them would silently give a NaN head."
        )
    return array.astype(np.float32, copy=False)


def check_head(values: object, reference: dict[str, np.ndarray], source: str = "the head") -> dict[str, np.ndarray]:
    """Head parameters with the reference head's names and shapes, finite, as float32 copies.

    Args:
        values: a mapping of parameter name to array (a head received from a fleet, say).
        reference: the bundle's head, whose names and shapes ``values`` must have.
        source: what ``values`` is, for the error message.

    Raises:
        DataError: a name is missing or unknown, a shape differs, or a value is NaN or infinite.
    """
    if not isinstance(values, dict):
        raise DataTypeError(f"{source} must be a dict of parameter name to array, got {type(values).__name__}.")
    if set(values) != set(reference):
        raise DataError(f"{source} has parameters {sorted(values)}, but the bundle's head has {sorted(reference)}.")
    checked = {}
    for name, expected in reference.items():
        value = np.asarray(values[name])
        if value.shape != expected.shape:
            raise DataError(f"{source}'s {name} has shape {value.shape}, but the bundle's head expects {expected.shape}.")
        if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
            raise DataError(f"{source}'s {name} holds NaN, infinite or non-numeric values; it cannot become a head.")
        checked[name] = value.astype(np.float32)
    return checked
