"""DenseNet ReID models on torchvision's implementation (Huang et al. CVPR'17).

Features: ``features`` (ending with the final BN ``norm5``) followed by the ReLU that torchvision applies in
its forward, pooled: 1024 channels (121), 1664 (169), 1920 (201), 2208 (161). ``densenet121_fc512`` is
Torchreid's variant: DenseNet-121 + fc 512 (Linear + BN + ReLU), 512-d features, DenseNet-121's ImageNet
weights.

torchvision's layer names are Torchreid's (``features.denseblock1.denselayer1.norm1.weight``,
``features.transition1.conv.weight``, ``features.norm5.weight``), so Torchreid's weight files load by name.
"""
from typing import Any, Callable, List, Mapping, Optional, Tuple, Type

import torch.nn as nn
import torchvision.models as tvm

from .backbones import torchvision_model_factory
from .head import ReIDModel
from .registry import register_model

__all__ = ['densenet121', 'densenet169', 'densenet201', 'densenet161', 'densenet121_fc512']


def _stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    # torchvision applies this ReLU in forward(), not as a module; it has no parameters, so its name is free.
    return [('features', net.features), ('features_relu', nn.ReLU(inplace=True))]


def _make(name: str, constructor: Callable[..., nn.Module], weights_enum: Type[tvm.WeightsEnum],
          head_defaults: Optional[Mapping[str, Any]] = None, doc: str = '') -> Callable[..., ReIDModel]:
    return register_model(name, torchvision_model_factory(
        name, constructor, weights_enum, stages=_stages, feature_channels=lambda net: net.classifier.in_features,
        head_defaults=head_defaults, imagenet_head_prefixes=('classifier.',), doc=doc))


densenet121 = _make('densenet121', tvm.densenet121, tvm.DenseNet121_Weights,
                    doc='DenseNet-121 ReID model (1024-d features; torchvision ImageNet weights).')
densenet169 = _make('densenet169', tvm.densenet169, tvm.DenseNet169_Weights,
                    doc='DenseNet-169 ReID model (1664-d features; torchvision ImageNet weights).')
densenet201 = _make('densenet201', tvm.densenet201, tvm.DenseNet201_Weights,
                    doc='DenseNet-201 ReID model (1920-d features; torchvision ImageNet weights).')
densenet161 = _make('densenet161', tvm.densenet161, tvm.DenseNet161_Weights,
                    doc='DenseNet-161 ReID model (2208-d features; torchvision ImageNet weights).')
# The ImageNet weights are densenet121's; the fc 512 layer is new.
densenet121_fc512 = _make('densenet121_fc512', tvm.densenet121, tvm.DenseNet121_Weights,
                          head_defaults={'fc_dims': [512]},
                          doc='DenseNet-121 + fc 512 ReID model (Torchreid\'s variant; 512-d features).')
