"""Text backbones: a Hugging Face / sentence-transformers folder to ONNX, via optimum."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import onnx

from edgeft.errors import ExportError

# The pooled, normalized vector sentence-transformers models produce; optimum
# names the output so when the folder holds a sentence-transformers model.
SENTENCE_OUTPUT = "sentence_embedding"


def export_text_backbone(model_dir: str | os.PathLike, work_dir: Path) -> tuple[Path, Path]:
    """Export the model at ``model_dir`` to ONNX (FP32, opset 17) in ``work_dir``.

    Returns:
        The ONNX file and the tokenizer.json beside it.

    Raises:
        ExportError: the folder is not a loadable model, has no fast tokenizer,
            or its ONNX graph has no pooled sentence output.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ExportError(
            f"{model_dir} is not a Hugging Face model folder (no config.json). Pass the folder "
            "that holds config.json, the weights and tokenizer.json."
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a bundle is built from local files only
    from optimum.exporters.onnx import main_export
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("optimum").setLevel(logging.ERROR)  # opset advice; we pin opset 17 for ORT 1.19
    try:
        # The tracer's warnings are about shapes the export fixes on purpose; the
        # bundle check after export runs the graph on real input.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            main_export(str(model_dir), output=work_dir, task="feature-extraction", opset=17, do_validation=False)
    except Exception as e:  # optimum raises many types; the user needs to know which model failed
        raise ExportError(f"optimum could not export {model_dir}: {type(e).__name__}: {e}") from e
    onnx_path, tokenizer = work_dir / "model.onnx", work_dir / "tokenizer.json"
    if not tokenizer.is_file():
        shutil.rmtree(work_dir, ignore_errors=True)
        raise ExportError(f"{model_dir} has no fast tokenizer (tokenizer.json); the device needs one to read text.")
    outputs = [o.name for o in onnx.load(str(onnx_path), load_external_data=False).graph.output]
    if SENTENCE_OUTPUT not in outputs:
        raise ExportError(
            f"The exported graph of {model_dir} has outputs {outputs} but no pooled "
            f"{SENTENCE_OUTPUT!r}; use a sentence-transformers model folder."
        )
    return onnx_path, tokenizer


def text_parity(model_dir: str | os.PathLike, onnx_path: Path, texts: list[str], max_length: int) -> float:
    """Largest absolute difference between the ONNX sentence embedding and torch's, on ``texts``.

    Torch's side is sentence-transformers' recipe written out: the encoder,
    mean pooling over the attention mask, L2 normalization.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    from export.pooling import mean_pooled
    from export.tracing import largest_difference

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir)).eval()
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**inputs).last_hidden_state
    expected = mean_pooled(tokens, inputs["attention_mask"].float()).numpy()
    return largest_difference(onnx_path, {k: v.numpy() for k, v in inputs.items()}, SENTENCE_OUTPUT, expected)
