"""PCB, the Part-based Convolutional Baseline (Sun et al., "Beyond Part Models: Person Retrieval with Refined
Part Pooling (and A Strong Convolutional Baseline)", ECCV'18): Torchreid's ``pcb_p6`` and ``pcb_p4``.

ResNet-50 (torchvision's, last stride 1) -> the feature map is average-pooled into ``parts`` horizontal
stripes -> train: dropout, a shared 1x1 conv reduction (``conv5``: conv 2048 -> 256 + BN + ReLU) and one
classifier per stripe (``classifier.<i>``); eval: the stripes' 2048-d vectors, each L2-normalised over the
channels, concatenated (``2048 * parts`` dims). Layer names are Torchreid's.

Train-mode output: a list of per-part logits (the engines average the loss over them, Torchreid's deep
supervision), or ``(list of logits, features)`` for loss 'triplet' with the eval features.
"""
from typing import Any, List, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import parse_model_kwargs
from .registry import register_model
from .resnet import RESNET_STAGE_NAMES
from .resnetmid import check_loss, load_local_weights_if_any, reject_shared_head_options, resnet50_backbone
from .weights import init_classifier, init_params

__all__ = ['DimReduceLayer', 'PCB', 'pcb_p6', 'pcb_p4']

NONLINEARITIES = ('relu', 'leakyrelu', None)


class DimReduceLayer(nn.Module):
    """1x1 conv (no bias) + BN + optional ReLU / LeakyReLU(0.1), in ``layers`` (Torchreid's names)."""

    def __init__(self, in_channels: int, out_channels: int, nonlinear: Union[str, None] = 'relu'):
        super().__init__()
        if nonlinear not in NONLINEARITIES:
            raise ValueError(f'DimReduceLayer: nonlinear must be one of {NONLINEARITIES}, got {nonlinear!r}')
        layers: List[nn.Module] = [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        if nonlinear == 'relu':
            layers.append(nn.ReLU(inplace=True))
        elif nonlinear == 'leakyrelu':
            layers.append(nn.LeakyReLU(0.1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class PCB(nn.Module):
    """Part-based Convolutional Baseline on a torchvision ResNet-50 ``net`` (see the module docstring)."""

    def __init__(self, net: nn.Module, num_classes: int, loss: str = 'softmax', parts: int = 6,
                 reduced_dim: int = 256, nonlinear: Union[str, None] = 'relu', dropout: float = 0.5):
        super().__init__()
        check_loss(type(self).__name__, loss)
        if not isinstance(parts, int) or parts < 1:
            raise ValueError(f'PCB: parts must be an int >= 1, got {parts!r}')
        if not isinstance(reduced_dim, int) or reduced_dim < 1:
            raise ValueError(f'PCB: reduced_dim must be an int >= 1, got {reduced_dim!r}')
        self.loss = loss
        self.num_classes = num_classes
        self.parts = parts
        for stage in RESNET_STAGE_NAMES:
            self.add_module(stage, getattr(net, stage))
        channels = net.fc.in_features
        self.parts_avgpool = nn.AdaptiveAvgPool2d((parts, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.conv5 = DimReduceLayer(channels, reduced_dim, nonlinear)
        init_params(self.conv5)
        self.classifier = nn.ModuleList([nn.Linear(reduced_dim, num_classes) for _ in range(parts)])
        for layer in self.classifier:
            init_classifier(layer)
        self.reduced_dim = reduced_dim
        #: the eval feature: every part's pooled, L2-normalised backbone vector
        self.feature_dim = channels * parts

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        for stage in RESNET_STAGE_NAMES:
            x = getattr(self, stage)(x)
        return x

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor],
                                                 Tuple[List[torch.Tensor], torch.Tensor]]:
        parts = self.parts_avgpool(self.featuremaps(x))  # [B, C, parts, 1]
        features = F.normalize(parts, p=2, dim=1).flatten(1)
        if not self.training:
            return features
        reduced = self.conv5(self.dropout(parts))  # [B, reduced_dim, parts, 1]
        logits = [classifier(reduced[:, :, i, 0]) for i, classifier in enumerate(self.classifier)]
        return logits if self.loss == 'softmax' else (logits, features)


def _build(name: str, parts: int, num_classes: int, loss: str, pretrained: bool, kwargs: Any) -> PCB:
    head, opts, extras = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained), None,
                                            {'last_stride': 1, 'reduced_dim': 256, 'nonlinear': 'relu',
                                             'parts': parts})
    reject_shared_head_options(name, head)
    net, local = resnet50_backbone(name, opts, extras['last_stride'])
    model = PCB(net, num_classes, loss, parts=extras['parts'], reduced_dim=extras['reduced_dim'],
                nonlinear=extras['nonlinear'])
    load_local_weights_if_any(model, name, local, opts)
    return model


@register_model('pcb_p6')
def pcb_p6(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> PCB:
    """PCB with 6 stripes (12288-d features); torchvision's ResNet-50 ImageNet weights when ``pretrained``."""
    return _build('pcb_p6', 6, num_classes, loss, pretrained, kwargs)


@register_model('pcb_p4')
def pcb_p4(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> PCB:
    """PCB with 4 stripes (8192-d features); torchvision's ResNet-50 ImageNet weights when ``pretrained``."""
    return _build('pcb_p4', 4, num_classes, loss, pretrained, kwargs)
