"""ShuffleNetV2 ReID models on torchvision's implementation (Ma et al. ECCV'18).

Features: the output of ``conv5`` (1024 channels; 2048 for x2.0), pooled. torchvision has ImageNet weights
for all four widths.
"""
from typing import Any, Callable, List, Tuple, Type

import torch.nn as nn
import torchvision.models as tvm

from .backbones import build_torchvision_model
from .head import ReIDModel
from .registry import register_model

__all__ = ['shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0']

_STAGE_NAMES = ('conv1', 'maxpool', 'stage2', 'stage3', 'stage4', 'conv5')


def _stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    return [(n, getattr(net, n)) for n in _STAGE_NAMES]


def _channels(net: nn.Module) -> int:
    return net.fc.in_features


def _make(name: str, constructor: Callable[..., nn.Module], weights_enum: Type[tvm.WeightsEnum]
          ) -> Callable[..., ReIDModel]:
    def factory(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
        return build_torchvision_model(name, num_classes, loss, pretrained, kwargs, constructor=constructor,
                                       weights_enum=weights_enum, stages=_stages, feature_channels=_channels)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f'ShuffleNetV2 {name[-4:]} ReID model (torchvision backbone, ImageNet weights available).'
    return register_model(name, factory)


shufflenet_v2_x0_5 = _make('shufflenet_v2_x0_5', tvm.shufflenet_v2_x0_5, tvm.ShuffleNet_V2_X0_5_Weights)
shufflenet_v2_x1_0 = _make('shufflenet_v2_x1_0', tvm.shufflenet_v2_x1_0, tvm.ShuffleNet_V2_X1_0_Weights)
shufflenet_v2_x1_5 = _make('shufflenet_v2_x1_5', tvm.shufflenet_v2_x1_5, tvm.ShuffleNet_V2_X1_5_Weights)
shufflenet_v2_x2_0 = _make('shufflenet_v2_x2_0', tvm.shufflenet_v2_x2_0, tvm.ShuffleNet_V2_X2_0_Weights)
