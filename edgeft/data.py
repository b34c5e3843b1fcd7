"""Reading labelled examples: texts from CSV and JSONL files, number rows from CSV, arrays from .npz and .npy files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from edgeft.bundle import NPZ_ERRORS
from edgeft.errors import DataError


def read_examples(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
) -> tuple[list[str] | np.ndarray, list[str] | None]:
    """Read examples (and labels, unless ``label_column`` is None) from a .csv, .jsonl, .npz or .npy file.

    A .npz file holds an array ``X`` (strings, uint8 images, or float tensors) and, for
    labelled data, an array ``y``; the column names do not apply to it. A .npy file
    holds ``X`` alone, so it serves unlabelled examples only. A .csv file without
    ``text_column`` whose every other column is numbers holds rows of features: X is
    then a float array (n, columns), in the file's column order.

    Raises:
        DataError: the file is missing, of an unknown type, or lacks a column or an array.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, labelled=label_column is not None)
    if suffix == ".npy":
        return _read_npy(path, labelled=label_column is not None), None
    if suffix not in _TEXT_READERS:
        raise DataError(f"Data file {path} must end in .csv, .jsonl, .npz or .npy, got {suffix or 'no suffix'!r}.")
    try:
        rows = _TEXT_READERS[suffix](path)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start} cannot be decoded); save it as UTF-8.") from e
    except csv.Error as e:
        raise DataError(f"{path} is not a readable CSV file: {e}.") from e
    if suffix == ".csv" and rows and text_column not in rows[0]:
        # Unlabelled reads (predict, drift) leave out a "label" column too: a labelled table serves both.
        numbers = _number_rows(rows, label_column or "label", labelled=label_column is not None)
        if numbers is not None:
            return numbers, [str(row[label_column]) for row in rows] if label_column else None
    wanted = [text_column] + ([label_column] if label_column else [])
    for i, row in enumerate(rows):
        missing = [c for c in wanted if c not in row]
        if missing:
            raise DataError(
                f"{path}, row {i + 1}: no column {missing[0]!r}; columns are {_first(list(row))}. "
                "Name the right one with --text-column / --label-column."
            )
    texts = [row[text_column] for row in rows]
    labels = [str(row[label_column]) for row in rows] if label_column else None
    return texts, labels


def _read_npz(path: Path, labelled: bool) -> tuple[list[str] | np.ndarray, list[str] | None]:
    try:
        return _npz_arrays(path, labelled)
    except NPZ_ERRORS as e:
        if isinstance(e, DataError):
            raise
        raise DataError(
            f"{path} is not a readable .npz file ({type(e).__name__}: {e}); save it with np.savez(path, X=..., y=...)."
        ) from e


def _npz_arrays(path: Path, labelled: bool) -> tuple[list[str] | np.ndarray, list[str] | None]:
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in ("X", "y")[: 2 if labelled else 1] if k not in arrays]
        if missing:
            raise DataError(
                f"{path} has no array {missing[0]!r}; its arrays are {sorted(arrays)}. Save it with np.savez(path, X=..., y=...)."
            )
        X = arrays["X"]
        labels = [str(v) for v in arrays["y"].tolist()] if labelled else None
    if labels is not None and len(X) != len(labels):
        raise DataError(f"{path}: X has {len(X)} rows but y has {len(labels)}; they must match one to one.")
    return ([str(v) for v in X.tolist()] if X.dtype.kind in "US" else X), labels


def _read_npy(path: Path, labelled: bool) -> np.ndarray:
    if labelled:
        raise DataError(
            f"{path} is a .npy file, which holds X alone; labelled examples need their labels too: "
            "save them with np.savez(path, X=X, y=y), or as a .csv."
        )
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy file ({type(e).__name__}: {e}); save it with np.save(path, X).") from e


def _first(columns: list[str], most: int = 10) -> str:
    """Column names in the file's order, the first ``most`` of them (a table of features has hundreds)."""
    shown = ", ".join(repr(c) for c in columns[:most])
    return f"{shown}, ... ({len(columns)} in all)" if len(columns) > most else shown


def _number_rows(rows: list[dict], label_column: str, labelled: bool) -> np.ndarray | None:
    """The CSV's feature columns (all but the label) as a float array; None when a column holds something else."""
    columns = [c for c in rows[0] if c != label_column]
    if not columns or (labelled and label_column not in rows[0]):
        return None
    try:
        return np.array([[float(row[c] or "nan") for c in columns] for row in rows], dtype=np.float32)
    except ValueError:  # a text: not a table of numbers (an empty or missing cell is NaN, which the model check refuses)
        return None


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as e:
                raise DataError(
                    f"{path}, line {i + 1} is not valid JSON: {'nested too deeply' if isinstance(e, RecursionError) else e}"
                ) from e
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {i + 1}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


_TEXT_READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".ndjson": _read_jsonl}


def write_examples(path: str | os.PathLike, texts: list[str], labels: list[str] | None = None) -> None:
    """Write examples as CSV (``text``, ``label`` columns); the inverse of :func:`read_examples`."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] if labels is not None else ["text"])
        for i, text in enumerate(texts):
            writer.writerow([text, labels[i]] if labels is not None else [text])
