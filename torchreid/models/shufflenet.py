"""ShuffleNet (v1) ReID model (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices", CVPR'18). For ShuffleNetV2 see :mod:`torchreid.models.shufflenetv2`.

Written here from the paper (Table 1, groups ``g``) with Torchreid's layer names:

* ``conv1``: 3x3 conv stride 2 (24 channels) + BN + ReLU + 3x3 max pool stride 2 (``conv1.0``, ``conv1.1``);
* ``stage2`` / ``stage3`` / ``stage4``: 4 / 8 / 4 units. A unit is a grouped 1x1 conv (``conv1``/``bn1``; not
  grouped in the very first unit, whose input has only 24 channels), a channel shuffle, a depthwise 3x3
  conv (``conv2``/``bn2``), a grouped 1x1 conv (``conv3``/``bn3``). The first unit of a stage has stride 2: its
  shortcut is a 3x3 average pool and the outputs are concatenated (the branch makes up the missing channels);
  the other units add the identity.
* output channels per stage for g = 1, 2, 3, 4, 8: (144, 288, 576), (200, 400, 800), (240, 480, 960),
  (272, 544, 1088), (384, 768, 1536). Torchreid's ``shufflenet`` is g = 3 (960-d features); ``num_groups``
  selects another.

ImageNet weights: neither torchvision nor an automatic download; ``pretrained=True`` loads
``shufflenet_imagenet.pth`` from the local weights places (see :mod:`torchreid.models.weights`), otherwise warns.
"""
from typing import Any, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import ReIDModel
from .registry import register_model
from .backbones import build_stages_model

__all__ = ['ShuffleUnit', 'shufflenet_stages', 'shufflenet', 'SHUFFLENET_CHANNELS']

#: groups -> output channels of stage2, stage3, stage4 (the paper's Table 1)
SHUFFLENET_CHANNELS: Dict[int, Tuple[int, int, int]] = {
    1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536),
}
#: units per stage (stage2, stage3, stage4)
SHUFFLENET_UNITS = (4, 8, 4)
STEM_CHANNELS = 24


class ShuffleUnit(nn.Module):
    """ShuffleNet unit (see the module docstring); ``stride`` 1 (residual add) or 2 (pooled concat)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int, group_first_conv: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'ShuffleUnit: stride must be 1 or 2, got {stride!r}')
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f'ShuffleUnit: a stride-1 unit adds its input, so in_channels ({in_channels}) must '
                             f'equal out_channels ({out_channels})')
        self.stride = stride
        self.groups = groups
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        self.conv1 = nn.Conv2d(in_channels, mid, 1, groups=groups if group_first_conv else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.channel_shuffle(out, self.groups)
        out = self.bn3(self.conv3(self.bn2(self.conv2(out))))
        if self.shortcut is not None:
            return F.relu(torch.cat([self.shortcut(x), out], 1))
        return F.relu(x + out)


def shufflenet_stages(groups: int = 3) -> Tuple[List[Tuple[str, nn.Module]], int]:
    """ShuffleNet's feature layers (``conv1``, ``stage2`` ... ``stage4``) for ``groups``, and their channels."""
    if groups not in SHUFFLENET_CHANNELS:
        raise ValueError(f'shufflenet: num_groups must be one of {sorted(SHUFFLENET_CHANNELS)}, got {groups!r}')
    stages: List[Tuple[str, nn.Module]] = [('conv1', nn.Sequential(
        nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS),
        nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)))]
    in_channels = STEM_CHANNELS
    for index, (out_channels, units) in enumerate(zip(SHUFFLENET_CHANNELS[groups], SHUFFLENET_UNITS)):
        blocks = [ShuffleUnit(in_channels, out_channels, 2, groups, group_first_conv=index > 0)]
        blocks += [ShuffleUnit(out_channels, out_channels, 1, groups) for _ in range(units - 1)]
        stages.append((f'stage{index + 2}', nn.Sequential(*blocks)))
        in_channels = out_channels
    return stages, in_channels


@register_model('shufflenet')
def shufflenet(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    """ShuffleNet v1 ReID model, ``num_groups=3`` by default (960-d features)."""
    return build_stages_model('shufflenet', num_classes, loss, pretrained, kwargs,
                              lambda extras: shufflenet_stages(extras['num_groups']),
                              weights_source='the ShuffleNet ImageNet file linked from Torchreid\'s model zoo',
                              extra={'num_groups': 3})
