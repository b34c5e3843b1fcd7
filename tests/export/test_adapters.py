"""The adapter contract, run over every registered adapter: what each kind of backbone must do to be exported.

Each adapter claims its own kind of source and no other's; exports an ONNX file whose features are the
source's; gives an input spec the manifest's schema takes back unchanged; says what a block is (fine-tuning
the last one changes it and leaves the first alone) and cuts the backbone for the device where it can.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from device_runtime import Personalizer
from edgeft.config import ExportConfig, FineTuneConfig, ImagePreprocessing, TensorPreprocessing
from edgeft.errors import ExportError
from edgeft.manifest import Manifest
from example_data import minilm_path
from export import ADAPTERS, BackboneOptions, ServerData, export_bundle
from export.adapters import GenericTorch, adapter_for
from export.adapters.tensor import default_net
from export.finetune import fine_tune
from export.vision import VISION_MODELS

SMALL = ImagePreprocessing(size=(32, 32))  # the small CNNs' input: 32 px keeps their exports instant


def _stage(channels_in: int, channels_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1), nn.BatchNorm2d(channels_out), nn.ReLU())


def sequential_cnn() -> nn.Sequential:
    """A plain CNN as users write one, with BatchNorm statistics of its own (not the identity)."""
    torch.manual_seed(0)
    net = nn.Sequential(_stage(3, 8), _stage(8, 16), _stage(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        net.train()(torch.randn(16, 3, 32, 32))
    return net.eval()


class PooledConv(nn.Module):
    """A torch module of no known architecture: one conv, pooled in forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3))


@dataclasses.dataclass(frozen=True)
class Case:
    """One adapter's source, how to read it, its server data and what it supports."""

    source: Any
    options: BackboneOptions
    data: tuple[Any, list[str]]
    blocks: int | None  # blocks for fine-tuning; None: unknown, fine-tuning is refused
    cuts: bool  # whether it makes the device cut


@pytest.fixture(scope="module")
def cases(minilm_onnx, bbc_splits, fashion, basic_motions) -> dict[str, Case]:
    """A source of every registered adapter's kind, by adapter name."""
    texts, images = bbc_splits["server"], fashion["server"]
    model, tokenizer = minilm_onnx
    return {
        "transformer-text": Case(minilm_path(), BackboneOptions(), texts, blocks=6, cuts=True),
        "onnx-file": Case(
            str(model), BackboneOptions(feature_output="sentence_embedding", tokenizer=tokenizer), texts, blocks=None, cuts=False
        ),
        "efficientnet-lite": Case(VISION_MODELS["efficientnet-lite0"].build(), BackboneOptions(), images, blocks=16, cuts=True),
        "sequential-cnn": Case(sequential_cnn(), BackboneOptions(preprocessing=SMALL), images, blocks=3, cuts=True),
        "torch-module": Case(PooledConv(), BackboneOptions(preprocessing=SMALL), images, blocks=None, cuts=False),
        "tensor": Case(
            default_net((6, 100)), BackboneOptions(tensor=TensorPreprocessing(shape=(6, 100))), basic_motions["server"], 3, True
        ),
    }


@pytest.fixture(scope="module")
def exported(cases, tmp_path_factory) -> Callable[[str], Any]:
    """Each adapter's export of its case, made once: (adapter, ExportedBackbone)."""
    done: dict[str, Any] = {}

    def export(name: str) -> Any:
        if name not in done:
            case = cases[name]
            adapter = adapter_for(case.source, case.options)
            done[name] = adapter, adapter.export_onnx(tmp_path_factory.mktemp(name), case.data[0][:4], ExportConfig())
        return done[name]

    return export


NAMES = [a.name for a in ADAPTERS]


def test_every_registered_adapter_has_a_case_here(cases):
    assert set(cases) == set(NAMES)
    assert ADAPTERS[-1] is GenericTorch  # it claims every torch module, so it is asked last


@pytest.mark.parametrize("name", NAMES)
def test_it_claims_its_own_kind_of_source_and_no_other(name, cases):
    adapter = next(a for a in ADAPTERS if a.name == name)
    assert adapter_for(cases[name].source, cases[name].options).name == name
    assert (adapter.fine_tunes, adapter.cuts) == (cases[name].blocks is not None, cases[name].cuts)  # what errors list
    for other, case in cases.items():
        if other != name and not (adapter is GenericTorch and isinstance(case.source, nn.Module)):
            assert not adapter.matches(case.source), f"{name} claims {other}'s source"


