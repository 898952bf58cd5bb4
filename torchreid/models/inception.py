"""Inception-v4 and Inception-ResNet-v2 ReID models (Szegedy et al., "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI'17).

Written here from the paper's figures and the public layout of the ImageNet weights Torchreid uses (Cadene's
``inceptionv4-8e4777a0.pth`` and ``inceptionresnetv2-520b38e4.pth``, http://data.lip6.fr/cadene/pretrainedmodels/).
Every conv unit is conv (no bias) + BN (eps 1e-3, the TensorFlow value) + ReLU, named ``conv`` / ``bn``.

* **Inception-v4** (``inceptionv4``): one child ``features`` holding, in order, the stem (three 3x3 convs,
  ``Mixed_3a/4a/5a``), 4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B, 3 Inception-C: 1536-d
  features (``features.0.conv.weight`` ... ``features.21.branch3.1.bn.running_var``).
* **Inception-ResNet-v2** (``inceptionresnetv2``): children ``conv2d_1a`` ... ``conv2d_4a`` (stem),
  ``mixed_5b``, ``repeat`` (10 x Block35, residual scale 0.17), ``mixed_6a``, ``repeat_1`` (20 x Block17,
  0.10), ``mixed_7a``, ``repeat_2`` (9 x Block8, 0.20), ``block8`` (no ReLU), ``conv2d_7b``: 1536-d features.

Convs are unpadded where the paper marks them "V": the input must be at least 75x75 (the paper's networks are
trained at 299x299). ImageNet weights: torchvision has none; ``pretrained=True`` loads ``<name>_imagenet.pth``
from the local weights places (see :mod:`torchreid.models.weights`), otherwise warns.
"""
from typing import Any, Dict, List, Tuple, Union

import torch
import torch.nn as nn

from .head import ReIDModel
from .registry import register_model
from .backbones import build_stages_model

__all__ = ['ConvBNReLU', 'Concat', 'InceptionC', 'ResidualInception', 'inceptionv4_features', 'inceptionresnetv2_stages',
           'inceptionv4', 'inceptionresnetv2']

Size = Union[int, Tuple[int, int]]
#: (in, out, kernel, stride, padding) of one conv unit
ConvSpec = Tuple[int, int, Size, int, Size]

INCEPTION_CHANNELS = 1536


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN (eps 1e-3) -> ReLU, children ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Size, stride: int = 1,
                 padding: Size = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _chain(*specs: ConvSpec) -> nn.Module:
    """One conv unit, or a Sequential of them."""
    units = [ConvBNReLU(*spec) for spec in specs]
    return units[0] if len(units) == 1 else nn.Sequential(*units)


