"""The device side's one public class: a bundle's model, personalized on local data."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime.backbone import backbone_for
from device_runtime.ort_training import HeadTrainingSession
from device_runtime.state import STATE_FILE, check_same_bundle, read_state, save_state
from device_runtime.trainer import Progress, ProgressCallback, train_head
from device_runtime.validation import check_inputs, check_labels
from edgeft import bundle as layout
from edgeft.bundle import Bundle
from edgeft.config import TrainConfig, from_dict, to_dict
from edgeft.errors import NotFittedError
from edgeft.metrics import classification_report


class Personalizer:
    """Fine-tunes a bundle's head on a user's own examples, then predicts.

    Only the head trains; the backbone is frozen and runs once per example.

    Args:
        bundle: a loaded :class:`~edgeft.bundle.Bundle`.
        config: head-training hyperparameters; defaults to those the bundle ships.
        providers: ONNX Runtime execution providers for the backbone.
        device: "cpu" or "cuda", where the head trains.
    """

    def __init__(
        self,
        bundle: Bundle,
        config: TrainConfig | None = None,
        providers: list[str] | None = None,
        device: str = "cpu",
    ) -> None:
        self.bundle = bundle
        self.config = config or from_dict(TrainConfig, bundle.manifest.training)
        self.device = device
        self.backbone = backbone_for(bundle, providers)
        self._session = self._shipped_head()
        self._fitted = bundle.manifest.head.trained
        self.history_: list[float] = []
        self.metrics_: dict[str, Any] = {}

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, **kwargs: Any) -> Personalizer:
        """A personalizer starting from the head the bundle at ``path`` ships."""
        return cls(Bundle.load(path), **kwargs)

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.manifest.labels)

    def fit(
        self, X: list[str], y: list[str], *, progress: ProgressCallback | None = None, **overrides: Any
    ) -> Personalizer:
        """Train the head on ``X``, ``y``, starting again from the shipped head.

        Args:
            X: the user's texts.
            y: their labels, each one of :attr:`labels`.
            progress: called with a :class:`Progress` as features are computed
                and after every epoch.
            **overrides: any :class:`~edgeft.config.TrainConfig` field for this
                call (``epochs``, ``lr``, ``batch_size``, ``schedule``,
                ``warmup_steps``, ``seed``).

        Returns:
            self, with ``history_`` (loss per epoch) and ``metrics_`` set.

        Raises:
            DataError: empty data, mismatched lengths, or unknown labels.
            ConfigError: an unknown or invalid hyperparameter.
        """
        self._session = self._shipped_head()
        return self.partial_fit(X, y, progress=progress, **overrides)

    def partial_fit(
        self, X: list[str], y: list[str], *, progress: ProgressCallback | None = None, **overrides: Any
    ) -> Personalizer:
        """Like :meth:`fit`, but continue from the current head and optimizer state."""
        config = self.config.replace(**overrides)
        texts = check_inputs(X, self.bundle.manifest.input)
        targets = check_labels(y, self.labels, len(texts))
        features = self.transform(texts, progress=progress)
        started = time.perf_counter()
        self.history_ = train_head(self._session, features, targets, config, progress)
        self.metrics_ = {
            "train_seconds": time.perf_counter() - started,
            "examples": len(texts),
            "final_loss": self.history_[-1],
        }
        self.config = config
        self._fitted = True
        return self

    def transform(self, X: list[str], *, progress: ProgressCallback | None = None) -> np.ndarray:
        """The backbone's feature vectors for ``X``, shape (n, feature_size)."""
        texts = check_inputs(X, self.bundle.manifest.input)
        report = (lambda done, total: progress(Progress("features", done, total))) if progress else None
        return self.backbone.features(texts, batch_size=self.config.batch_size, progress=report)

    def predict_proba(self, X: list[str]) -> np.ndarray:
        """Class probabilities, shape (n, len(labels)), in the order of :attr:`labels`."""
        logits = self._logits(self.transform(X))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X: list[str]) -> np.ndarray:
        """The most likely label of each example."""
        return np.asarray(self.labels)[self._logits(self.transform(X)).argmax(axis=1)]

    def evaluate(self, X: list[str], y: list[str]) -> dict[str, Any]:
        """Loss, accuracy, macro precision/recall/F1 and the confusion matrix on ``X``, ``y``."""
        texts = check_inputs(X, self.bundle.manifest.input)
        targets = check_labels(y, self.labels, len(texts))
        self._check_fitted()
        features = self.transform(texts)
        losses, predicted = [], []
        for start in range(0, len(features), self.config.batch_size):
            batch = slice(start, start + self.config.batch_size)
            loss, logits = self._session.eval_step(features[batch], targets[batch])
            losses.append(loss * len(logits))
            predicted.append(logits.argmax(axis=1))
        report = classification_report(targets, np.concatenate(predicted), len(self.labels))
        return {"loss": sum(losses) / len(features), **report, "labels": self.labels}

    def score(self, X: list[str], y: list[str]) -> float:
        """Accuracy on ``X``, ``y`` (scikit-learn's ``score``)."""
        return self.evaluate(X, y)["accuracy"]

    def save(self, path: str | os.PathLike) -> None:
        """Save the head, its optimizer state and this run's record, atomically.

        Raises:
            StateError: the state could not be written; any state at ``path`` is unchanged.
        """
        record = {
            "fitted": self._fitted,
            "config": to_dict(self.config),
            "history": self.history_,
            "metrics": self.metrics_,
        }
        save_state(path, self._session, self.bundle, record)

    @classmethod
    def load(cls, path: str | os.PathLike, bundle: str | os.PathLike | Bundle | None = None, **kwargs: Any) -> Personalizer:
        """Restore a state saved with :meth:`save`, or start from a bundle folder.

        Args:
            path: a state folder (holding ``state.json``) or a bundle folder.
            bundle: the bundle a state belongs to; by default the path recorded at save time.

        Raises:
            StateError: the state is corrupt or was saved for another bundle.
            BundleError: the bundle is missing or altered.
        """
        if not (Path(path) / STATE_FILE).is_file() and (Path(path) / layout.MANIFEST).is_file():
            return cls.from_bundle(path, **kwargs)
        record, checkpoint = read_state(path)
        if not isinstance(bundle, Bundle):
            bundle = Bundle.load(bundle or record["bundle"]["path"])
        check_same_bundle(record, bundle)
        restored = cls(bundle, config=from_dict(TrainConfig, record["config"]), **kwargs)
        restored._session = restored._head_from(checkpoint)
        restored._fitted = record["fitted"]
        restored.history_ = record["history"]
        restored.metrics_ = record["metrics"]
        return restored

    def save_head_checkpoint(self, path: str | os.PathLike) -> None:
        """The head's parameters alone, as an ORT checkpoint: what a bundle ships as its head."""
        self._session.save_checkpoint(path, include_optimizer_state=False)

    def _logits(self, features: np.ndarray) -> np.ndarray:
        self._check_fitted()
        step = self.config.batch_size
        return np.concatenate([self._session.logits(features[i : i + step]) for i in range(0, len(features), step)])

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(
                f"The head of bundle {self.bundle.manifest.name!r} was shipped untrained; "
                "call fit(X, y) with labelled examples before predict or evaluate."
            )

    def _shipped_head(self) -> HeadTrainingSession:
        return self._head_from(self.bundle.file(layout.CHECKPOINT))

    def _head_from(self, checkpoint: str | os.PathLike) -> HeadTrainingSession:
        b = self.bundle
        return HeadTrainingSession(
            b.file(layout.TRAINING_MODEL), b.file(layout.EVAL_MODEL), b.file(layout.OPTIMIZER_MODEL), checkpoint, self.device
        )

    def __repr__(self) -> str:
        state = "personalized" if self.history_ else ("shipped head" if self._fitted else "untrained head")
        return f"Personalizer({self.bundle!r}, {state})"
