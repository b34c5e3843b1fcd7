"""The device side's one public class: a bundle's model, personalized on local data."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_runtime import training_run
from device_runtime.augment import view_key, view_of
from device_runtime.backbone import backbone_for
from device_runtime.cache import FeatureCache
from device_runtime.drift import DEFAULT_THRESHOLD, RunningStats, drift_features
from device_runtime.engines import HeadEngine, open_engine, resolve_engine
from device_runtime.estimator import EstimatorProtocol, check_arguments, shipped_config
from device_runtime.inference_export import export_inference_model
from device_runtime.labels import claim_labels, unknown_label_fix
from device_runtime.monitor import DriftMonitor, ReferenceSample, drift_report
from device_runtime.replay import load_guard, load_replay
from device_runtime.report import FitReport
from device_runtime.scoring import batched_logits, score_head, softmax
from device_runtime.state import STATE_FILE, check_same_bundle, read_state, refuse_unseen, save_state, seen_versions, state_lock
from device_runtime.trainer import Progress, ProgressCallback
from device_runtime.training_run import Interrupted
from device_runtime.validation import check_features, check_head, check_inputs, check_labels
from device_runtime.versions import VersionHistory
from edgeft import layout
from edgeft.bundle import Bundle
from edgeft.config import DriftConfig, Engine, NewLabels, RuntimeConfig, TrainConfig, from_dict, to_dict
from edgeft.errors import BundleError, ConfigError, NotFittedError, StateError

FEATURE_CHUNK = 256  # examples per backbone pass: bounds memory however many examples come


class Personalizer(EstimatorProtocol):
    """Fine-tunes a bundle's head on a user's own examples, then predicts.

    Only the head trains; the backbone is frozen, runs once per distinct
    example and its features are cached. Every accepted head becomes a new
    version (version 0 is the shipped head); a new head (or its mix with the
    current one) replaces the current head only if the guard finds it better
    on rows no head trained on (:mod:`device_runtime.guard`).

    Args:
        bundle: a loaded :class:`~edgeft.bundle.Bundle`.
        config: head-training hyperparameters (:class:`~edgeft.config.TrainConfig`);
            default: those the bundle ships, else TrainConfig's.
        runtime: how to run (:class:`~edgeft.config.RuntimeConfig`); default: RuntimeConfig's.
        drift: how predictions are watched for drift (:class:`~edgeft.config.DriftConfig`); default: DriftConfig's.
            Each setting's type, range, default and meaning are declared once, in edgeft/config.py.
        on_drift: called with the :meth:`drift_report` when an automatic check
            (every ``check_every`` predictions) finds drift after one that did not;
            it runs inside ``predict``, so it should return quickly.

    Raises:
        ConfigError: an invalid config, an unknown provider, or engine="ort" where ORT training is missing.
        BundleError: the bundle's head cannot be read by the chosen engine.
    """

    def __init__(
        self,
        bundle: Bundle,
        config: TrainConfig | None = None,
        runtime: RuntimeConfig | None = None,
        drift: DriftConfig | None = None,
        on_drift: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        check_arguments(bundle, config, runtime)
        self.bundle = bundle
        self.config = config or shipped_config(bundle)
        self.runtime = runtime or RuntimeConfig()
        self.drift = drift or DriftConfig()
        self.engine = resolve_engine(self.runtime.engine, bundle)
        self.backbone = backbone_for(
            bundle, list(self.runtime.providers), self.runtime.intra_op_threads, self.runtime.inter_op_threads
        )
        self.cache = FeatureCache(
            _feature_identity(bundle),
            bundle.manifest.backbone.feature_size,
            int(self.runtime.cache_memory_mb * 2**20),
            self.runtime.cache_dir,
        )
        self.added_labels_: list[str] = []  # labels this device claimed spare output slots for, in slot order
        self.replay = load_replay(bundle)
        self.guard = load_guard(bundle)
        self._engine = self._open_engine()
        self.versions_ = VersionHistory(self._engine.parameters(), bundle.manifest.created, self.runtime.keep_versions)
        self.history_: list[float] = []
        self.report_: FitReport | None = None  # the last fit/partial_fit run's record
        self.seen_ = RunningStats()
        self.monitor_ = DriftMonitor(self.drift)
        self.on_drift = on_drift
        self._reference_sample: ReferenceSample | None = None
        self._cancel = threading.Event()
        self._seen: frozenset = frozenset()  # the head versions loaded or saved: a save never drops others unseen

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, **kwargs: Any) -> Personalizer:
        """A personalizer starting from the head the bundle at ``path`` ships (checked against ``runtime.trust``)."""
        runtime = kwargs.get("runtime")
        return cls(Bundle.load(path, trust=runtime.trust if isinstance(runtime, RuntimeConfig) else None), **kwargs)

    @property
    def labels(self) -> list[str]:
        """The bundle's labels, then those added on this device (:meth:`add_labels`), in output order."""
        return [*self.bundle.manifest.labels, *self.added_labels_]

    @property
    def free_label_slots(self) -> int:
        """Spare output slots still free for :meth:`add_labels` (the bundle's ``--spare-labels`` less those claimed)."""
        return self.bundle.manifest.head.spare_labels - len(self.added_labels_)

    def add_labels(self, labels: list[str]) -> Personalizer:
        """Claim a spare output slot for each new label, so that ``fit`` can teach it; known labels are skipped.

        A claimed label is part of the state (``save``/``load``) and of every
        prediction from then on; until a head has learned it, it is rarely predicted.

        Raises:
            DataError: a label is not a non-empty string, or there are more new labels than free slots.
        """
        before = len(self.added_labels_)
        self.added_labels_ = claim_labels(self.labels, labels, self.free_label_slots, self.added_labels_)
        self._engine.claim_outputs(self._slots(before), reset_weights=True)
        return self

    @property
    def current_version(self) -> int:
        """The version of the head in use; 0 is the shipped head."""
        return self.versions_.current

    @property
    def versions(self) -> list[dict[str, Any]]:
        """Every head version kept, oldest first: number, creation time and metrics."""
        return [v.summary() for v in self.versions_.versions]

    @property
    def provider(self) -> str:
        """The execution provider that runs the backbone."""
        return self.backbone.provider

    def fit(
        self,
        X: list[str],
        y: list[str],
        *,
        progress: ProgressCallback | None = None,
        new_labels: NewLabels = NewLabels.REFUSE,
        **overrides: Any,
    ) -> Personalizer:
        """Train a head on ``X``, ``y`` from the shipped head; keep it if not worse than the current one.

        With a replay set in the bundle, its server features train beside the
        user's (``replay_ratio``); the guard judges both heads on the bundle's
        held-out guard rows and the user's validation split, per label, and
        ships the raw new head or its best mix with the current one
        (:mod:`device_runtime.guard`). A non-finite head never ships.

        Args:
            X: the user's texts.
            y: their labels, each one of :attr:`labels`.
            progress: called with a :class:`Progress` as features are computed and after every epoch.
            new_labels: what a label not in :attr:`labels` does (:class:`~edgeft.config.NewLabels`).
            **overrides: any :class:`~edgeft.config.TrainConfig` field, for this call only
                (``self.config`` and what ``save`` records are unchanged).

        Returns:
            self, with ``report_`` (a :class:`~device_runtime.report.FitReport`: accepted or not and
            why, scores, verdicts, stop reason, timings) and ``history_`` (training loss per epoch) set.

        Raises:
            DataError: empty data, mismatched lengths, unknown labels (without ``new_labels="add"``),
                more new labels than free slots, non-text examples.
            ConfigError: an unknown or invalid hyperparameter, or ``l2sp`` > 0 on a bundle without L2-SP.
        """
        self.report_ = training_run.run(self, X, y, progress, overrides, restart=True, new_labels=new_labels)
        return self

    def partial_fit(
        self,
        X: list[str],
        y: list[str],
        *,
        progress: ProgressCallback | None = None,
        new_labels: NewLabels = NewLabels.REFUSE,
        **overrides: Any,
    ) -> Personalizer:
        """Like :meth:`fit`, but continue from the current head and its optimizer state (e.g. on new examples)."""
        self.report_ = training_run.run(self, X, y, progress, overrides, restart=False, new_labels=new_labels)
        return self

    def cancel(self) -> None:
        """Stop a running ``fit``/``partial_fit`` before its next step (safe from another thread).

        The run ends with ``report_.stopped == "cancelled"`` and the current head is kept.
        """
        self._cancel.set()

    def transform(self, X: list[str], *, progress: ProgressCallback | None = None) -> np.ndarray:
        """The backbone's feature vectors for ``X``, shape (n, feature_size); from the cache where it can.

        Raises:
            DataError: ``X`` is empty or holds non-text.
        """
        return self._features(check_inputs(X, self.bundle.manifest.input), progress)

    def predict_proba(self, X: list[str]) -> np.ndarray:
        """Class probabilities, shape (n, len(labels)), in the order of :attr:`labels`.

        Raises:
            NotFittedError: the bundle shipped an untrained head and nothing was fitted.
            DataError: ``X`` is empty or holds non-text.
        """
        self._check_fitted()
        features = self.transform(X)
        proba = softmax(batched_logits(self._engine, features, self.config.batch_size, len(self.labels)))
        self.seen_.update_confidence(proba)
        self.monitor_.observe(drift_features(features, self.bundle.manifest.backbone.intermediate_shape), proba.max(axis=1))
        if self.monitor_.due() and layout.REFERENCE in self.bundle.manifest.files:
            report = self.drift_report()
            if self.monitor_.record_check(report["drifted"]) and self.on_drift is not None:
                self.on_drift(report)
        return proba

    def predict(self, X: list[str]) -> np.ndarray:
        """The most likely label of each example (same errors as :meth:`predict_proba`)."""
        return np.asarray(self.labels)[self.predict_proba(X).argmax(axis=1)]

    def evaluate(self, X: list[str], y: list[str]) -> dict[str, Any]:
        """Loss, accuracy, macro precision/recall/F1 and the confusion matrix on ``X``, ``y``.

        Raises:
            NotFittedError, DataError: as for :meth:`predict` and :meth:`fit`.
        """
        examples = check_inputs(X, self.bundle.manifest.input)
        targets = check_labels(y, self.labels, len(examples), unknown_label_fix(self.free_label_slots))
        self._check_fitted()
        report = score_head(self._engine, self._features(examples, None), targets, len(self.labels), self.config.batch_size)
        return {**report, "labels": self.labels}

    def score(self, X: list[str], y: list[str]) -> float:
        """Accuracy on ``X``, ``y`` (scikit-learn's ``score``)."""
        return self.evaluate(X, y)["accuracy"]

    def rollback(self, version: int) -> Personalizer:
        """Make head ``version`` current again (0: the shipped head). AdamW's moments start afresh.

        Raises:
            StateError: there is no such version (retention keeps 0, the current, the pinned and the last
                ``RuntimeConfig.keep_versions``), or ``version`` is not an integer.
        """
        chosen = self.versions_.get(version)
        self._engine = self._open_engine()
        self._engine.set_parameters(chosen.parameters)
        self.versions_.current = chosen.version
        return self

    def pin(self, version: int) -> Personalizer:
        """Keep head ``version`` through retention, however many versions come after it (saved with the state).

        Raises:
            StateError: there is no such version.
        """
        self.versions_.pin(version)
        return self

    def unpin(self, version: int) -> Personalizer:
        """Let retention drop head ``version`` again (see :meth:`pin`)."""
        self.versions_.unpin(version)
        return self

    def drift_report(self, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
        """Whether the recent predictions, and all data seen (fit, predict, evaluate), moved from the export data.

        The recent window is tested against the bundle's reference sample at
        the false-alarm rate ``level`` of the :class:`~edgeft.config.DriftConfig`
        (:func:`device_runtime.monitor.drift_report`); the cumulative feature
        shift is reported beside it, and decides only where the test cannot run.

        Args:
            threshold: cumulative feature shift above which the data counts as drifted
                when the test cannot run (default 0.5; see :func:`device_runtime.drift.compare`).

        Returns:
            ``drifted``, ``decided_by``, ``reason`` (a sentence), ``test`` (method, p-value,
            level, ...), ``window``, ``confidence`` and the cumulative scores.

        Raises:
            BundleError: the bundle carries no reference statistics (exported without server data).
            ConfigError: ``threshold`` is not a finite number > 0.
        """
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < float("inf"):
            raise ConfigError(f"threshold must be a finite number > 0, got {threshold!r}")
        if layout.REFERENCE not in self.bundle.manifest.files:
            raise BundleError(
                f"Bundle {self.bundle.manifest.name!r} has no {layout.REFERENCE}: drift needs a bundle exported "
                "with server data (--train-data)."
            )
        reference = self.bundle.read_json(layout.REFERENCE)
        if self._reference_sample is None and layout.REFERENCE_SAMPLE in self.bundle.manifest.files:
            arrays = self.bundle.read_arrays(layout.REFERENCE_SAMPLE, ("features", "confidence"))
            self._reference_sample = ReferenceSample(arrays["features"], arrays["confidence"])
        return drift_report(reference, self._reference_sample, self.seen_, self.monitor_, threshold)

    def export_inference_model(self, path: str | os.PathLike) -> Path:
        """Write one ONNX model (backbone plus the current head) that plain onnxruntime runs.

        Inputs are the backbone's (``input_ids``, ``attention_mask``, ...); outputs
        ``logits`` and ``probabilities``. Tokenize with the bundle's tokenizer.json.

        Raises:
            ExportError: onnx is missing or the graphs cannot be joined.
        """
        self._check_fitted()
        return export_inference_model(self.bundle, self._engine, path, self.labels)

    def save(self, path: str | os.PathLike) -> None:
        """Save every head version, the current head with its optimizer state, and this run's record, atomically.

        Raises:
            StateError: the state could not be written; any state at ``path`` is unchanged.
            StateConflictError: ``path`` holds head versions this personalizer never loaded (another process's,
                or an earlier run's that started from the bundle): saving would drop them.
        """
        record = {
            "config": to_dict(self.config),
            "history": self.history_,
            "report": self.report_.to_dict() if self.report_ else {},
            "seen": self.seen_.to_dict(),
            "monitor": self.monitor_.to_dict(),
            "added_labels": self.added_labels_,
        }
        self._seen |= save_state(path, self._engine, self.versions_, self.bundle, record, self._seen)

    def check_save(self, path: str | os.PathLike) -> None:
        """Raise the StateConflictError that :meth:`save` to ``path`` would (versions it never loaded) before a long fit."""
        refuse_unseen(path, self._seen)

    @classmethod
    def load(cls, path: str | os.PathLike, bundle: str | os.PathLike | Bundle | None = None, **kwargs: Any) -> Personalizer:
        """Restore a state saved with :meth:`save`, or start from a bundle folder.

        Args:
            path: a state folder (holding ``state.json``) or a bundle folder.
            bundle: the bundle a state belongs to; by default the path recorded at save time.
            **kwargs: ``config`` or ``runtime`` for the restored personalizer.

        A state is read under its folder's lock (device_runtime.state.state_lock): a save beside this load waits,
        so the load sees one whole state. The bundle is checked against ``runtime.trust``, else ``$EDGEFT_TRUST``.

        Raises:
            StateError: the state is corrupt, was saved for another bundle, or stayed locked by another process.
            BundleError: the bundle is missing or altered, or (SignatureError) refused by the trust policy.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise StateError(f"path must be a state or bundle folder (a str or os.PathLike), got {type(path).__name__}.")
        if not (Path(path) / STATE_FILE).is_file() and (Path(path) / layout.MANIFEST).is_file():
            return cls.from_bundle(path, **kwargs)
        with state_lock(path):  # a save waits until this load has read one whole state (versions and optimizer)
            return cls._restore(path, bundle, **kwargs)

    @classmethod
    def _restore(cls, path: str | os.PathLike, bundle: str | os.PathLike | Bundle | None, **kwargs: Any) -> Personalizer:
        record, parameters, optimizer = read_state(path)
        if not isinstance(bundle, Bundle):
            runtime = kwargs.get("runtime")
            bundle = Bundle.load(
                bundle or record["bundle"]["path"], trust=runtime.trust if isinstance(runtime, RuntimeConfig) else None
            )
        check_same_bundle(record, bundle)
        if "config" not in kwargs:
            kwargs["config"] = _saved_config(record["config"], path)
        restored = cls(bundle, **kwargs)
        restored.added_labels_ = claim_labels(restored.labels, record.get("added_labels", []), restored.free_label_slots, [])
        restored.versions_.restore(record["versions"][1:], parameters, record["current"], record.get("pinned", []))
        if record["engine"] == restored.engine.value:
            restored._engine = restored._open_engine(optimizer)
        else:  # the other engine's optimizer state cannot be read: keep the weights, restart the moments
            restored._engine = restored._open_engine()
            restored._engine.set_parameters(restored.versions_.get(record["current"]).parameters)
        restored.history_ = record["history"]
        restored.report_ = FitReport.from_dict(record["report"])
        restored.seen_ = RunningStats.from_dict(record["seen"])
        if "monitor" in record:  # states saved before the windowed monitor start with an empty window
            restored.monitor_ = DriftMonitor.from_dict(record["monitor"], restored.monitor_.config)
        restored._seen = seen_versions(record["versions"])
        return restored

    def save_head_checkpoint(self, path: str | os.PathLike) -> None:
        """The head's parameters alone as an ORT checkpoint: what a bundle ships as its head (ORT engine only)."""
        if self.engine is not Engine.ORT:
            raise StateError("Only the ORT engine writes ORT checkpoints; use engine='ort'.")
        self._engine.save_head_checkpoint(path)

    def head_parameters(self) -> dict[str, np.ndarray]:
        """A copy of the current head's parameters, by name (what crosses to a fleet)."""
        return self._engine.parameters()

    def set_head(self, parameters: dict[str, np.ndarray], source: str = "set_head") -> Personalizer:
        """Make a head received from elsewhere (a fleet's global head) current, as a new version.

        No guard runs here: what trains on top of it (``partial_fit``) is guarded as usual. AdamW's moments start afresh.

        Args:
            parameters: the head's parameters by name, as :meth:`head_parameters` gives them.
            source: where the head came from, kept in the version's metrics.

        Raises:
            DataError: the names or shapes differ from the bundle's head, or a value is NaN or infinite.
        """
        head = check_head(parameters, self._engine.parameters(), "the head to set")
        self._engine = self._open_engine()
        self._engine.set_parameters(head)
        self.versions_.add(self._engine.parameters(), {"source": source})
        return self

    def _features(
        self, examples: list[str] | np.ndarray, progress: ProgressCallback | None, stop: Callable[[], str | None] = lambda: None
    ) -> np.ndarray:
        keys = [FeatureCache.key_of(x) for x in examples]
        example_of = dict(zip(keys, examples))
        features = self._embed(keys, lambda chunk: [example_of[k] for k in chunk], progress, stop)
        for start in range(0, len(features), 4096):
            self.seen_.update_features(
                drift_features(features[start : start + 4096], self.bundle.manifest.backbone.intermediate_shape)
            )
        return features

    def _embed(
        self,
        keys: list[str],
        inputs_of: Callable[[list[str]], Any],
        progress: ProgressCallback | None,
        stop: Callable[[], str | None],
    ) -> np.ndarray:
        """Features of ``keys`` from the cache, computing the missing ones from ``inputs_of(their keys)``."""
        todo = self.cache.uncached(keys)
        for start in range(0, len(todo), FEATURE_CHUNK):
            if reason := stop():
                kept = f" (those {start} stay in the feature cache)" if start else ""
                raise Interrupted(reason, f"{reason} after features of {start} of {len(todo)} new examples{kept}")
            chunk = todo[start : start + FEATURE_CHUNK]
            vectors = self.backbone.features(inputs_of(chunk), batch_size=self.config.batch_size)
            check_features(vectors, self.bundle.manifest.backbone.feature_size, "the backbone's output")
            self.cache.put(chunk, vectors)
            if progress:
                progress(Progress("features", start + len(chunk), len(todo)))
        return self.cache.matrix(keys)

    def _augmented(
        self,
        examples: np.ndarray,
        rows: np.ndarray,
        config: TrainConfig,
        progress: ProgressCallback | None,
        stop: Callable[[], str | None],
    ) -> np.ndarray:
        """Features of ``config.augment_views`` views of each example in ``rows``, view by view, each view cached.

        Row ``v * len(rows) + j`` of the result is view ``v`` of ``examples[rows[j]]``.
        """
        if (modality := self.bundle.manifest.input.modality) != "image":
            raise ConfigError(f"augment_views augments images; this bundle reads {modality} (see docs/device.md).")
        flip, seed = config.augment_hflip, config.seed
        base = [(FeatureCache.key_of(examples[i]), examples[i]) for i in rows]
        views = [(view_key(k, v, seed, hflip=flip), k, image, v) for v in range(config.augment_views) for k, image in base]
        source = {vk: (k, image, v) for vk, k, image, v in views}

        def inputs_of(chunk: list[str]) -> np.ndarray:
            return np.stack([view_of(source[c][1], source[c][0], source[c][2], seed, hflip=flip) for c in chunk])

        return self._embed([vk for vk, *_ in views], inputs_of, progress, stop)

    def _weight_decay(self, config: TrainConfig) -> float:
        return self.bundle.manifest.head.weight_decay if config.weight_decay is None else config.weight_decay

    def _open_engine(self, state: str | os.PathLike | None = None, weight_decay: float | None = None) -> HeadEngine:
        decay = weight_decay if weight_decay is not None else self.config.weight_decay
        threads = (self.runtime.intra_op_threads, self.runtime.inter_op_threads)
        engine = open_engine(self.engine, self.bundle, state, decay, threads, self.runtime.providers)
        if self.added_labels_:  # the shipped head has these slots masked; a saved head has trained them
            engine.claim_outputs(self._slots(0), reset_weights=state is None)
        return engine

    def _slots(self, first_added: int) -> list[int]:
        """Output slots of the added labels from ``first_added`` on."""
        return list(range(len(self.bundle.manifest.labels) + first_added, len(self.labels)))

    def _check_fitted(self) -> None:
        if not (self.bundle.manifest.head.trained or self.versions_.current != 0):
            raise NotFittedError(
                f"The head of bundle {self.bundle.manifest.name!r} was shipped untrained; "
                "call fit(X, y) with labelled examples before predict or evaluate."
            )

    def __repr__(self) -> str:
        return f"Personalizer({self.bundle!r}, head version {self.current_version}, {self.engine.value} engine)"


def _saved_config(values: dict[str, Any], path: str | os.PathLike) -> TrainConfig:
    try:
        return from_dict(TrainConfig, values)
    except ConfigError as e:
        raise StateError(f"The training config saved in {Path(path) / STATE_FILE} is invalid ({e}); the state is corrupt.") from e


def _feature_identity(bundle: Bundle) -> str:
    """What fixes an example's features: the backbone, its tokenizer (if any) and the input spec."""
    tokenizer = bundle.manifest.files.get(layout.TOKENIZER)
    spec = json.dumps(dataclasses.asdict(bundle.manifest.input), sort_keys=True)
    return f"{bundle.backbone_sha256}:{tokenizer.sha256 if tokenizer else '-'}:{spec}"
