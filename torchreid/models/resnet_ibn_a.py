"""ResNet-50 with IBN-a blocks (Pan et al., "Two at Once: Enhancing Learning and Generalization Capacities via
IBN-Net", ECCV'18), composed from torchvision's ResNet-50.

IBN-a: in every bottleneck of layer1-layer3 the first normalisation (after the 1x1 reduction conv) becomes
an :class:`IBN` layer -- InstanceNorm on half of the channels (appearance/style invariance), BatchNorm on the
other half (keeps content discrimination). layer4 and the stem are unchanged.

torchvision has no IBN weights: ``pretrained=True`` looks for ``resnet50_ibn_a_imagenet.pth`` (see
:mod:`torchreid.models.weights`). The IBN submodules are named ``IN`` and ``BN`` as in the IBN-Net release, so
its ImageNet checkpoint loads by name.
"""
from typing import Any, Sequence

import torch
import torch.nn as nn
import torchvision.models as tvm

from .head import ReIDModel
from .registry import register_model
from .resnet import build_resnet

__all__ = ['IBN', 'resnet50_ibn_a', 'convert_to_ibn_a']


class IBN(nn.Module):
    """Instance-Batch Normalisation: the first ``int(planes * ratio)`` channels InstanceNorm, the rest BN."""

    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise ValueError(f'IBN: ratio must be in (0, 1), got {ratio}')
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.size(1) - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


def convert_to_ibn_a(net: nn.Module, layers: Sequence[str] = ('layer1', 'layer2', 'layer3'),
                     ratio: float = 0.5) -> nn.Module:
    """Replace ``bn1`` of every bottleneck in ``layers`` of a torchvision ResNet by an :class:`IBN` layer."""
    for layer_name in layers:
        for block in getattr(net, layer_name):
            block.bn1 = IBN(block.bn1.num_features, ratio)
    return net


@register_model('resnet50_ibn_a')
def resnet50_ibn_a(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet50_ibn_a', tvm.resnet50, None, num_classes, loss, pretrained, kwargs,
                        modify=lambda net, extras: convert_to_ibn_a(net))
