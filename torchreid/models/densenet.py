"""DenseNet-121 ReID model on torchvision's implementation (Huang et al. CVPR'17).

Features: ``features`` (ending with the final BN) followed by the ReLU that torchvision applies in its
forward, pooled: 1024 channels.
"""
from typing import Any, List, Tuple

import torch.nn as nn
import torchvision.models as tvm

from .backbones import build_torchvision_model
from .head import ReIDModel
from .registry import register_model

__all__ = ['densenet121']


def _stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    # torchvision applies this ReLU in forward(), not as a module; it has no parameters, so its name is free.
    return [('features', net.features), ('features_relu', nn.ReLU(inplace=True))]


@register_model('densenet121')
def densenet121(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_torchvision_model('densenet121', num_classes, loss, pretrained, kwargs,
                                   constructor=tvm.densenet121, weights_enum=tvm.DenseNet121_Weights,
                                   stages=_stages, feature_channels=lambda net: net.classifier.in_features,
                                   imagenet_head_prefixes=('classifier.',))
