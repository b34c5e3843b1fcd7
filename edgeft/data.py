"""Reading labelled examples from CSV and JSONL files (standard library only)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from edgeft.errors import DataError


def read_examples(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
) -> tuple[list[str], list[str] | None]:
    """Read texts (and labels, unless ``label_column`` is None) from a .csv or .jsonl file.

    Raises:
        DataError: the file is missing, of an unknown type, or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    else:
        raise DataError(f"Data file {path} must end in .csv or .jsonl, got {suffix or 'no suffix'!r}.")
    wanted = [text_column] + ([label_column] if label_column else [])
    for i, row in enumerate(rows):
        missing = [c for c in wanted if c not in row]
        if missing:
            raise DataError(
                f"{path}, row {i + 1}: no column {missing[0]!r}; columns are {sorted(row)}. "
                "Name the right one with --text-column / --label-column."
            )
    texts = [row[text_column] for row in rows]
    labels = [str(row[label_column]) for row in rows] if label_column else None
    return texts, labels


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
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {i + 1} is not valid JSON: {e}") from e
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {i + 1}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def write_examples(path: str | os.PathLike, texts: list[str], labels: list[str] | None = None) -> None:
    """Write examples as CSV (``text``, ``label`` columns); the inverse of :func:`read_examples`."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] if labels is not None else ["text"])
        for i, text in enumerate(texts):
            writer.writerow([text, labels[i]] if labels is not None else [text])
