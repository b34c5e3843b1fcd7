"""set_head: a head from elsewhere (a fleet) becomes a version; a head that cannot be one is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_runtime import Personalizer
from edgeft.config import RuntimeConfig
from edgeft.errors import DataError


@pytest.fixture
def personalizer(minilm_bundle: Path) -> Personalizer:
    return Personalizer.from_bundle(minilm_bundle, runtime=RuntimeConfig(engine="numpy"))


def test_a_set_head_becomes_the_current_version(personalizer: Personalizer) -> None:
    head = {k: v * 0.5 for k, v in personalizer.head_parameters().items()}
    personalizer.set_head(head, source="fleet round 1")
    assert personalizer.current_version == 1
    assert personalizer.versions[-1]["metrics"] == {"source": "fleet round 1"}
    np.testing.assert_array_equal(personalizer.head_parameters()["head.weight"], head["head.weight"])
    personalizer.rollback(0)
    np.testing.assert_array_equal(personalizer.head_parameters()["head.weight"], head["head.weight"] * 2)


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda h: {**h, "head.weight": h["head.weight"][:-1]}, "has shape"),
        (lambda h: {**h, "head.bias": np.full_like(h["head.bias"], np.nan)}, "NaN"),
        (lambda h: {"head.weight": h["head.weight"]}, "has parameters"),
    ],
)
def test_a_head_that_cannot_be_one_is_refused_and_nothing_changes(personalizer: Personalizer, spoil, message: str) -> None:
    before = personalizer.head_parameters()
    with pytest.raises(DataError, match=message):
        personalizer.set_head(spoil(before))
    assert personalizer.current_version == 0
    np.testing.assert_array_equal(personalizer.head_parameters()["head.bias"], before["head.bias"])