def _avg_then(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 average pool (stride 1, padding not counted) then a 1x1 conv unit: the pooling branch."""
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                         ConvBNReLU(in_channels, out_channels, 1))


class Concat(nn.Module):
    """Runs the named branches on the same input and concatenates their outputs along the channels."""

    def __init__(self, **branches: nn.Module):
        super().__init__()
        for branch_name, branch in branches.items():
            self.add_module(branch_name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


class InceptionC(nn.Module):
    """Inception-C (8x8 grid, 1536 channels): 1x1; 1x1 -> {1x3, 3x1}; 1x1 -> 3x1 -> 1x3 -> {1x3, 3x1}; pool."""

    def __init__(self, channels: int = INCEPTION_CHANNELS):
        super().__init__()
        self.branch0 = ConvBNReLU(channels, 256, 1)
        self.branch1_0 = ConvBNReLU(channels, 384, 1)
        self.branch1_1a = ConvBNReLU(384, 256, (1, 3), padding=(0, 1))
        self.branch1_1b = ConvBNReLU(384, 256, (3, 1), padding=(1, 0))
        self.branch2_0 = ConvBNReLU(channels, 384, 1)
        self.branch2_1 = ConvBNReLU(384, 448, (3, 1), padding=(1, 0))
        self.branch2_2 = ConvBNReLU(448, 512, (1, 3), padding=(0, 1))
        self.branch2_3a = ConvBNReLU(512, 256, (1, 3), padding=(0, 1))
        self.branch2_3b = ConvBNReLU(512, 256, (3, 1), padding=(1, 0))
        self.branch3 = _avg_then(channels, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat([self.branch0(x), self.branch1_1a(b1), self.branch1_1b(b1), self.branch2_3a(b2),
                          self.branch2_3b(b2), self.branch3(x)], 1)


def _mixed_3a() -> nn.Module:
    return Concat(maxpool=nn.MaxPool2d(3, stride=2), conv=ConvBNReLU(64, 96, 3, 2))


def _mixed_4a() -> nn.Module:
    return Concat(branch0=_chain((160, 64, 1, 1, 0), (64, 96, 3, 1, 0)),
                  branch1=_chain((160, 64, 1, 1, 0), (64, 64, (1, 7), 1, (0, 3)), (64, 64, (7, 1), 1, (3, 0)),
                                 (64, 96, 3, 1, 0)))


def _mixed_5a() -> nn.Module:
    return Concat(conv=ConvBNReLU(192, 192, 3, 2), maxpool=nn.MaxPool2d(3, stride=2))


def _inception_a() -> nn.Module:
    return Concat(branch0=ConvBNReLU(384, 96, 1),
                  branch1=_chain((384, 64, 1, 1, 0), (64, 96, 3, 1, 1)),
                  branch2=_chain((384, 64, 1, 1, 0), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1)),
                  branch3=_avg_then(384, 96))


def _reduction_a() -> nn.Module:
    return Concat(branch0=ConvBNReLU(384, 384, 3, 2),
                  branch1=_chain((384, 192, 1, 1, 0), (192, 224, 3, 1, 1), (224, 256, 3, 2, 0)),
                  branch2=nn.MaxPool2d(3, stride=2))


def _inception_b() -> nn.Module:
    return Concat(branch0=ConvBNReLU(1024, 384, 1),
                  branch1=_chain((1024, 192, 1, 1, 0), (192, 224, (1, 7), 1, (0, 3)), (224, 256, (7, 1), 1, (3, 0))),
                  branch2=_chain((1024, 192, 1, 1, 0), (192, 192, (7, 1), 1, (3, 0)), (192, 224, (1, 7), 1, (0, 3)),
                                 (224, 224, (7, 1), 1, (3, 0)), (224, 256, (1, 7), 1, (0, 3))),
                  branch3=_avg_then(1024, 128))


def _reduction_b() -> nn.Module:
    return Concat(branch0=_chain((1024, 192, 1, 1, 0), (192, 192, 3, 2, 0)),
                  branch1=_chain((1024, 256, 1, 1, 0), (256, 256, (1, 7), 1, (0, 3)), (256, 320, (7, 1), 1, (3, 0)),
                                 (320, 320, 3, 2, 0)),
                  branch2=nn.MaxPool2d(3, stride=2))


def inceptionv4_features() -> nn.Sequential:
    """Inception-v4's feature extractor (22 modules, 1536 output channels)."""
    stem = [ConvBNReLU(3, 32, 3, 2), ConvBNReLU(32, 32, 3), ConvBNReLU(32, 64, 3, padding=1),
            _mixed_3a(), _mixed_4a(), _mixed_5a()]
    return nn.Sequential(*stem, *[_inception_a() for _ in range(4)], _reduction_a(),
                         *[_inception_b() for _ in range(7)], _reduction_b(), *[InceptionC() for _ in range(3)])


class ResidualInception(nn.Module):
    """Inception-ResNet block: concatenated branches -> 1x1 conv ``conv2d`` (with bias) back to the input
    width, scaled by ``scale`` and added to the input, then ReLU (unless ``relu=False``)."""

    def __init__(self, channels: int, branches: Dict[str, nn.Module], branch_channels: int, scale: float,
                 relu: bool = True):
        super().__init__()
        self.branch_names = list(branches)
        for branch_name, branch in branches.items():
            self.add_module(branch_name, branch)
        self.conv2d = nn.Conv2d(branch_channels, channels, 1)
        self.relu = nn.ReLU(inplace=True) if relu else None
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2d(torch.cat([getattr(self, n)(x) for n in self.branch_names], 1)) * self.scale + x
        return self.relu(out) if self.relu is not None else out


def _block35(scale: float = 0.17) -> nn.Module:
    return ResidualInception(320, dict(branch0=ConvBNReLU(320, 32, 1),
                                         branch1=_chain((320, 32, 1, 1, 0), (32, 32, 3, 1, 1)),
                                         branch2=_chain((320, 32, 1, 1, 0), (32, 48, 3, 1, 1), (48, 64, 3, 1, 1))),
                             128, scale)


def _block17(scale: float = 0.10) -> nn.Module:
    return ResidualInception(1088, dict(branch0=ConvBNReLU(1088, 192, 1),
                                          branch1=_chain((1088, 128, 1, 1, 0), (128, 160, (1, 7), 1, (0, 3)),
                                                         (160, 192, (7, 1), 1, (3, 0)))),
                             384, scale)


def _block8(scale: float = 0.20, relu: bool = True) -> nn.Module:
    return ResidualInception(2080, dict(branch0=ConvBNReLU(2080, 192, 1),
                                          branch1=_chain((2080, 192, 1, 1, 0), (192, 224, (1, 3), 1, (0, 1)),
                                                         (224, 256, (3, 1), 1, (1, 0)))),
                             448, scale, relu=relu)


def inceptionresnetv2_stages() -> Tuple[List[Tuple[str, nn.Module]], int]:
    """Inception-ResNet-v2's feature layers under the released weights' names, and their channels (1536)."""
    stages: List[Tuple[str, nn.Module]] = [
        ('conv2d_1a', ConvBNReLU(3, 32, 3, 2)),
        ('conv2d_2a', ConvBNReLU(32, 32, 3)),
        ('conv2d_2b', ConvBNReLU(32, 64, 3, padding=1)),
        ('maxpool_3a', nn.MaxPool2d(3, stride=2)),
        ('conv2d_3b', ConvBNReLU(64, 80, 1)),
        ('conv2d_4a', ConvBNReLU(80, 192, 3)),
        ('maxpool_5a', nn.MaxPool2d(3, stride=2)),
        ('mixed_5b', Concat(branch0=ConvBNReLU(192, 96, 1),
                            branch1=_chain((192, 48, 1, 1, 0), (48, 64, 5, 1, 2)),
                            branch2=_chain((192, 64, 1, 1, 0), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1)),
                            branch3=_avg_then(192, 64))),
        ('repeat', nn.Sequential(*[_block35() for _ in range(10)])),
        ('mixed_6a', Concat(branch0=ConvBNReLU(320, 384, 3, 2),
                            branch1=_chain((320, 256, 1, 1, 0), (256, 256, 3, 1, 1), (256, 384, 3, 2, 0)),
                            branch2=nn.MaxPool2d(3, stride=2))),
        ('repeat_1', nn.Sequential(*[_block17() for _ in range(20)])),
        ('mixed_7a', Concat(branch0=_chain((1088, 256, 1, 1, 0), (256, 384, 3, 2, 0)),
                            branch1=_chain((1088, 256, 1, 1, 0), (256, 288, 3, 2, 0)),
                            branch2=_chain((1088, 256, 1, 1, 0), (256, 288, 3, 1, 1), (288, 320, 3, 2, 0)),
                            branch3=nn.MaxPool2d(3, stride=2))),
        ('repeat_2', nn.Sequential(*[_block8() for _ in range(9)])),
        ('block8', _block8(scale=1.0, relu=False)),
        ('conv2d_7b', ConvBNReLU(2080, INCEPTION_CHANNELS, 1)),
    ]
    return stages, INCEPTION_CHANNELS


_CADENE = '(http://data.lip6.fr/cadene/pretrainedmodels/)'


@register_model('inceptionv4')
def inceptionv4(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
    """Inception-v4 ReID model (1536-d features; input at least 75x75)."""
    return build_stages_model('inceptionv4', num_classes, loss, pretrained, kwargs,
                              lambda extras: ([('features', inceptionv4_features())], INCEPTION_CHANNELS),
                              weights_source=f"Cadene's inceptionv4-8e4777a0.pth {_CADENE}")


@register_model('inceptionresnetv2')
def inceptionresnetv2(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                      **kwargs: Any) -> ReIDModel:
    """Inception-ResNet-v2 ReID model (1536-d features; input at least 75x75)."""
    return build_stages_model('inceptionresnetv2', num_classes, loss, pretrained, kwargs,
                              lambda extras: inceptionresnetv2_stages(),
                              weights_source=f"Cadene's inceptionresnetv2-520b38e4.pth {_CADENE}")
