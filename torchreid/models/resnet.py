"""ResNet / ResNeXt ReID models on torchvision's implementations (He et al. CVPR'16; Xie et al. CVPR'17).

torchvision's layer names are Torchreid's (``conv1``, ``layer1.0.downsample.0``, ...), so Torchreid's weight
files for these names (resnext101_32x8d included) load by name.

All take ``last_stride`` (1 or 2, default 2): the stride of layer4's first block. ``resnet50_fc512`` is
Torchreid's variant: last stride 1, global average pooling, fc 512 + BN + ReLU (features are 512-d).
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type

import torch.nn as nn
import torchvision.models as tvm

from .backbones import build_torchvision_model, set_last_stride
from .head import ReIDModel
from .registry import register_model

__all__ = ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d', 'resnext101_32x8d',
           'resnet50_fc512', 'resnet_stages', 'build_resnet']

RESNET_STAGE_NAMES = ('conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4')


def resnet_stages(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    """torchvision ResNet's feature layers, under their torchvision names."""
    return [(n, getattr(net, n)) for n in RESNET_STAGE_NAMES]


def build_resnet(name: str, constructor: Callable[..., nn.Module], weights_enum: Optional[Type[tvm.WeightsEnum]],
                 num_classes: int, loss: str, pretrained: bool, kwargs: Mapping[str, Any], last_stride: int = 2,
                 head_defaults: Optional[Mapping[str, Any]] = None,
                 modify: Optional[Callable[[nn.Module, Dict[str, Any]], Any]] = None) -> ReIDModel:
    """A torchvision ResNet-family network composed with the ReID head.

    ``modify(net, extras)`` runs after the last-stride change (used by the IBN variant).
    """

    def _modify(net: nn.Module, extras: Dict[str, Any]) -> None:
        set_last_stride(net, extras['last_stride'])
        if modify is not None:
            modify(net, extras)

    return build_torchvision_model(
        name, num_classes, loss, pretrained, kwargs, constructor=constructor, weights_enum=weights_enum,
        stages=resnet_stages, feature_channels=lambda net: net.fc.in_features, head_defaults=head_defaults,
        extra={'last_stride': last_stride}, modify=_modify)


@register_model('resnet18')
def resnet18(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet18', tvm.resnet18, tvm.ResNet18_Weights, num_classes, loss, pretrained, kwargs)


@register_model('resnet34')
def resnet34(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet34', tvm.resnet34, tvm.ResNet34_Weights, num_classes, loss, pretrained, kwargs)


@register_model('resnet50')
def resnet50(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet50', tvm.resnet50, tvm.ResNet50_Weights, num_classes, loss, pretrained, kwargs)


@register_model('resnet101')
def resnet101(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet101', tvm.resnet101, tvm.ResNet101_Weights, num_classes, loss, pretrained, kwargs)


@register_model('resnet152')
def resnet152(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_resnet('resnet152', tvm.resnet152, tvm.ResNet152_Weights, num_classes, loss, pretrained, kwargs)


@register_model('resnext50_32x4d')
def resnext50_32x4d(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                    **kwargs: Any) -> ReIDModel:
    return build_resnet('resnext50_32x4d', tvm.resnext50_32x4d, tvm.ResNeXt50_32X4D_Weights, num_classes, loss,
                        pretrained, kwargs)


@register_model('resnext101_32x8d')
def resnext101_32x8d(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> ReIDModel:
    return build_resnet('resnext101_32x8d', tvm.resnext101_32x8d, tvm.ResNeXt101_32X8D_Weights, num_classes, loss,
                        pretrained, kwargs)


@register_model('resnet50_fc512')
def resnet50_fc512(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    # The ImageNet weights are resnet50's; the fc 512 layer is new.
    return build_resnet('resnet50_fc512', tvm.resnet50, tvm.ResNet50_Weights, num_classes, loss, pretrained,
                        kwargs, last_stride=1, head_defaults={'fc_dims': [512]})
