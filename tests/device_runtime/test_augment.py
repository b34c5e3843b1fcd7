"""Image augmentation: views fixed by seed and content, flips only when allowed, each view trained and cached."""

from __future__ import annotations

import numpy as np
import pytest

from device_runtime import Personalizer
from device_runtime.augment import view_key, view_of
from device_runtime.cache import FeatureCache
from edgeft.config import RuntimeConfig
from edgeft.errors import ConfigError


@pytest.fixture
def left_white() -> np.ndarray:
    """A 28x28 grey image whose left third is white: a mirror moves the white to the right."""
    image = np.zeros((28, 28, 1), np.uint8)
    image[:, :9] = 255
    return image


def _halves(image: np.ndarray) -> tuple[float, float]:
    return float(image[:, :14].mean()), float(image[:, 14:].mean())


def test_a_view_is_fixed_by_seed_index_and_content_and_views_differ(left_white):
    key = FeatureCache.key_of(left_white)
    first = view_of(left_white, key, 0, seed=0, hflip=True)
    assert first.shape == left_white.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, view_of(left_white, key, 0, seed=0, hflip=True))
    assert not np.array_equal(first, view_of(left_white, key, 1, seed=0, hflip=True))
    assert view_key(key, 0, 0, hflip=True) != view_key(key, 0, 0, hflip=False) != view_key(key, 1, 0, hflip=False)


def test_views_are_mirrored_only_when_flips_are_allowed(left_white):
    key = FeatureCache.key_of(left_white)
    plain = [_halves(view_of(left_white, key, v, seed=0, hflip=False)) for v in range(20)]
    flipped = [_halves(view_of(left_white, key, v, seed=0, hflip=True)) for v in range(20)]
    assert all(left >= right for left, right in plain)
    assert any(right > left for left, right in flipped)


def test_fit_trains_on_every_view_and_computes_each_views_features_once(effnet_bundle, fashion, tmp_path):
    images, labels = fashion["server"][0][::4], fashion["server"][1][::4]  # one image of each class
    p = Personalizer.from_bundle(effnet_bundle, runtime=RuntimeConfig(cache_dir=str(tmp_path / "cache")))
    p.fit(images, labels, epochs=2, validation_fraction=0.0, accept="always", augment_views=2, augment_hflip=True)
    assert p.report_.train_examples == 3 * len(images)
    computed = []
    p.fit(
        images,
        labels,
        epochs=2,
        validation_fraction=0.0,
        accept="always",
        augment_views=2,
        augment_hflip=True,
        progress=lambda progress: computed.append(progress) if progress.stage == "features" else None,
    )
    assert computed == [], "every view's features came from the cache"
    reread = Personalizer.from_bundle(effnet_bundle, runtime=RuntimeConfig(cache_dir=str(tmp_path / "cache"))).transform(images)
    np.testing.assert_allclose(
        reread,
        Personalizer.from_bundle(effnet_bundle).transform(images),
        atol=1e-5,
        err_msg="a later process reads each image's own features, not a view's",
    )


def test_augmenting_text_is_refused_with_a_reason(make_personalizer, user):
    with pytest.raises(ConfigError, match="augment_views augments images"):
        make_personalizer().fit(*user, augment_views=2)
