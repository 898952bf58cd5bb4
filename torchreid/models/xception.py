"""Xception ReID model (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR'17).

Written here from the paper and the public layout of the ImageNet weights Torchreid uses (Cadene's
``xception-43020ad28.pth``, http://data.lip6.fr/cadene/pretrainedmodels/):

* entry flow: 3x3 conv stride 2 (``conv1``/``bn1``), 3x3 conv (``conv2``/``bn2``), both unpadded; ``block1`` ...
  ``block3`` (128, 256, 728 channels), each two separable convs and a 3x3 max pool stride 2, with a strided
  1x1 projection shortcut (``skip``/``skipbn``);
* middle flow: ``block4`` ... ``block11``, three ReLU-separable conv-BN units each, identity shortcut;
* exit flow: ``block12`` (728 -> 1024, pooled), then separable convs ``conv3`` (1536) and ``conv4`` (2048),
  each followed by BN and ReLU: 2048-d features.

A separable conv is a depthwise 3x3 (``conv1``) followed by a pointwise 1x1 (``pointwise``). Inside a block the
units sit in ``rep`` with their ReLUs, so the parameter indices are those of the released weights
(``block1.rep.0.conv1.weight``, ``block2.rep.1.pointwise.weight``, ``block2.rep.2.running_mean``, ...).

ImageNet weights: torchvision has none; ``pretrained=True`` loads ``xception_imagenet.pth`` from the local
weights places (see :mod:`torchreid.models.weights`), otherwise warns. The input should be at least 64x32.
"""
from typing import Any, List, Tuple

import torch
import torch.nn as nn

from .head import ReIDModel
from .registry import register_model
from .backbones import build_stages_model

__all__ = ['SeparableConv2d', 'XceptionBlock', 'xception_stages', 'xception']

XCEPTION_CHANNELS = 2048


class SeparableConv2d(nn.Module):
    """Depthwise ``kernel_size`` conv (``conv1``) then pointwise 1x1 conv (``pointwise``), no biases."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, padding=padding, groups=in_channels,
                               bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """``units`` x (ReLU, separable 3x3, BN), an optional stride-2 max pool, and a residual shortcut.

    Args:
        expand_first: the first unit changes the channels (else the last one does).
        relu_first: start with a ReLU (False for ``block1``, which follows the stem's ReLU).
        stride: 2 appends a 3x3 max pool; the shortcut is then a strided 1x1 conv + BN (also when the channels
            change).
    """

    def __init__(self, in_channels: int, out_channels: int, units: int, stride: int = 1, relu_first: bool = True,
                 expand_first: bool = True):
        super().__init__()
        if units < 1:
            raise ValueError(f'XceptionBlock: units must be >= 1, got {units}')
        if out_channels != in_channels or stride != 1:
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = None
        widths = [in_channels] + ([out_channels] * units if expand_first else [in_channels] * (units - 1)
                                  + [out_channels])
        layers: List[nn.Module] = []
        for u in range(units):
            # The first ReLU must not work in place: the block's input is also the shortcut's input.
            layers += [nn.ReLU(inplace=u > 0), SeparableConv2d(widths[u], widths[u + 1]),
                       nn.BatchNorm2d(widths[u + 1])]
        if not relu_first:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut


def xception_stages() -> Tuple[List[Tuple[str, nn.Module]], int]:
    """Xception's feature layers under the released weights' names, and their output channels (2048)."""
    stages: List[Tuple[str, nn.Module]] = [
        ('conv1', nn.Conv2d(3, 32, 3, stride=2, bias=False)), ('bn1', nn.BatchNorm2d(32)),
        ('relu1', nn.ReLU(inplace=True)),
        ('conv2', nn.Conv2d(32, 64, 3, bias=False)), ('bn2', nn.BatchNorm2d(64)), ('relu2', nn.ReLU(inplace=True)),
        ('block1', XceptionBlock(64, 128, 2, stride=2, relu_first=False)),
        ('block2', XceptionBlock(128, 256, 2, stride=2)),
        ('block3', XceptionBlock(256, 728, 2, stride=2)),
    ]
    stages += [(f'block{i}', XceptionBlock(728, 728, 3)) for i in range(4, 12)]
    stages += [
        ('block12', XceptionBlock(728, 1024, 2, stride=2, expand_first=False)),
        ('conv3', SeparableConv2d(1024, 1536)), ('bn3', nn.BatchNorm2d(1536)), ('relu3', nn.ReLU(inplace=True)),
        ('conv4', SeparableConv2d(1536, XCEPTION_CHANNELS)), ('bn4', nn.BatchNorm2d(XCEPTION_CHANNELS)),
        ('relu4', nn.ReLU(inplace=True)),
    ]
    return stages, XCEPTION_CHANNELS


@register_model('xception')
def xception(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    """Xception ReID model (2048-d features)."""
    # Cadene's file names its ImageNet classifier ``fc`` (``last_linear`` once loaded): neither is loaded. Only
    # the exact keys: a Torchreid fc layer (``fc_dims``) is ``fc.0.*`` and stays loadable.
    return build_stages_model('xception', num_classes, loss, pretrained, kwargs, lambda extras: xception_stages(),
                              weights_source="Cadene's xception-43020ad28.pth "
                                             "(http://data.lip6.fr/cadene/pretrainedmodels/)",
                              imagenet_head_prefixes=('fc.weight', 'fc.bias', 'last_linear.', 'classifier.'))
