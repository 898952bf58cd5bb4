"""SqueezeNet ReID models on torchvision's implementation (Iandola et al., arXiv:1602.07360).

Features: the output of ``features`` (the last Fire module, 512 channels), pooled. ``squeezenet1_0_fc512`` is
Torchreid's variant: SqueezeNet 1.0 + fc 512 (Linear + BN + ReLU), with SqueezeNet 1.0's ImageNet weights.
torchvision's layer names are Torchreid's (``features.0.weight``, ``features.3.squeeze.weight``,
``features.3.expand3x3.bias``, ...), so Torchreid's weight files load by name.
"""
from typing import Any, Callable, List, Mapping, Optional, Tuple, Type

import torch.nn as nn
import torchvision.models as tvm

from .backbones import torchvision_model_factory
from .head import ReIDModel
from .registry import register_model

__all__ = ['squeezenet1_0', 'squeezenet1_1', 'squeezenet1_0_fc512']

#: channels of the last Fire module (both versions)
SQUEEZENET_CHANNELS = 512


def _stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    return [('features', net.features)]


def _make(name: str, constructor: Callable[..., nn.Module], weights_enum: Type[tvm.WeightsEnum],
          head_defaults: Optional[Mapping[str, Any]] = None, doc: str = '') -> Callable[..., ReIDModel]:
    return register_model(name, torchvision_model_factory(
        name, constructor, weights_enum, stages=_stages, feature_channels=lambda net: SQUEEZENET_CHANNELS,
        head_defaults=head_defaults, imagenet_head_prefixes=('classifier.',), doc=doc))


squeezenet1_0 = _make('squeezenet1_0', tvm.squeezenet1_0, tvm.SqueezeNet1_0_Weights,
                      doc='SqueezeNet 1.0 ReID model (512-d features; torchvision ImageNet weights).')
squeezenet1_1 = _make('squeezenet1_1', tvm.squeezenet1_1, tvm.SqueezeNet1_1_Weights,
                      doc='SqueezeNet 1.1 ReID model (512-d features; torchvision ImageNet weights).')
# The ImageNet weights are squeezenet1_0's; the fc 512 layer is new.
squeezenet1_0_fc512 = _make('squeezenet1_0_fc512', tvm.squeezenet1_0, tvm.SqueezeNet1_0_Weights,
                            head_defaults={'fc_dims': [512]},
                            doc='SqueezeNet 1.0 + fc 512 ReID model (Torchreid\'s variant; 512-d features).')
