"""Parameters and FLOPs of a model, counted per leaf layer the way Torchreid's ``compute_model_complexity`` does.

Forward hooks on every leaf module (a module without children) record, for each call at test time
(``model.eval()``), the layer's class, its parameter count and its FLOPs. Counting rules (Torchreid's, so
figures in papers and logs compare):

* convolution: ``(prod(kernel) * in_channels + bias) * output_elements / groups`` (one multiply-add = 1 FLOP);
* linear: ``(in_features + bias) * output_elements``;
* with ``only_conv_linear=False`` also: max pooling ``(kernel - 1) * out``, average pooling ``kernel * out``
  (adaptive pools use ``ceil(in / out)`` per dimension as the kernel), ReLU / ReLU6 ``out``, LeakyReLU
  ``3 * out``, batch / instance / group / layer norm ``2 * out`` (+ ``2 * out`` when affine); every other
  layer counts 0 FLOPs.

A layer called twice counts twice (parameters included), layers unused at test time (an identity classifier
dropped by ``forward`` in eval mode) count nothing. ``torch.utils.flop_counter`` is not used: it counts a
multiply-add as 2 FLOPs, ignores biases and pooling, so its totals differ from Torchreid's.
"""
import logging
import math
from collections import OrderedDict
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import torch
from torch import nn

__all__ = ['compute_model_complexity', 'LayerComplexity']

logger = logging.getLogger(__name__)


class LayerComplexity(NamedTuple):
    """One leaf-layer call: its class name, parameter count and FLOPs."""
    class_name: str
    params: int
    flops: int


def _prod(values: Sequence[float]) -> float:
    out = 1.0
    for v in values:
        out *= float(v)
    return out


def _expand(value, dims: int) -> Tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _conv_flops(m: nn.Module, inputs: Tuple, output: torch.Tensor) -> float:
    per_output = _prod(m.kernel_size) * m.in_channels + (1 if m.bias is not None else 0)
    return per_output * output.numel() / m.groups


def _linear_flops(m: nn.Module, inputs: Tuple, output: torch.Tensor) -> float:
    return (m.in_features + (1 if m.bias is not None else 0)) * output.numel()


def _pool_flops(dims: int, compare: bool) -> Callable:
    """Fixed-kernel pooling: ``kernel - 1`` comparisons (max) or ``kernel`` additions (average) per output."""
    def count(m, inputs, output):
        k = _prod(_expand(m.kernel_size, dims))
        return (k - 1 if compare else k) * output.numel()
    return count


def _adaptive_pool_flops(dims: int, compare: bool) -> Callable:
    """Adaptive pooling: the kernel is ``ceil(input size / output size)`` per spatial dimension."""
    def count(m, inputs, output):
        in_sizes = inputs[0].shape[-dims:]
        out_sizes = _expand(m.output_size, dims)
        # None in output_size keeps that input dimension (kernel 1).
        k = _prod(math.ceil(i / (o if o is not None else i)) for i, o in zip(in_sizes, out_sizes))
        return (k - 1 if compare else k) * output.numel()
    return count


def _norm_flops(affine_attr: str) -> Callable:
    def count(m, inputs, output):
        flops = 2 * output.numel()  # mean and standard deviation
        if getattr(m, affine_attr, False):
            flops += 2 * output.numel()  # scale and shift
        return flops
    return count


_CONV_LINEAR: Dict[type, Callable] = {
    nn.Conv1d: _conv_flops, nn.Conv2d: _conv_flops, nn.Conv3d: _conv_flops, nn.Linear: _linear_flops,
}