@pytest.mark.parametrize("name", NAMES)
def test_the_onnx_features_are_the_sources(name, cases, exported):
    adapter, backbone = exported(name)
    case = cases[name]
    session = ort.InferenceSession(str(backbone.fp32), providers=["CPUExecutionProvider"])
    if isinstance(case.source, nn.Module):  # a batch of two the export never saw: the batch axis is free
        x = torch.randn(2, *(adapter.spec.tensor_shape if adapter.modality == "tensor" else (3, *adapter.image_size())))
        with torch.no_grad():
            expected = case.source(x).numpy()
        feeds = {session.get_inputs()[0].name: x.numpy()}
        np.testing.assert_allclose(session.run([backbone.output_name], feeds)[0], expected, atol=1e-4)
    if name == "onnx-file":  # its source is a graph: the prepared one computes the same features
        feeds = {
            "input_ids": np.array([[101, 7592, 102]]),
            "attention_mask": np.ones((1, 3), np.int64),
            "token_type_ids": np.zeros((1, 3), np.int64),
        }
        given = ort.InferenceSession(str(case.source), providers=["CPUExecutionProvider"])
        feeds = {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
        np.testing.assert_array_equal(session.run([backbone.output_name], feeds)[0], given.run([backbone.output_name], feeds)[0])
        assert backbone.parity is None
    else:
        assert backbone.parity < 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_the_input_spec_round_trips_through_the_manifest_schema(name, exported, minilm_bundle):
    adapter, backbone = exported(name)
    spec = adapter.input_spec(backbone.fp32, ExportConfig())
    assert spec.modality == adapter.modality
    data = json.loads((minilm_bundle / "manifest.json").read_text())
    data["input"] = dataclasses.asdict(spec)
    assert Manifest.from_json(json.dumps(data).encode()).input == spec


@pytest.mark.parametrize("name", NAMES)
def test_fine_tuning_the_last_block_changes_it_and_not_the_first(name, cases):
    case = cases[name]
    adapter = adapter_for(case.source, case.options)
    if case.blocks is None:
        with pytest.raises(ExportError, match="Fine-tuning needs to know where the blocks"):
            adapter.tunable(ExportConfig())
        return
    tunable = adapter.tunable(ExportConfig(max_length=32))()
    assert len(tunable.blocks.blocks) == case.blocks
    first, last = (dict(b.named_parameters()) for b in (tunable.blocks.blocks[0], tunable.blocks.blocks[-1]))
    before = {
        k: v.detach().clone()
        for k, v in {**{f"0.{k}": v for k, v in first.items()}, **{f"-1.{k}": v for k, v in last.items()}}.items()
    }
    X, labels = case.data
    config = FineTuneConfig(trainable_blocks=1, epochs=1, batch_size=4, lr=1e-3, dry_run=True, validation_fraction=0.25)
    fine_tune(tunable, X, labels, sorted(set(labels)), config)
    assert all(torch.equal(v, before[f"0.{k}"]) for k, v in first.items())
    assert any(not torch.equal(v, before[f"-1.{k}"]) for k, v in last.items())


@pytest.mark.parametrize("name", NAMES)
def test_the_device_cut_where_supported(name, cases, tmp_path):
    case = cases[name]
    adapter = adapter_for(case.source, case.options)
    one = ExportConfig(device_trainable_blocks=1)
    if not case.cuts:
        with pytest.raises(ExportError, match="is not supported for .* yet, only for text models .*, EfficientNet-Lite"):
            adapter.check_cut(one)
        with pytest.raises(ExportError, match="not supported for"):
            adapter.export_cut(tmp_path, case.data[0][:4], 2, one, 0)
        return
    with pytest.raises(ExportError, match=f"between 1 and {case.blocks - 1}"):
        adapter.check_cut(ExportConfig(device_trainable_blocks=case.blocks))
    backbone = adapter.export_cut(tmp_path, case.data[0][:4], 3, one, 0)
    fused = backbone.fused
    assert backbone.parity < 1e-3 and fused.head_spec.backbone_blocks == 1
    assert any(n.startswith(f"blocks.{case.blocks - 1}.") for n in fused.head_spec.trainable)
    assert not [
        n for n in fused.head_spec.trainable if n.startswith("blocks.") and not n.startswith(f"blocks.{case.blocks - 1}.")
    ]


@pytest.mark.parametrize("name", ["efficientnet-lite", "sequential-cnn", "tensor"])
def test_lora_is_refused_where_the_backbone_has_no_attention(name, cases):
    adapter = adapter_for(cases[name].source, cases[name].options)
    with pytest.raises(ExportError, match="device_lora_rank .* has none"):
        adapter.check_cut(ExportConfig(device_trainable_blocks=1, device_lora_rank=4))


def test_the_generic_adapter_takes_what_no_other_claims():
    assert isinstance(adapter_for(nn.Sequential(nn.Flatten(), nn.Linear(3, 2))), GenericTorch)  # no conv stages
    assert isinstance(adapter_for(nn.Sequential(_stage(3, 4), nn.AdaptiveAvgPool2d(1))), GenericTorch)  # no flatten
    with pytest.raises(ExportError, match="No adapter exports 'no-such-model'"):
        adapter_for("no-such-model")
    with pytest.raises(ExportError, match="Unknown adapter 'resnet'"):
        adapter_for(PooledConv(), BackboneOptions(adapter="resnet"))


def test_a_second_cnn_family_ships_a_bundle_whose_last_stage_trains_on_the_device(fashion, tmp_path):
    images, labels = fashion["server"]
    keep = [i for i, label in enumerate(labels) if label in ("bag", "trouser")]
    images, labels = images[keep], [labels[i] for i in keep]
    config = ExportConfig(device_trainable_blocks=1, quantization="none", replay_per_class=0)
    manifest = export_bundle(
        sequential_cnn(),
        tmp_path / "b",
        data=ServerData(images, labels),
        config=config,
        backbone=BackboneOptions(preprocessing=SMALL),
    )
    assert manifest.base_model["name"] == "Sequential" and manifest.head.backbone_blocks == 1
    p = Personalizer.from_bundle(tmp_path / "b")
    before = p.head_parameters()
    p.fit(images, labels, epochs=2, validation_fraction=0.0, accept="always")
    after = p.head_parameters()
    assert any(not np.array_equal(after[k], before[k]) for k in after if k.startswith("blocks.2."))
    assert p.transform(images[:2]).shape == (2, 16 * 32 * 32)  # the frozen stages' activation, flattened


def test_packaged_names_build_their_model_with_its_recipe():
    adapter = adapter_for("efficientnet-lite0")
    assert adapter.name == "efficientnet-lite" and adapter.default_name == "efficientnet-lite0"
    assert adapter.image_size() == (224, 224) and adapter.preprocessing == VISION_MODELS["efficientnet-lite0"].preprocessing


def test_an_adapter_given_as_the_source_is_used_as_it_is():
    adapter = adapter_for(PooledConv(), BackboneOptions(preprocessing=SMALL))
    assert adapter_for(adapter) is adapter
