"""MLFN, the Multi-Level Factorisation Net (Chang et al., "Multi-Level Factorisation Net for Person
Re-Identification", CVPR'18), Torchreid's ``mlfn``, under Torchreid's layer names.

* Stem: 7x7 stride-2 conv (with bias) + BN + ReLU + 3x3 max pool (``conv1``, ``bn1``, ``maxpool``).
* 16 MLFN blocks (``feature.0`` ... ``feature.15``; 3, 4, 6, 3 per level at 256, 512, 1024, 2048 channels). Each
  block is a ResNeXt-style bottleneck of factor modules (``fm_conv1/fm_bn1`` 1x1, ``fm_conv2/fm_bn2`` grouped
  3x3 with 32 groups, ``fm_conv3/fm_bn3`` 1x1) whose 32 groups are switched on and off by a factor selection
  module (``fsm``: pooled input -> three 1x1 conv + BN (+ ReLU) layers -> sigmoid, one gate per group).
* The factor signature: the 16 x 32 selection gates, concatenated.
* Feature: the mean of the projected pooled map (``fc_x``: 1x1 conv 2048 -> 1024 + BN + ReLU) and the projected
  factor signature (``fc_s``: 1x1 conv 512 -> 1024 + BN + ReLU), 1024-d.

No torchvision weights: ``pretrained=True`` looks for a local ``mlfn_imagenet.pth`` (Torchreid's ImageNet file
loads by name).
"""
from typing import Any, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import parse_model_kwargs
from .registry import register_model
from .resnetmid import check_loss, reject_shared_head_options
from .weights import (find_local_imagenet_file, init_classifier, init_params, load_local_imagenet_weights,
                      local_imagenet_candidates, report_unavailable)

__all__ = ['MLFNBlock', 'MLFN', 'mlfn', 'MLFN_LEVELS']

#: per level: (number of blocks, output channels, fsm hidden channels); the first block of a level above the
#: first one has stride 2
MLFN_LEVELS = ((3, 256, (128, 64)), (4, 512, (256, 128)), (6, 1024, (512, 128)), (3, 2048, (512, 128)))


class MLFNBlock(nn.Module):
    """One MLFN block; ``forward`` returns ``(output, gates)`` with ``gates`` ``[B, groups, 1, 1]``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, fsm_channels: Sequence[int],
                 groups: int = 32):
        super().__init__()
        mid = out_channels // 2
        if mid % groups:
            raise ValueError(f'MLFNBlock: out_channels // 2 ({mid}) must be divisible by groups ({groups})')
        self.groups = groups
        self.fm_conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.fm_bn1 = nn.BatchNorm2d(mid)
        self.fm_conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False, groups=groups)
        self.fm_bn2 = nn.BatchNorm2d(mid)
        self.fm_conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.fm_bn3 = nn.BatchNorm2d(out_channels)
        hidden1, hidden2 = fsm_channels
        self.fsm = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, hidden1, 1), nn.BatchNorm2d(hidden1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden1, hidden2, 1), nn.BatchNorm2d(hidden2), nn.ReLU(inplace=True),
            nn.Conv2d(hidden2, groups, 1), nn.BatchNorm2d(groups), nn.Sigmoid())
        self.downsample = None
        if in_channels != out_channels or stride > 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        gates = self.fsm(x)  # [B, groups, 1, 1]
        out = F.relu(self.fm_bn1(self.fm_conv1(x)))
        out = F.relu(self.fm_bn2(self.fm_conv2(out)))
        # group g owns channels [g * n, (g + 1) * n) of the grouped conv: each gets its group's gate
        per_group = out.size(1) // self.groups
        out = out * gates.repeat_interleave(per_group, dim=1)
        out = F.relu(self.fm_bn3(self.fm_conv3(out)))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(identity + out), gates


class MLFN(nn.Module):
    """Multi-Level Factorisation Net (see the module docstring).

    Forward: eval -> ``[B, embed_dim]`` features; train -> logits or ``(logits, features)`` ('triplet').
    """

    def __init__(self, num_classes: int, loss: str = 'softmax', groups: int = 32, embed_dim: int = 1024):
        super().__init__()
        check_loss(type(self).__name__, loss)
        self.loss = loss
        self.num_classes = num_classes
        self.groups = groups
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        blocks: List[nn.Module] = []
        in_ch = 64
        for level, (n, out_ch, fsm) in enumerate(MLFN_LEVELS):
            for b in range(n):
                stride = 2 if level > 0 and b == 0 else 1
                blocks.append(MLFNBlock(in_ch, out_ch, stride, fsm, groups))
                in_ch = out_ch
        self.feature = nn.ModuleList(blocks)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc_x = nn.Sequential(nn.Conv2d(in_ch, embed_dim, 1, bias=False), nn.BatchNorm2d(embed_dim),
                                  nn.ReLU(inplace=True))
        self.fc_s = nn.Sequential(nn.Conv2d(groups * len(blocks), embed_dim, 1, bias=False),
                                  nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True))
        self.feature_dim = embed_dim
        self.classifier = nn.Linear(embed_dim, num_classes)
        init_params(self)
        init_classifier(self.classifier)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        signature = []
        for block in self.feature:
            x, gates = block(x)
            signature.append(gates)
        v = (self.fc_x(self.global_avgpool(x)) + self.fc_s(torch.cat(signature, 1))) * 0.5
        v = v.flatten(1)
        if not self.training:
            return v
        logits = self.classifier(v)
        return logits if self.loss == 'softmax' else (logits, v)


@register_model('mlfn')
def mlfn(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> MLFN:
    """Torchreid's MLFN (1024-d features); ``groups`` and ``embed_dim`` accepted; local ImageNet file only."""
    head, opts, extras = parse_model_kwargs('mlfn', dict(kwargs, pretrained=pretrained), None,
                                            {'groups': 32, 'embed_dim': 1024})
    reject_shared_head_options('mlfn', head)
    local = find_local_imagenet_file('mlfn', opts) if opts.pretrained else None
    if opts.pretrained and local is None:
        report_unavailable('mlfn', 'mlfn_imagenet.pth; torchvision provides none',
                           f'no local file found (looked for {local_imagenet_candidates("mlfn")})', opts)
    model = MLFN(num_classes, loss, groups=extras['groups'], embed_dim=extras['embed_dim'])
    if local is not None:
        load_local_imagenet_weights(model, 'mlfn', local, opts, exclude_prefixes=('classifier.',))
    return model
