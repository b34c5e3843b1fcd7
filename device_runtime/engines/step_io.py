"""The step graphs' inputs and outputs by name: what the exporter writes and the step engine feeds.

A training-step graph (``head/step_model.onnx``) takes the trainable parameters (by their own names),
AdamW's moments, the L2-SP anchors, a batch padded to ``head.step_batch`` rows with per-row weights,
and the scalars below; it returns the loss and every updated parameter and moment. The evaluation
graph (``head/step_eval_model.onnx``) takes the parameters and any batch, and returns the logits.
"""

from __future__ import annotations

FEATURES = "features"
TARGETS = "targets"  # int64 class indices
ROW_WEIGHTS = "row_weights"  # float32 per row: 1 for an example, 0 for padding (copies of examples); a weighted mean
STEP = "step"  # float32 scalar: AdamW's step count t after this step (1 on the first), for bias correction
LEARNING_RATE = "learning_rate"
WEIGHT_DECAY = "weight_decay"  # AdamW's decoupled decay, an input so a device changes it without a new graph
L2SP_STRENGTH = "l2sp_strength"
LOSS = "loss"
LOGITS = "logits"


def first_moment(name: str) -> str:
    return f"adamw.m/{name}"


def second_moment(name: str) -> str:
    return f"adamw.v/{name}"


def anchor(name: str) -> str:
    return f"l2sp.anchor/{name}"


def updated(name: str) -> str:
    """The output holding the new value of input ``name`` (a parameter or a moment)."""
    return f"new/{name}"
