"""MuDeep, the multi-scale deep network (Qian et al., "Multi-scale Deep Learning Architectures for Person
Re-identification", ICCV'17), Torchreid's ``mudeep``, under Torchreid's layer names.

* ``block1``: two 3x3 conv + BN + ReLU layers (48, 96 channels) and a 3x3 stride-2 max pool.
* ``block2`` (multi-scale A): four streams of 24 channels (1x1->3x3; avg-pool->1x1; 1x1; 1x1->3x3->3x3).
* ``block3`` (reduction): max pool, 3x3 stride-2 conv, 1x1->3x3->3x3 stride 2; concatenated to 256 channels.
* ``block4`` (multi-scale B): four 256-channel streams with factorised (1x3, 3x1) convolutions.
* ``block5`` (saliency-based fusion): the streams weighted by learned per-channel saliencies ``a1..a4`` and
  summed, then a 4x4 average pool.
* ``fc``: Linear(256 x 16 x 8 -> 4096) + BN + ReLU, ``classifier``.

Because ``fc`` flattens the map, the input must be 256x128 (height x width) at the default ``input_size``;
another ``input_size`` changes ``fc``'s input size (and makes Torchreid's weights unloadable). Eval returns
the 4096-d ``fc`` output. No ImageNet weights exist: ``pretrained`` is accepted and ignored.
"""
import logging
from typing import Any, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import parse_model_kwargs
from .registry import register_model
from .resnetmid import check_loss, reject_shared_head_options
from .weights import init_classifier, init_params

__all__ = ['MuDeep', 'mudeep', 'MUDEEP_INPUT_SIZE']

logger = logging.getLogger(__name__)

#: (height, width) of Torchreid's MuDeep input
MUDEEP_INPUT_SIZE = (256, 128)
_SIZE = Union[int, Tuple[int, int]]


class ConvBlock(nn.Module):
    """conv (with bias) + BN + ReLU, children ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _SIZE, stride: int = 1,
                 padding: _SIZE = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class ConvLayers(nn.Module):
    """The stem: two 3x3 conv blocks and a stride-2 max pool."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(3, 48, 3, padding=1)
        self.conv2 = ConvBlock(48, 96, 3, padding=1)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.conv2(self.conv1(x)))


class MultiScaleA(nn.Module):
    """Four 24-channel streams of different receptive fields, concatenated (96 channels)."""

    def __init__(self):
        super().__init__()
        self.stream1 = nn.Sequential(ConvBlock(96, 96, 1), ConvBlock(96, 24, 3, padding=1))
        self.stream2 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBlock(96, 24, 1))
        self.stream3 = ConvBlock(96, 24, 1)
        self.stream4 = nn.Sequential(ConvBlock(96, 16, 1), ConvBlock(16, 24, 3, padding=1),
                                     ConvBlock(24, 24, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)], 1)


class Reduction(nn.Module):
    """Halves the resolution: max pool (96) + 3x3/2 conv (96) + 1x1->3x3->3x3/2 (64), concatenated (256)."""

    def __init__(self):
        super().__init__()
        self.stream1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.stream2 = ConvBlock(96, 96, 3, stride=2, padding=1)
        self.stream3 = nn.Sequential(ConvBlock(96, 48, 1), ConvBlock(48, 56, 3, padding=1),
                                     ConvBlock(56, 64, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], 1)


class MultiScaleB(nn.Module):
    """Four 256-channel streams with factorised convolutions; returns them separately for the fusion."""

    def __init__(self):
        super().__init__()
        self.stream1 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBlock(256, 256, 1))
        self.stream2 = nn.Sequential(ConvBlock(256, 64, 1), ConvBlock(64, 128, (1, 3), padding=(0, 1)),
                                     ConvBlock(128, 256, (3, 1), padding=(1, 0)))
        self.stream3 = ConvBlock(256, 256, 1)
        self.stream4 = nn.Sequential(ConvBlock(256, 64, 1), ConvBlock(64, 64, (1, 3), padding=(0, 1)),
                                     ConvBlock(64, 128, (3, 1), padding=(1, 0)),
                                     ConvBlock(128, 128, (1, 3), padding=(0, 1)),
                                     ConvBlock(128, 256, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)


class Fusion(nn.Module):
    """Saliency-based fusion: ``sum_i a_i * stream_i`` with learned per-channel ``a_i``, then a 4x4 average
    pool (Torchreid's addition, reducing the map before ``fc``)."""

    def __init__(self, channels: int = 256):
        super().__init__()
        self.a1 = nn.Parameter(torch.rand(1, channels, 1, 1))
        self.a2 = nn.Parameter(torch.rand(1, channels, 1, 1))
        self.a3 = nn.Parameter(torch.rand(1, channels, 1, 1))
        self.a4 = nn.Parameter(torch.rand(1, channels, 1, 1))
        self.avgpool = nn.AvgPool2d(4, stride=4)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        return self.avgpool(self.a1 * x1 + self.a2 * x2 + self.a3 * x3 + self.a4 * x4)


class MuDeep(nn.Module):
    """Multi-scale deep network (see the module docstring)."""

    def __init__(self, num_classes: int, loss: str = 'softmax', input_size: Sequence[int] = MUDEEP_INPUT_SIZE):
        super().__init__()
        check_loss(type(self).__name__, loss)
        height, width = (int(v) for v in input_size)
        if height % 16 or width % 16 or height <= 0 or width <= 0:
            raise ValueError(f'MuDeep: input_size must be positive multiples of 16 (the network downsamples by '
                             f'16), got {tuple(input_size)}')
        self.loss = loss
        self.num_classes = num_classes
        self.input_size = (height, width)
        self.block1 = ConvLayers()
        self.block2 = MultiScaleA()
        self.block3 = Reduction()
        self.block4 = MultiScaleB()
        self.block5 = Fusion()
        self.fc = nn.Sequential(nn.Linear(256 * (height // 16) * (width // 16), 4096), nn.BatchNorm1d(4096),
                                nn.ReLU())
        self.feature_dim = 4096
        self.classifier = nn.Linear(4096, num_classes)
        fusion_weights = [p.detach().clone() for p in self.block5.parameters()]
        init_params(self)
        with torch.no_grad():  # the saliencies keep their uniform [0, 1) start
            for p, value in zip(self.block5.parameters(), fusion_weights):
                p.copy_(value)
        init_classifier(self.classifier)

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        return self.block5(*self.block4(self.block3(self.block2(self.block1(x)))))

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f'MuDeep: input must be {self.input_size[0]}x{self.input_size[1]} (height x width, '
                             f'the size fc was built for), got {x.size(2)}x{x.size(3)}')
        v = self.fc(self.featuremaps(x).flatten(1))
        if not self.training:
            return v
        logits = self.classifier(v)
        return logits if self.loss == 'softmax' else (logits, v)


@register_model('mudeep')
def mudeep(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> MuDeep:
    """Torchreid's MuDeep (input 256x128, 4096-d features); ``input_size=(h, w)`` for another input size.
    No ImageNet weights exist: ``pretrained=True`` is logged and ignored, as in Torchreid."""
    head, opts, extras = parse_model_kwargs('mudeep', dict(kwargs, pretrained=pretrained), None,
                                            {'input_size': MUDEEP_INPUT_SIZE})
    reject_shared_head_options('mudeep', head)
    if opts.pretrained:
        logger.info('mudeep: no ImageNet weights exist for MuDeep; it is trained from scratch')
    return MuDeep(num_classes, loss, input_size=tuple(extras['input_size']))
