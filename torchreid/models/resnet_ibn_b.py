"""ResNet-50 with IBN-b (Pan et al., "Two at Once: Enhancing Learning and Generalization Capacities via
IBN-Net", ECCV'18), composed from torchvision's ResNet-50 under Torchreid's layer names.

IBN-b puts InstanceNorm where it removes appearance (style) variation without touching the residual branches:
the stem's normalisation (``bn1``) is an InstanceNorm (affine), and the last bottleneck of layer1 and of
layer2 normalises its output with an InstanceNorm (``IN``, after the residual sum, before the ReLU).

With ``pretrained=True`` torchvision's ResNet-50 ImageNet weights are used (as Torchreid does): the stem BN's
scale and shift become the stem InstanceNorm's; the two new ``IN`` layers start at the identity affine map.
A local ``resnet50_ibn_b_imagenet.pth`` (e.g. the IBN-Net release) wins over them.
"""
from typing import Any, Optional

import torch
import torch.nn as nn
import torchvision.models as tvm
from torchvision.models.resnet import Bottleneck

from .head import ReIDModel
from .registry import register_model
from .resnet import build_resnet

__all__ = ['BottleneckIN', 'convert_to_ibn_b', 'resnet50_ibn_b']


class BottleneckIN(Bottleneck):
    """torchvision's Bottleneck with an InstanceNorm ``IN`` on the output, after the residual sum.

    Made from an existing block by :func:`convert_to_ibn_b` (its weights are kept); ``IN`` may be None, in
    which case it is exactly torchvision's block.
    """

    IN: Optional[nn.InstanceNorm2d]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out)) + identity
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


def convert_to_ibn_b(net: nn.Module) -> nn.Module:
    """Turn a torchvision ResNet (Bottleneck blocks) into IBN-b in place and return it."""
    stem = nn.InstanceNorm2d(net.bn1.num_features, affine=True)
    with torch.no_grad():  # keep the (possibly pretrained) stem BN's affine parameters
        stem.weight.copy_(net.bn1.weight)
        stem.bias.copy_(net.bn1.bias)
    net.bn1 = stem
    for layer_name in ('layer1', 'layer2'):
        block = getattr(net, layer_name)[-1]
        if not isinstance(block, Bottleneck):
            raise TypeError(f'convert_to_ibn_b: {layer_name}[-1] is a {type(block).__name__}, not a Bottleneck')
        block.__class__ = BottleneckIN  # same parameters, forward with the extra normalisation
        block.IN = nn.InstanceNorm2d(block.bn3.num_features, affine=True)
    return net


@register_model('resnet50_ibn_b')
def resnet50_ibn_b(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    """ResNet-50 IBN-b (2048-d features); accepts the shared head's options and ``last_stride``."""
    return build_resnet('resnet50_ibn_b', tvm.resnet50, tvm.ResNet50_Weights, num_classes, loss, pretrained, kwargs,
                        modify=lambda net, extras: convert_to_ibn_b(net))
