"""MobileNetV2 ReID models on torchvision's implementation (Sandler et al. CVPR'18).

Features: the last 1x1 conv's output (1280 channels at width 1.0, 1792 at width 1.4), pooled.
torchvision has ImageNet weights for width 1.0 only; ``mobilenetv2_x1_4`` needs a local file (see
:mod:`torchreid.models.weights`).
"""
from typing import Any, List, Tuple

import torch.nn as nn
import torchvision.models as tvm

from .backbones import build_torchvision_model
from .head import ReIDModel
from .registry import register_model

__all__ = ['mobilenetv2_x1_0', 'mobilenetv2_x1_4']


def _stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    return [('features', net.features)]


def _channels(net: nn.Module) -> int:
    return net.last_channel


@register_model('mobilenetv2_x1_0')
def mobilenetv2_x1_0(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> ReIDModel:
    return build_torchvision_model('mobilenetv2_x1_0', num_classes, loss, pretrained, kwargs,
                                   constructor=tvm.mobilenet_v2, weights_enum=tvm.MobileNet_V2_Weights,
                                   stages=_stages, feature_channels=_channels)


@register_model('mobilenetv2_x1_4')
def mobilenetv2_x1_4(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> ReIDModel:
    return build_torchvision_model('mobilenetv2_x1_4', num_classes, loss, pretrained, kwargs,
                                   constructor=tvm.mobilenet_v2, weights_enum=None, stages=_stages,
                                   feature_channels=_channels, ctor_kwargs={'width_mult': 1.4})