_ALL_LAYERS: Dict[type, Callable] = dict(_CONV_LINEAR)
_ALL_LAYERS.update({
    nn.MaxPool1d: _pool_flops(1, True), nn.MaxPool2d: _pool_flops(2, True), nn.MaxPool3d: _pool_flops(3, True),
    nn.AvgPool1d: _pool_flops(1, False), nn.AvgPool2d: _pool_flops(2, False), nn.AvgPool3d: _pool_flops(3, False),
    nn.AdaptiveMaxPool1d: _adaptive_pool_flops(1, True), nn.AdaptiveMaxPool2d: _adaptive_pool_flops(2, True),
    nn.AdaptiveMaxPool3d: _adaptive_pool_flops(3, True),
    nn.AdaptiveAvgPool1d: _adaptive_pool_flops(1, False), nn.AdaptiveAvgPool2d: _adaptive_pool_flops(2, False),
    nn.AdaptiveAvgPool3d: _adaptive_pool_flops(3, False),
    nn.ReLU: lambda m, i, o: o.numel(), nn.ReLU6: lambda m, i, o: o.numel(),
    nn.LeakyReLU: lambda m, i, o: 3 * o.numel(),
    nn.BatchNorm1d: _norm_flops('affine'), nn.BatchNorm2d: _norm_flops('affine'),
    nn.BatchNorm3d: _norm_flops('affine'),
    nn.InstanceNorm1d: _norm_flops('affine'), nn.InstanceNorm2d: _norm_flops('affine'),
    nn.InstanceNorm3d: _norm_flops('affine'),
    nn.GroupNorm: _norm_flops('affine'), nn.LayerNorm: _norm_flops('elementwise_affine'),
})


def _counter_for(module: nn.Module, table: Dict[type, Callable]):
    # Exact class match, as Torchreid keys its table by class name: a subclass (e.g. a custom Conv2d with
    # its own forward) is not assumed to cost what its parent does.
    return table.get(type(module))


def compute_model_complexity(model: nn.Module, input_size: Sequence[int], verbose: bool = False,
                             only_conv_linear: bool = True) -> Tuple[int, int]:
    """Number of parameters and FLOPs of ``model`` at test time, for one input of ``input_size``.

    Args:
        model: the network; it is run once in eval mode on a random input (on the device of its first
            parameter) and put back in its previous train/eval mode.
        input_size: the input tensor's shape, e.g. ``(1, 3, 256, 128)``.
        verbose: log a per-layer-class table (parameters and FLOPs per class, then the total).
        only_conv_linear: count FLOPs of convolutions and linear layers only (Torchreid's default);
            False adds pooling, activations and normalisation.

    Returns:
        ``(num_params, flops)``: parameters of the leaf layers used in the forward pass (each call counted)
        and their FLOPs, both ints.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'compute_model_complexity: model must be an nn.Module, got {type(model).__name__}')
    shape = tuple(int(s) for s in input_size)
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f'compute_model_complexity: input_size must be positive integers, got {input_size!r}')
    table = _CONV_LINEAR if only_conv_linear else _ALL_LAYERS
    calls: List[LayerComplexity] = []

    def record(module, inputs, output):
        counter = _counter_for(module, table)
        flops = int(counter(module, inputs, output)) if counter is not None else 0
        params = sum(p.numel() for p in module.parameters())
        calls.append(LayerComplexity(type(module).__name__, params, flops))

    handles = [m.register_forward_hook(record) for m in model.modules() if next(m.children(), None) is None]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.rand(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)

    total_params = sum(c.params for c in calls)
    total_flops = sum(c.flops for c in calls)
    if verbose:
        per_class: 'OrderedDict[str, List[int]]' = OrderedDict()
        for c in calls:
            entry = per_class.setdefault(c.class_name, [0, 0])
            entry[0] += c.params
            entry[1] += c.flops
        rule = '-' * 55
        lines = [rule, f'Model complexity with input size {shape}', rule]
        lines += [f'{name} (params={p:,}, flops={f:,})' for name, (p, f) in per_class.items()]
        lines += [rule, f'Total (params={total_params:,}, flops={total_flops:,})', rule]
        logger.info('\n'.join(lines))
    return total_params, total_flops
