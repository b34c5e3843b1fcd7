"""Personalizer follows scikit-learn's estimator protocol, without depending on scikit-learn on the device.

scikit-learn is installed in the workstation's environment, where these tests run.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from edgeft.config import TrainConfig
from edgeft.errors import ConfigError

FEW_EPOCHS = TrainConfig(epochs=5)


def test_get_params_returns_the_constructors_arguments(make_personalizer) -> None:
    p = make_personalizer(FEW_EPOCHS)
    params = p.get_params()
    assert sorted(params) == ["bundle", "config", "drift", "on_drift", "runtime"]
    assert params["config"] is FEW_EPOCHS and params["bundle"] is p.bundle


def test_classes_are_the_labels_in_output_order(make_personalizer) -> None:
    p = make_personalizer()
    assert p.classes_.tolist() == p.labels and len(p.classes_) == 5


def test_clone_gives_an_unfitted_copy_with_the_same_settings(make_personalizer, user) -> None:
    p = make_personalizer(FEW_EPOCHS).fit(*user)
    copy = clone(p)
    assert copy.config == p.config and copy.runtime == p.runtime
    assert (p.current_version, copy.current_version) == (1, 0)


def test_set_params_changes_the_config_and_keeps_the_learned_head(make_personalizer, user) -> None:
    p = make_personalizer(FEW_EPOCHS).fit(*user)
    p.set_params(config=TrainConfig(epochs=2))
    assert p.config.epochs == 2 and p.current_version == 1


def test_set_params_refuses_an_unknown_parameter(make_personalizer) -> None:
    with pytest.raises(ConfigError, match=r"Unknown parameter\(s\) \['epochs'\]"):
        make_personalizer().set_params(epochs=3)


def test_a_pipeline_fits_and_predicts(make_personalizer, user, test_split) -> None:
    pipeline = Pipeline([("personalizer", make_personalizer(FEW_EPOCHS))]).fit(*user)
    texts, labels = test_split
    assert np.mean(pipeline.predict(texts) == np.array(labels)) > 0.6


def test_cross_val_score_scores_every_fold(make_personalizer, user) -> None:
    texts, labels = user
    scores = cross_val_score(make_personalizer(FEW_EPOCHS), texts, labels, cv=3)
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
