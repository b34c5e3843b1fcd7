"""The device's side of a fleet: a Flower ClientApp around :class:`~device_runtime.Personalizer`.

Each round a device receives the global head, makes it current (``set_head``), trains on its own
examples with ``partial_fit`` (so the acceptance guard decides, as on any device; its validation
split changes with the round, so no example is held out of every round), and answers
with its head's arrays, its example count (Flower weights by ``num-examples``) and its metrics.
A head that the guard refused is not sent as trained: the device answers with the head it kept.
Only the head's arrays leave the device, never examples or features; before the first round, when the
server asks (``query`` messages, the closed-form start), the sums of its features (:mod:`fleet.statistics`).

This module imports only device_runtime, edgeft, numpy and flwr.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod

from device_runtime import Personalizer
from device_runtime.head_graph import LINEAR_LAYERS
from device_runtime.validation import check_head
from edgeft.bundle import Bundle
from edgeft.config import RuntimeConfig
from edgeft.data import read_examples
from edgeft.errors import ConfigError, DataError
from edgeft.metrics import cross_entropies
from fleet.heads import from_record, head_bytes, to_record
from fleet.start import CALIBRATION, STATISTICS, TEMPERATURE_GRID, to_statistics_record
from fleet.statistics import Statistics, StatisticsNoise, device_statistics

CLIPPING_KEY = "clipping_norm"  # the key Flower's DP wrapper puts in the train config (flwr.common.constant)


@dataclasses.dataclass(frozen=True)
class DeviceData:
    """One device's labelled examples: what it trains on, and a held-out split it only scores on."""

    X: Sequence[Any]
    y: Sequence[str]
    X_test: Sequence[Any]
    y_test: Sequence[str]


