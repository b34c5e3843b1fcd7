"""scikit-learn's estimator protocol for :class:`~device_runtime.Personalizer`, without scikit-learn on the device.

The constructor's arguments are the estimator's parameters, stored as given (None resolved to its default), so
``sklearn.base.clone``, ``Pipeline``, ``cross_val_score`` and the searches work where scikit-learn is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from device_runtime.monitor import DriftMonitor
from edgeft.bundle import Bundle
from edgeft.config import DriftConfig, RuntimeConfig, TrainConfig, from_dict
from edgeft.errors import ConfigError

# The constructor's arguments: what get_params returns and set_params takes.
PARAMETERS = ("bundle", "config", "runtime", "drift", "on_drift")
# Arguments that fix the backbone and the engine: changing one starts over from the shipped head.
RESTARTING = {"bundle", "runtime"}


def check_arguments(bundle: object, config: object, runtime: object) -> None:
    """Wrong types here would fail later, far from the cause, as AttributeErrors."""
    for name, value, kind in (("bundle", bundle, Bundle), ("config", config, TrainConfig), ("runtime", runtime, RuntimeConfig)):
        if not (isinstance(value, kind) or (value is None and name != "bundle")):
            raise ConfigError(
                f"{name} must be a {kind.__name__}{'' if name == 'bundle' else ' or None'}, got {type(value).__name__}."
            )


def shipped_config(bundle: Bundle) -> TrainConfig:
    """The training settings the bundle ships (TrainConfig's defaults where it ships none)."""
    return from_dict(TrainConfig, bundle.manifest.training)


class EstimatorProtocol:
    """``get_params``, ``set_params``, ``classes_`` and scikit-learn's tags, over the constructor's arguments."""

    bundle: Bundle
    config: TrainConfig
    runtime: RuntimeConfig
    drift: DriftConfig
    on_drift: Callable[[dict[str, Any]], None] | None
    labels: list[str]
    monitor_: DriftMonitor

    @property
    def classes_(self) -> np.ndarray:
        """The labels in output order (:attr:`labels`), under scikit-learn's name for them."""
        return np.array(self.labels, dtype=object)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments, as scikit-learn's ``clone``, ``Pipeline`` and searches read them.

        ``deep`` is part of scikit-learn's protocol; no argument here is an estimator, so it changes nothing.
        """
        return {name: getattr(self, name) for name in PARAMETERS}

    def set_params(self, **params: Any) -> EstimatorProtocol:
        """Change constructor arguments, as scikit-learn's searches do before ``fit``.

        ``config`` and ``on_drift`` change in place, keeping the learned heads; a new ``drift`` starts a new
        drift window; a new ``bundle`` or ``runtime`` starts over from the bundle's shipped head, as a new
        Personalizer would.

        Raises:
            ConfigError: an unknown parameter, or a value of the wrong type.
        """
        unknown = sorted(params.keys() - set(PARAMETERS))
        if unknown:
            raise ConfigError(f"Unknown parameter(s) {unknown} for {type(self).__name__}; valid parameters: {list(PARAMETERS)}.")
        merged = {**self.get_params(), **params}
        if params.keys() & RESTARTING:
            self.__init__(**merged)
            return self
        check_arguments(self.bundle, merged["config"], self.runtime)
        self.config = merged["config"] or shipped_config(self.bundle)
        self.on_drift = merged["on_drift"]
        if "drift" in params:
            self.drift = merged["drift"] or DriftConfig()
            self.monitor_ = DriftMonitor(self.drift)
        return self

    def __sklearn_tags__(self) -> Any:
        """What scikit-learn needs to know of this classifier; only scikit-learn calls it, so only then is it imported."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True),
            classifier_tags=ClassifierTags(),
            input_tags=InputTags(string=self.bundle.manifest.input.modality == "text"),
            no_validation=True,  # the bundle's own checks validate inputs at fit and predict
            requires_fit=False,  # the shipped head predicts before any fit
        )
