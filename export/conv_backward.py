"""A convolution's gradient in convolutions, so that a step graph through trainable convolutions exports to ONNX.

torch's TorchScript exporter has no ONNX form of ``aten::convolution_backward``, the op autograd records for
every convolution. :func:`convolution_backward` computes the same three gradients with ``aten::convolution``
alone, which exports as ``Conv`` / ``ConvTranspose``; :mod:`export.step_graph` traces the step with it in the
decomposition table. Exact (no approximation) for any stride, padding, dilation and groups, depthwise included,
in 1-D and 2-D:

- the input's gradient is the transposed convolution of the output's gradient with the same weight, its output
  padding chosen so that it has the input's size again;
- the weight's gradient is a convolution of the input with the output's gradient as the kernel: the batch and
  the channels trade places, the forward stride becomes the dilation and the forward dilation the stride, and
  the groups stay groups (channels of a group meet only their own group's gradients);
- the bias's gradient is the output's gradient summed over the batch and every position.
"""

from __future__ import annotations

import dataclasses

import torch

aten = torch.ops.aten


@dataclasses.dataclass(frozen=True)
class _Conv:
    """The forward convolution's geometry, one entry per spatial axis."""

    stride: list[int]
    padding: list[int]
    dilation: list[int]
    groups: int


def convolution_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias_sizes: list[int] | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    transposed: bool,
    output_padding: list[int],
    groups: int,
    output_mask: list[bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``aten.convolution_backward`` of a (non-transposed) convolution: the gradients of input, weight and bias."""
    if transposed:
        return NotImplemented  # the step graphs' models have no transposed convolutions; leave the op as it is
    conv = _Conv(list(stride), list(padding), list(dilation), groups)
    grad_input = _grad_input(grad, x, weight, conv) if output_mask[0] else None
    grad_weight = _grad_weight(grad, x, weight, conv) if output_mask[1] else None
    grad_bias = grad.sum(dim=[0, *range(2, grad.ndim)]) if output_mask[2] else None
    return grad_input, grad_weight, grad_bias


def _grad_input(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, conv: _Conv) -> torch.Tensor:
    # A transposed convolution gives (out - 1) * stride - 2 * pad + dilation * (k - 1) + 1 positions; the forward
    # pass dropped up to stride - 1 trailing input positions, which the output padding gives back (their gradient is 0).
    sizes = [
        (grad.shape[2 + i] - 1) * conv.stride[i] - 2 * conv.padding[i] + conv.dilation[i] * (weight.shape[2 + i] - 1) + 1
        for i in range(grad.ndim - 2)
    ]
    extra = [x.shape[2 + i] - size for i, size in enumerate(sizes)]
    return aten.convolution(grad, weight, None, conv.stride, conv.padding, conv.dilation, True, extra, conv.groups)


def _grad_weight(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, conv: _Conv) -> torch.Tensor:
    n, _, *space = x.shape
    _, per_group, *kernel = weight.shape
    spatial = list(range(3, 3 + len(space)))
    # (N, C_in, ...) -> (C_in / G, G * N, ...): the in-group channel is the batch, each group's channels its examples.
    inputs = x.reshape(n, conv.groups, per_group, *space).permute(2, 1, 0, *spatial).reshape(per_group, conv.groups * n, *space)
    # (N, C_out, ...) -> (C_out, N, ...): each output channel's gradient is a kernel over its group's examples.
    kernels = grad.transpose(0, 1)
    no_padding = [0] * len(space)
    full = aten.convolution(inputs, kernels, None, conv.dilation, conv.padding, conv.stride, False, no_padding, conv.groups)
    cropped = full[(slice(None), slice(None), *(slice(0, k) for k in kernel))]
    return cropped.transpose(0, 1)
