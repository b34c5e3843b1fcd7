"""Reading the exporter's server data: text files, an image folder, or .npz arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeft.data import read_examples
from edgeft.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def read_server_data(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    image_size: tuple[int, int] | None = None,
) -> tuple[Any, list[str]]:
    """Examples and labels from ``path``.

    Args:
        path: a .csv / .jsonl file of texts; a folder with one sub-folder of
            images per class (the sub-folder's name is the label); a .npz
            file with arrays ``X`` (uint8 images, float tensors, or strings) and ``y``;
            or a .csv of number columns and a label column (rows of features).
        text_column, label_column: the columns of a text file.
        image_size: (height, width) to resize folder images to, so that images
            of different sizes make one array (the backbone's input size).

    Returns:
        texts (a list), images (a uint8 array) or tensors (a float array), and their labels.

    Raises:
        DataError: the path is missing, of an unknown kind, or lacks a column, an array or images.
    """
    path = Path(path)
    if path.is_dir():
        return _read_image_folder(path, image_size)
    return read_examples(path, text_column=text_column, label_column=label_column)


def _read_image_folder(root: Path, image_size: tuple[int, int] | None) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    images, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            with Image.open(file) as image:
                image = image.convert("RGB")
                if image_size is not None:
                    image = image.resize((image_size[1], image_size[0]), Image.BILINEAR)
                images.append(np.asarray(image, dtype=np.uint8))
            labels.append(folder.name)
    if not images:
        raise DataError(
            f"{root} holds no images in class sub-folders; lay it out as {root}/<label>/<image>.png "
            f"(suffixes {', '.join(sorted(IMAGE_SUFFIXES))})."
        )
    shapes = {i.shape for i in images}
    if len(shapes) > 1:
        raise DataError(f"The images under {root} have different sizes {sorted(shapes)[:3]}; pass an image size to resize them.")
    return np.stack(images), labels
