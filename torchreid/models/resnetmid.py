"""ResNet-50 with mid-level features (Yu et al., "The Devil is in the Middle: Exploiting Mid-level
Representations for Cross-Domain Instance Matching", arXiv:1711.08106), Torchreid's ``resnet50mid``.

The three blocks of layer4 are read one by one: the pooled outputs of the first two (2048 + 2048) are fused by
``fc_fusion`` (Linear 4096 -> 1024 + BN + ReLU) and concatenated with the pooled output of the last block, a
3072-d feature. The backbone is torchvision's ResNet-50 (Torchreid's key names are torchvision's), so
torchvision's ImageNet weights load into it.

This module also holds :func:`resnet50_backbone`, the torchvision ResNet-50 with ImageNet weights and a chosen
last stride, shared with :mod:`torchreid.models.pcb`.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torchvision.models as tvm

from .backbones import set_last_stride
from .head import NEW_LAYER_NAMES, HeadOptions, parse_model_kwargs
from .registry import SUPPORTED_LOSSES, register_model
from .resnet import RESNET_STAGE_NAMES
from .weights import (PretrainOptions, find_local_imagenet_file, init_classifier, init_params,
                      load_local_imagenet_weights, torchvision_weights_or_warn)

__all__ = ['ResNetMid', 'resnet50mid', 'resnet50_backbone', 'load_local_weights_if_any', 'check_loss',
           'reject_shared_head_options']


def check_loss(owner: str, loss: str) -> None:
    """Refuse a loss the model's forward does not serve (``ValueError`` naming the model)."""
    if loss not in SUPPORTED_LOSSES:
        raise ValueError(f'{owner}: unsupported loss {loss!r}; expected one of {SUPPORTED_LOSSES}')


def resnet50_backbone(name: str, opts: PretrainOptions, last_stride: int = 2) -> Tuple[nn.Module, Optional[str]]:
    """torchvision's ResNet-50 (ImageNet weights when ``opts.pretrained`` and no local file is found) with
    layer4's stride set to ``last_stride``; returns ``(net, local_file_or_None)``.

    A local ``<name>_imagenet.pth`` / ``pretrained_path`` is returned for the caller to load into the finished
    model (it may hold the model's own layers too); torchvision's weights are used otherwise.
    """
    local = find_local_imagenet_file(name, opts) if opts.pretrained else None
    if opts.pretrained and local is None:
        net = torchvision_weights_or_warn(name, tvm.resnet50, tvm.ResNet50_Weights, opts)
    else:
        net = tvm.resnet50(weights=None)
    set_last_stride(net, last_stride)
    return net, local


def load_local_weights_if_any(model: nn.Module, name: str, local: Optional[str], opts: PretrainOptions,
                              exclude_prefixes: Sequence[str] = ('classifier',)) -> None:
    """Load ``local`` (a file found by :func:`resnet50_backbone`) into the built model, its classifiers excluded."""
    if local is not None:
        load_local_imagenet_weights(model, name, local, opts, exclude_prefixes=tuple(exclude_prefixes))


def _fc_layers(input_dim: int, dims: Sequence[int]) -> Tuple[nn.Sequential, int]:
    layers: List[nn.Module] = []
    for dim in dims:
        layers += [nn.Linear(input_dim, dim), nn.BatchNorm1d(dim), nn.ReLU(inplace=True)]
        input_dim = dim
    return nn.Sequential(*layers), input_dim


class ResNetMid(nn.Module):
    """ResNet-50 + mid-level feature fusion (see the module docstring). Children: torchvision's ResNet stages,
    ``global_avgpool``, ``fc_fusion``, ``classifier``.

    Forward: eval -> features ``[B, feature_dim]`` (3072 by default); train -> logits, or
    ``(logits, features)`` for loss 'triplet'.
    """

    def __init__(self, net: nn.Module, num_classes: int, loss: str = 'softmax', fc_dims: Sequence[int] = (1024,)):
        super().__init__()
        check_loss(type(self).__name__, loss)
        if not fc_dims or not all(isinstance(d, int) and d > 0 for d in fc_dims):
            raise ValueError(f'ResNetMid: fc_dims must be a non-empty list of positive ints, got {fc_dims!r}')
        if len(net.layer4) < 3:
            raise ValueError('ResNetMid: layer4 needs at least 3 blocks (the mid-level features are its first two)')
        self.loss = loss
        self.num_classes = num_classes
        for stage in RESNET_STAGE_NAMES:
            self.add_module(stage, getattr(net, stage))
        channels = net.fc.in_features
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc_fusion, fused = _fc_layers(2 * channels, fc_dims)
        init_params(self.fc_fusion)
        self.feature_dim = fused + channels
        self.classifier = nn.Linear(self.feature_dim, num_classes)
        init_classifier(self.classifier)

    def featuremaps(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The outputs of layer4's first, second and last blocks."""
        for stage in RESNET_STAGE_NAMES[:-1]:
            x = getattr(self, stage)(x)
        x4a = self.layer4[0](x)
        x4b = self.layer4[1](x4a)
        x4c = x4b
        for block in self.layer4[2:]:
            x4c = block(x4c)
        return x4a, x4b, x4c

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        x4a, x4b, x4c = self.featuremaps(x)
        mid = torch.cat([self.global_avgpool(x4a), self.global_avgpool(x4b)], 1).flatten(1)
        v = torch.cat([self.fc_fusion(mid), self.global_avgpool(x4c).flatten(1)], 1)
        if not self.training:
            return v
        logits = self.classifier(v)
        return logits if self.loss == 'softmax' else (logits, v)


@register_model('resnet50mid')
def resnet50mid(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ResNetMid:
    """Torchreid's ``resnet50mid``: ``last_stride`` (default 2) and ``fc_dims`` (default [1024], the fusion
    layer) are accepted; torchvision's ResNet-50 ImageNet weights (or a local file) when ``pretrained``."""
    head, opts, extras = parse_model_kwargs('resnet50mid', dict(kwargs, pretrained=pretrained),
                                            {'fc_dims': [1024]}, {'last_stride': 2})
    reject_shared_head_options('resnet50mid', head, allowed=('fc_dims',))
    net, local = resnet50_backbone('resnet50mid', opts, extras['last_stride'])
    model = ResNetMid(net, num_classes, loss, fc_dims=list(head.fc_dims or ()))
    load_local_weights_if_any(model, 'resnet50mid', local, opts)
    return model


def reject_shared_head_options(name: str, head: HeadOptions, allowed: Sequence[str] = ()) -> None:
    """Models with their own head (Torchreid's layout) refuse the shared head's options they do not implement
    (``TypeError`` naming them): silently ignoring ``bnneck=True`` would train a different model than asked."""
    defaults: Dict[str, Any] = {'pooling': 'avg', 'bnneck': False, 'dropout': None, 'gem_learnable': False,
                                'gem_p': 3.0, 'fc_dims': None}
    changed = sorted(k for k, v in defaults.items() if k not in allowed and getattr(head, k) != v)
    if changed:
        raise TypeError(f'{name}: the option(s) {changed} of the shared ReID head ({list(NEW_LAYER_NAMES)}) do '
                        f'not apply to this model, which has its own head (Torchreid layout)')