def client_app(
    bundle: str | None = None,
    devices: Sequence[DeviceData] | None = None,
    runtime: RuntimeConfig | None = None,
    mods: Sequence[Any] = (),
) -> ClientApp:
    """A ClientApp for simulated devices (``devices``, chosen by Flower's ``partition-id``) or a real one.

    Args:
        bundle: the bundle folder every device starts from; None: the SuperNode's ``bundle`` node-config value.
        devices: simulated devices' data; None: the SuperNode's ``data`` and ``test-data`` files
            (.csv/.jsonl/.npz, as ``edgeft personalize --data`` reads them).
        runtime: how the devices run (engine, threads, a persistent ``cache_dir`` for features); default RuntimeConfig().
        mods: more Flower mods, applied before the clipping one (they see what leaves the device last).

    Returns:
        The ClientApp; with privacy on, Flower's ``fixedclipping_mod`` clips each update before it leaves.
    """
    app = ClientApp(mods=[*mods, _clip_when_asked])

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        personalizer, data = _device(context, bundle, devices, runtime or RuntimeConfig())
        config = msg.content["config"]
        received = from_record(msg.content["arrays"])
        personalizer.set_head(received, source=f"fleet round {config['server-round']}")
        personalizer.partial_fit(list(data.X), list(data.y), **training_overrides(config))
        report = personalizer.report_
        head = personalizer.head_parameters()
        metrics = {
            "num-examples": len(data.X),
            "accepted": int(report.accepted),
            "validation-loss": float(report.new["loss"] if report.accepted else report.current["loss"]),
            "bytes-received": head_bytes(received),
            "bytes-sent": head_bytes(head),
        }
        return Message(RecordDict({"arrays": to_record(head), "metrics": MetricRecord(metrics)}), reply_to=msg)

    @app.query()
    def answer_query(msg: Message, context: Context) -> Message:
        """Before the rounds: this device's statistics, or its losses under a head to calibrate (fleet.start)."""
        personalizer, data = _device(context, bundle, devices, runtime or RuntimeConfig())
        if CALIBRATION in msg.content.array_records:
            losses = calibration_losses(
                personalizer, data, from_record(msg.content[CALIBRATION]), msg.content[TEMPERATURE_GRID]["temperatures"]
            )
            return Message(RecordDict({CALIBRATION: ArrayRecord({"losses": Array(losses)})}), reply_to=msg)
        stats = local_statistics(personalizer, data, msg.content[STATISTICS])
        return Message(RecordDict({STATISTICS: to_statistics_record(stats)}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        personalizer, data = _device(context, bundle, devices, runtime or RuntimeConfig())
        personalizer.set_head(from_record(msg.content["arrays"]), source="fleet evaluation")
        report = personalizer.evaluate(list(data.X_test), list(data.y_test))
        metrics = {
            "num-examples": len(data.X_test),
            "accuracy": report["accuracy"],
            "loss": report["loss"],
            "macro-f1": report["macro_f1"],
        }
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


def local_statistics(personalizer: Personalizer, data: DeviceData, query: ConfigRecord) -> Statistics:
    """This device's statistics for the closed-form start: its training examples' features and labels, summed.

    With a noise multiplier in the query (privacy on), the rows are clipped and noise is added here, on the device.

    Raises:
        DataError: a label the bundle does not have (a device-added label has no row in the fleet's head).
    """
    labels = personalizer.bundle.manifest.labels
    unknown = sorted(set(data.y) - set(labels))
    if unknown:
        raise DataError(f"Labels {unknown[:5]} are not among the bundle's {labels}; the fleet's statistics cover only those.")
    noise = None
    if "noise-multiplier" in query:
        noise = StatisticsNoise(float(query["noise-multiplier"]), float(query["feature-norm"]))
    features = personalizer.transform(list(data.X))
    targets = np.array([labels.index(label) for label in data.y])
    return device_statistics(features, targets, len(labels), noise)


def calibration_losses(
    personalizer: Personalizer, data: DeviceData, head: dict[str, np.ndarray], temperatures: Sequence[float]
) -> np.ndarray:
    """The summed cross-entropy of this device's training rows under a linear ``head``, at each logit temperature."""
    labels = personalizer.bundle.manifest.labels
    check_head(head, personalizer.head_parameters(), "the head to calibrate")
    weight, bias = LINEAR_LAYERS[0]
    logits = personalizer.transform(list(data.X)) @ head[weight][: len(labels)].T + head[bias][: len(labels)]
    targets = np.array([labels.index(label) for label in data.y])
    return np.array([float(np.sum(cross_entropies(logits / t, targets))) for t in temperatures])


def training_overrides(config: ConfigRecord) -> dict[str, Any]:
    """The ``partial_fit`` settings a round's train config asks of a device.

    The seed is the run's seed plus the round: it draws the guard's validation split, so each round holds
    out other examples and none is kept out of every round's training (the split is stratified, 1 to 4 of a
    device's few examples).
    """
    overrides: dict[str, Any] = {
        "epochs": int(config["local-epochs"]),
        "schedule": str(config["local-schedule"]),
        "seed": int(config["seed"]) + int(config["server-round"]),
    }
    if "lr" in config:
        overrides["lr"] = float(config["lr"])
    return overrides


def _clip_when_asked(msg: Message, context: Context, call_next: Any) -> Message:
    """Flower's client-side clipping on training messages that carry a clipping norm (privacy on); else nothing."""
    configs = list(msg.content.config_records.values())
    if msg.metadata.message_type == MessageType.TRAIN and configs and CLIPPING_KEY in configs[0]:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def _device(
    context: Context, bundle: str | None, devices: Sequence[DeviceData] | None, runtime: RuntimeConfig
) -> tuple[Personalizer, DeviceData]:
    node = context.node_config
    path = bundle or _node_value(node, "bundle")
    if devices is not None:
        data = devices[int(node["partition-id"])]
    else:
        data = _read_device_data(_node_value(node, "data"), _node_value(node, "test-data"))
    return _personalizer(str(path), runtime), data


@functools.lru_cache(maxsize=4)
def _personalizer(bundle: str, runtime: RuntimeConfig) -> Personalizer:
    """One Personalizer per bundle and process, reused by every device this process runs.

    Loading a backbone costs seconds; every call sets the head it received first, so nothing but
    content-keyed cached features carries from one simulated device to the next.
    """
    return Personalizer(Bundle.load(bundle), runtime=runtime)


@functools.lru_cache(maxsize=4)
def _read_device_data(data: str, test_data: str) -> DeviceData:
    X, y = read_examples(data)
    X_test, y_test = read_examples(test_data)
    return DeviceData(X, y, X_test, y_test)


def _node_value(node: ConfigRecord | dict, key: str) -> str:
    if key not in node:
        raise ConfigError(f"This SuperNode has no {key!r} in its node config; start it with `edgeft fleet join --{key} ...`.")
    return str(node[key])
