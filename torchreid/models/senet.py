"""SE-ResNet and SE-ResNeXt ReID models (Hu et al., "Squeeze-and-Excitation Networks", CVPR'18).

Written here from the paper and the public layout of the ImageNet weights Torchreid uses (Cadene's
``pretrained-models`` release, http://data.lip6.fr/cadene/pretrainedmodels/):

* ``layer0``: 7x7 conv stride 2 (``conv1``), BN (``bn1``), ReLU, 3x3 max pool stride 2 with ``ceil_mode``
  (the Caffe models' rounding, kept so the released weights see the feature sizes they were trained on);
* ``layer1`` ... ``layer4``: bottlenecks (``conv1/bn1``, ``conv2/bn2``, ``conv3/bn3``, a squeeze-and-excitation
  gate ``se_module`` with 1x1-conv ``fc1``/``fc2``, a projection shortcut ``downsample.0/1`` where the shape
  changes). SE-ResNet strides in the first 1x1 conv (the Caffe layout); SE-ResNeXt in the grouped 3x3 conv
  (32 groups, width ``floor(planes * 4 / 64) * 32``).
* the head is the shared ReID head (:class:`~torchreid.models.head.ReIDModel`); ``se_resnet50_fc512`` is
  Torchreid's variant with last stride 1 and fc 512.

Every model takes ``last_stride`` (1 or 2): the stride of layer4's first block.

ImageNet weights: torchvision has none. ``pretrained=True`` loads ``<name>_imagenet.pth`` from the local
weights places (see :mod:`torchreid.models.weights`); put Cadene's file there (e.g. ``se_resnet50-ce0d4300.pth``
saved as ``se_resnet50_imagenet.pth``; its ``last_linear`` ImageNet classifier is skipped). Without it the
model warns and keeps its random initialisation.

:func:`~torchreid.models.backbones.build_stages_model` (shared by the hand-written models of Torchreid's zoo:
SENet, Inception, Xception, NASNet, ShuffleNet) composes stages with the ReID head and loads the local ImageNet
file.
"""
import math
from collections import OrderedDict
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torchvision.ops import SqueezeExcitation

from .backbones import Stages, build_stages_model
from .head import ReIDModel
from .registry import register_model

__all__ = ['SEBottleneck', 'senet_stages', 'se_resnet50', 'se_resnet50_fc512',
           'se_resnet101', 'se_resnext50_32x4d', 'se_resnext101_32x4d']

class SEBottleneck(nn.Module):
    """1x1 -> 3x3 (grouped) -> 1x1 bottleneck, a squeeze-and-excitation gate on its output, residual sum, ReLU.

    Args:
        in_channels / planes: the block outputs ``planes * 4`` channels.
        width: channels of the 1x1 and 3x3 convs inside.
        groups: groups of the 3x3 conv.
        stride: applied by ``conv1`` when ``stride_in_1x1`` (SE-ResNet), else by ``conv2`` (SE-ResNeXt).
        reduction: the gate squeezes ``planes * 4`` channels to ``planes * 4 // reduction``.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, width: int, groups: int, stride: int, stride_in_1x1: bool,
                 reduction: int = 16):
        super().__init__()
        out_channels = planes * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride_3x3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # torchvision's SE gate: pooled -> 1x1 conv fc1 -> ReLU -> 1x1 conv fc2 -> sigmoid -> scale
        self.se_module = SqueezeExcitation(out_channels, out_channels // reduction)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.se_module(self.bn3(self.conv3(out)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def senet_stages(depths: Sequence[int], groups: int, base_width: Optional[int], last_stride: int = 2,
                 reduction: int = 16) -> Tuple[Stages, int]:
    """``layer0`` ... ``layer4`` of an SE-ResNet (``base_width=None``) or SE-ResNeXt, and their out channels.

    ``depths``: bottlenecks per layer, e.g. ``(3, 4, 6, 3)`` for 50 layers.
    """
    if last_stride not in (1, 2):
        raise ValueError(f'last_stride must be 1 or 2, got {last_stride!r}')
    if len(depths) != 4 or any(d < 1 for d in depths):
        raise ValueError(f'depths must be 4 positive block counts, got {depths!r}')
    stem = 64
    stages: Stages = [('layer0', nn.Sequential(OrderedDict([
        ('conv1', nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)),
        ('bn1', nn.BatchNorm2d(stem)),
        ('relu1', nn.ReLU(inplace=True)),
        ('pool', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
    ])))]
    in_channels = stem
    for index, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
        stride = (1, 2, 2, last_stride)[index]
        width = planes if base_width is None else int(math.floor(planes * base_width / 64)) * groups
        blocks = []
        for b in range(depth):
            blocks.append(SEBottleneck(in_channels, planes, width, groups, stride if b == 0 else 1,
                                       stride_in_1x1=base_width is None, reduction=reduction))
            in_channels = planes * SEBottleneck.expansion
        stages.append((f'layer{index + 1}', nn.Sequential(*blocks)))
    return stages, in_channels


def _make(name: str, depths: Sequence[int], resnext: bool, weights_file: str, last_stride: int = 2,
          head_defaults: Optional[Mapping[str, Any]] = None, doc: str = '') -> Callable[..., ReIDModel]:
    groups, base_width = (32, 4) if resnext else (1, None)

    def factory(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
        return build_stages_model(
            name, num_classes, loss, pretrained, kwargs,
            lambda extras: senet_stages(depths, groups, base_width, extras['last_stride']),
            weights_source=f'Cadene\'s {weights_file} (http://data.lip6.fr/cadene/pretrainedmodels/)',
            head_defaults=head_defaults, extra={'last_stride': last_stride})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_model(name, factory)


se_resnet50 = _make('se_resnet50', (3, 4, 6, 3), False, 'se_resnet50-ce0d4300.pth',
                    doc='SE-ResNet-50 ReID model (2048-d features).')
# The ImageNet weights are se_resnet50's; the fc 512 layer is new.
se_resnet50_fc512 = _make('se_resnet50_fc512', (3, 4, 6, 3), False, 'se_resnet50-ce0d4300.pth', last_stride=1,
                          head_defaults={'fc_dims': [512]},
                          doc='SE-ResNet-50 + fc 512, last stride 1 (Torchreid\'s variant; 512-d features).')
se_resnet101 = _make('se_resnet101', (3, 4, 23, 3), False, 'se_resnet101-7e38fcc6.pth',
                     doc='SE-ResNet-101 ReID model (2048-d features).')
se_resnext50_32x4d = _make('se_resnext50_32x4d', (3, 4, 6, 3), True, 'se_resnext50_32x4d-a260b3a4.pth',
                           doc='SE-ResNeXt-50 (32x4d) ReID model (2048-d features).')
se_resnext101_32x4d = _make('se_resnext101_32x4d', (3, 4, 23, 3), True, 'se_resnext101_32x4d-3b2fe3d8.pth',
                            doc='SE-ResNeXt-101 (32x4d) ReID model (2048-d features).')
