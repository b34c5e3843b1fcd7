"""Sentence-transformers' pooling in torch: the mean of the token vectors the attention mask keeps, L2-normalized.

The text exporter checks optimum's ONNX graph against it (:func:`export.text.text_parity`), server-side fine-tuning
trains through it (:func:`export.adapters.text.transformer_tunable`), and a cut text encoder's tail exports it
(:class:`export.text_fused.TextTail`). An ONNX file's own pooling is built as ONNX nodes, with onnx alone
(:mod:`export.onnx_file`).
"""

from __future__ import annotations

import torch

# Guards the division for a row whose mask keeps no token (sentence-transformers' clamp).
_MIN_TOKENS = 1e-9


def mean_pooled(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One unit-length vector per row: the mean of ``tokens`` over the positions ``mask`` keeps.

    Args:
        tokens: (batch, positions, features) token vectors.
        mask: (batch, positions), 1 for a token and 0 for padding, in ``tokens``' dtype (a cast here would
            add a node to every traced graph).
    """
    weights = mask.unsqueeze(-1)
    pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=_MIN_TOKENS)
    return torch.nn.functional.normalize(pooled, dim=1)
