"""Label-preserving image augmentation in numpy: random resized crops, small shifts, horizontal flips where allowed.

One implementation for both sides: the device trains its head on the
features of ``k`` augmented views of each image (each view's features cached
under its own key), and server-side fine-tuning (``export/finetune.py``)
augments each batch with the same function. A view is fixed by the seed, its
index and the image's content, so its cached features stay valid.
"""

from __future__ import annotations

import hashlib

import numpy as np

from device_runtime.image import resize_bilinear

# Share of the image a random crop keeps. Measured on Fashion-MNIST at 4 per class (3 seeds, docs/device.md):
# views keeping 85% or more gained 1.5 points, crops down to 60% of the area 0.8 (they cut off too much of a garment).
CROP_AREA = (0.85, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)  # the crop's width/height ratio, as in torchvision's RandomResizedCrop
MAX_SHIFT = 0.07  # shifts move an image by up to this share of its side (2 pixels at 28), edges repeated
VERSION = "v2"  # part of each view's cache key: a change to the recipe above must change it


def augment_image(image: np.ndarray, rng: np.random.Generator, *, hflip: bool) -> np.ndarray:
    """One random view of a uint8 image (h, w, c): crop and resize back, shift, and flip if ``hflip``.

    Args:
        image: uint8 pixels, shape (height, width, channels).
        rng: where the randomness comes from.
        hflip: whether a mirrored image keeps its label (clothes yes; digits and text no).

    Returns:
        A uint8 image of the same shape.
    """
    h, w = image.shape[:2]
    area = rng.uniform(*CROP_AREA) * h * w
    aspect = np.exp(rng.uniform(*np.log(CROP_ASPECT)))
    ch, cw = min(h, max(1, round(np.sqrt(area / aspect)))), min(w, max(1, round(np.sqrt(area * aspect))))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = image[top : top + ch, left : left + cw].astype(np.float32)[None]
    view = resize_bilinear(crop, h, w)[0]
    dy, dx = (rng.integers(-round(MAX_SHIFT * s), round(MAX_SHIFT * s) + 1) for s in (h, w))
    view = np.pad(view, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    view = view[abs(dy) - dy : abs(dy) - dy + h, abs(dx) - dx : abs(dx) - dx + w]
    if hflip and rng.random() < 0.5:
        view = view[:, ::-1]
    return np.clip(np.rint(view), 0, 255).astype(np.uint8)


def view_of(image: np.ndarray, key: str, view: int, seed: int, *, hflip: bool) -> np.ndarray:
    """View number ``view`` of an image whose content hash is ``key``: the same inputs always give the same view."""
    rng = np.random.default_rng([seed, view, int(key[:15], 16)])
    return augment_image(image, rng, hflip=hflip)


def view_key(key: str, view: int, seed: int, *, hflip: bool) -> str:
    """The feature cache's key for a view: distinct per view, seed, flip setting and recipe version.

    Hashed to the 32 hex digits of :meth:`FeatureCache.key_of`: the cache's disk records hold exactly that many.
    """
    text = f"{key}:aug-{VERSION}:{view}:{seed}:{'hflip' if hflip else 'noflip'}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:32]


def augment_batch(images: np.ndarray, rng: np.random.Generator, *, hflip: bool) -> np.ndarray:
    """A fresh random view of every image in a uint8 batch (n, h, w, c): what server-side fine-tuning trains on."""
    return np.stack([augment_image(image, rng, hflip=hflip) for image in images])
