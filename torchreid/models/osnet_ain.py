"""OSNet-AIN (Zhou et al., "Learning Generalisable Omni-Scale Representations for Person Re-Identification",
TPAMI'21): OSNet with instance normalisation placed where the paper's architecture search put it, for
cross-domain generalisation.

Written here from the paper's description and Torchreid's public layer names, reusing this package's OSNet
layers (:class:`~torchreid.models.osnet.ConvLayer`, :class:`~torchreid.models.osnet.LiteConv3x3`,
:class:`~torchreid.models.osnet.AggregationGate`):

* the stem normalises with InstanceNorm;
* an OS block keeps its ``T=4`` streams in one list, ``conv2.<t-1>.layers.<i>`` (stream ``t`` stacks ``t``
  Lite 3x3 layers), shares one aggregation gate between them, and ends with a linear 1x1 expansion;
* "IN-in" blocks (:class:`OSBlockINin`) drop the expansion's BatchNorm and normalise the expanded residual
  branch with InstanceNorm (``IN``, before the residual sum): style statistics leave what the block adds
  while the identity path keeps them;
* placement per stage: conv2 [IN-in, IN-in], conv3 [plain, IN-in], conv4 [IN-in, plain]; the transitions
  between stages are separate children, ``pool2`` and ``pool3`` (1x1 conv + 2x2 average pooling);
* widths x1.0 / x0.75 / x0.5 / x0.25 scale the channels ``[64, 256, 384, 512]``; the feature is the 512-d
  ``fc`` output at every width.

The state dict uses Torchreid's names and shapes (552 tensors for ``osnet_ain_x1_0``: ``conv1.bn.weight``,
``conv2.0.conv2.3.layers.3.conv2.weight``, ``conv2.0.IN.weight``, ``pool2.0.conv.weight``, ...), so
Torchreid's ImageNet and ReID weight files load completely. No torchvision weights exist:
``pretrained=True`` looks for ``<name>_imagenet.pth`` locally (see :mod:`torchreid.models.weights`).
"""
from typing import Any, List, Sequence, Tuple, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import ReIDModel
from .osnet import AggregationGate, ConvLayer, LiteConv3x3, OSNET_CHANNELS, build_osnet_model
from .registry import register_model
from .weights import init_params

__all__ = ['LiteConvStream', 'OSBlockAIN', 'OSBlockINin', 'osnet_ain_stages', 'AIN_BLOCKS', 'osnet_ain_x1_0',
           'osnet_ain_x0_75', 'osnet_ain_x0_5', 'osnet_ain_x0_25']


class LiteConvStream(nn.Module):
    """One scale of an OS block: ``depth`` Lite 3x3 layers in ``layers`` (receptive field ``2 * depth + 1``)."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        if depth < 1:
            raise ValueError(f'LiteConvStream: depth must be >= 1, got {depth}')
        self.layers = nn.Sequential(*[LiteConv3x3(channels, channels) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OSBlockAIN(nn.Module):
    """OSNet-AIN's plain omni-scale block: 1x1 reduction (``conv1``), ``num_streams`` streams (``conv2``, a
    ModuleList) weighed by one shared ``gate`` and summed, linear 1x1 expansion + BN (``conv3``), a projection
    shortcut (``downsample``) when the channels change, ReLU after the residual sum."""

    #: InstanceNorm inside the residual branch (set by :class:`OSBlockINin`)
    instance_norm_branch = False

    def __init__(self, in_channels: int, out_channels: int, num_streams: int = 4, reduction: int = 4):
        super().__init__()
        if num_streams < 1:
            raise ValueError(f'{type(self).__name__}: num_streams must be >= 1, got {num_streams}')
        if out_channels < reduction or out_channels % reduction:
            raise ValueError(f'{type(self).__name__}: out_channels ({out_channels}) must be a multiple of the '
                             f'reduction ({reduction})')
        mid = out_channels // reduction
        self.conv1 = ConvLayer(in_channels, mid, 1)
        self.conv2 = nn.ModuleList([LiteConvStream(mid, depth) for depth in range(1, num_streams + 1)])
        self.gate = AggregationGate(mid)
        self.conv3 = ConvLayer(mid, out_channels, 1, norm='none' if self.instance_norm_branch else 'bn',
                               relu=False)
        self.downsample = ConvLayer(in_channels, out_channels, 1, relu=False) if in_channels != out_channels else None
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if self.instance_norm_branch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        aggregated = None
        for stream in self.conv2:
            gated = self.gate(stream(reduced))
            aggregated = gated if aggregated is None else aggregated + gated
        out = self.conv3(aggregated)
        if self.IN is not None:
            out = self.IN(out)
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class OSBlockINin(OSBlockAIN):
    """The "IN-in" block: the expansion conv has no BN; ``IN`` (InstanceNorm, affine) normalises the residual
    branch before the sum."""

    instance_norm_branch = True


#: block types per stage (conv2, conv3, conv4), as the paper's search placed them
AIN_BLOCKS: Sequence[Sequence[Type[OSBlockAIN]]] = ((OSBlockINin, OSBlockINin), (OSBlockAIN, OSBlockINin),
                                                    (OSBlockINin, OSBlockAIN))


def _transition(channels: int) -> nn.Sequential:
    return nn.Sequential(ConvLayer(channels, channels, 1), nn.AvgPool2d(2, stride=2))


def osnet_ain_stages(width: float = 1.0,
                     blocks: Sequence[Sequence[Type[OSBlockAIN]]] = AIN_BLOCKS
                     ) -> Tuple[List[Tuple[str, nn.Module]], int]:
    """OSNet-AIN's feature layers ``[(name, module), ...]`` (conv1, maxpool, conv2, pool2, conv3, pool3, conv4,
    conv5) and the channels of the last one."""
    if width <= 0:
        raise ValueError(f'OSNet-AIN width must be > 0, got {width}')
    c = [max(4, int(round(ch * width))) for ch in OSNET_CHANNELS]
    stages: List[Tuple[str, nn.Module]] = [
        ('conv1', ConvLayer(3, c[0], 7, stride=2, padding=3, norm='in')),
        ('maxpool', nn.MaxPool2d(3, stride=2, padding=1))]
    in_ch = c[0]
    for s, stage_blocks in enumerate(blocks):
        out_ch = c[s + 1]
        stage = nn.Sequential(*[block(in_ch if b == 0 else out_ch, out_ch) for b, block in enumerate(stage_blocks)])
        stages.append((f'conv{s + 2}', stage))
        if s < len(blocks) - 1:
            stages.append((f'pool{s + 2}', _transition(out_ch)))
        in_ch = out_ch
    stages.append(('conv5', ConvLayer(in_ch, in_ch, 1)))
    for _, module in stages:
        init_params(module)
    return stages, in_ch


def _factory(name: str, width: float):
    def factory(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
        return build_osnet_model(name, num_classes, loss, pretrained, kwargs, lambda: osnet_ain_stages(width))

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f'OSNet-AIN x{width:g} (Torchreid layer names; local {name}_imagenet.pth used when '
                       f'pretrained=True).')
    return register_model(name, factory)


osnet_ain_x1_0 = _factory('osnet_ain_x1_0', 1.0)
osnet_ain_x0_75 = _factory('osnet_ain_x0_75', 0.75)
osnet_ain_x0_5 = _factory('osnet_ain_x0_5', 0.5)
osnet_ain_x0_25 = _factory('osnet_ain_x0_25', 0.25)
