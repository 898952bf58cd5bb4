"""HA-CNN, the Harmonious Attention CNN (Li et al., "Harmonious Attention Network for Person
Re-identification", CVPR'18), Torchreid's ``hacnn``, under Torchreid's layer names.

* A global branch: a 3x3 stride-2 stem (``conv``), then three levels of Inception-A + Inception-B
  (``inception1..3``, 128 / 256 / 384 channels), each followed by a harmonious attention module (``ha1..3``):
  soft attention (spatial: channel mean -> 3x3 stride-2 conv -> 2x bilinear upsampling -> 1x1 conv; channel:
  squeeze -> two 1x1 convs; their product -> 1x1 conv -> sigmoid) multiplies the level's output, and hard
  attention (pooled -> ``fc`` -> tanh) predicts the translations of 4 horizontal regions.
* A local branch (``learn_region=True``): at each level the 4 regions are cut from the level's input by a
  spatial transformer (fixed scale (1, 0.25), predicted translation), resized (24x28, 12x14, 6x7), added to
  the previous level's region features and passed through a shared Inception-B (``local_conv1..3``).
* Heads: ``fc_global`` (384 -> 512 + BN + ReLU) + ``classifier_global``; ``fc_local`` (4 x 384 -> 512 + BN +
  ReLU) + ``classifier_local``.

The input must be 160x64 (the region sizes are fixed). Eval returns the L2-normalised global and local
features concatenated (1024-d; 512 without the local branch); train returns ``(global logits, local
logits)`` (deep supervision: the engines average the loss over them), and for loss 'triplet'
``((global logits, local logits), (global features, local features))``.

No ImageNet weights exist for HA-CNN (Torchreid trains it from scratch): ``pretrained`` is accepted and ignored.
"""
import logging
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import parse_model_kwargs
from .registry import register_model
from .resnetmid import check_loss, reject_shared_head_options
from .weights import init_classifier, init_params

__all__ = ['HACNN', 'hacnn', 'HACNN_INPUT_SIZE']

logger = logging.getLogger(__name__)

#: (height, width) HA-CNN accepts
HACNN_INPUT_SIZE = (160, 64)
#: resized (height, width) of the regions cut at level 1, 2, 3
_REGION_SIZES = ((24, 28), (12, 14), (6, 7))
_NUM_REGIONS = 4


class ConvBlock(nn.Module):
    """conv (with bias) + BN + ReLU, children ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):
    """Four streams of ``out/4`` channels: 1x1->3x3, 1x1->3x3, 1x1->3x3, avg-pool->1x1; concatenated."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 4
        self.stream1 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream2 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream3 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1))
        self.stream4 = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), ConvBlock(in_channels, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x), self.stream4(x)], 1)


class InceptionB(nn.Module):
    """Stride-2 reduction: 1x1->3x3/2 (out/4), 1x1->3x3->3x3/2 (out/4), max-pool/2->1x1 (out/2); concatenated."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 4
        self.stream1 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, stride=2, padding=1))
        self.stream2 = nn.Sequential(ConvBlock(in_channels, mid, 1), ConvBlock(mid, mid, 3, padding=1),
                                     ConvBlock(mid, mid, 3, stride=2, padding=1))
        self.stream3 = nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), ConvBlock(in_channels, mid * 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], 1)


class SpatialAttn(nn.Module):
    """Spatial soft attention: channel mean -> 3x3 stride-2 conv -> 2x bilinear upsampling -> 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBlock(1, 1, 3, stride=2, padding=1)
        self.conv2 = ConvBlock(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x.mean(1, keepdim=True))
        y = F.interpolate(y, (y.size(2) * 2, y.size(3) * 2), mode='bilinear', align_corners=True)
        return self.conv2(y)


class ChannelAttn(nn.Module):
    """Channel soft attention: global average pooling -> 1x1 conv (C/r) -> 1x1 conv (C)."""

    def __init__(self, in_channels: int, reduction: int = 16):
        super().__init__()
        if in_channels % reduction:
            raise ValueError(f'ChannelAttn: in_channels ({in_channels}) must be divisible by {reduction}')
        self.conv1 = ConvBlock(in_channels, in_channels // reduction, 1)
        self.conv2 = ConvBlock(in_channels // reduction, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.adaptive_avg_pool2d(x, 1)))


class SoftAttn(nn.Module):
    """Spatial x channel attention, then a 1x1 conv and a sigmoid: a map the size of the input."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.spatial_attn = SpatialAttn()
        self.channel_attn = ChannelAttn(in_channels)
        self.conv = ConvBlock(in_channels, in_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(self.spatial_attn(x) * self.channel_attn(x)))


class HardAttn(nn.Module):
    """Hard (region) attention: pooled input -> ``fc`` -> tanh, 4 (x, y) translations ``[B, 4, 2]``.

    Initialised to zero weights and a bias placing the 4 regions at heights -0.75, -0.25, 0.25, 0.75.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, _NUM_REGIONS * 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75], dtype=torch.float))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))).view(-1, _NUM_REGIONS, 2)


class HarmAttn(nn.Module):
    """Harmonious attention: ``(soft attention map, region translations)``."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.soft_attn = SoftAttn(in_channels)
        self.hard_attn = HardAttn(in_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.soft_attn(x), self.hard_attn(x)


def _fc(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU())


class HACNN(nn.Module):
    """Harmonious Attention CNN (see the module docstring)."""

    def __init__(self, num_classes: int, loss: str = 'softmax', nchannels: Sequence[int] = (128, 256, 384),
                 feat_dim: int = 512, learn_region: bool = True):
        super().__init__()
        check_loss(type(self).__name__, loss)
        if len(nchannels) != 3:
            raise ValueError(f'HACNN: nchannels must have 3 values (one per level), got {nchannels!r}')
        self.loss = loss
        self.num_classes = num_classes
        self.learn_region = learn_region
        c1, c2, c3 = nchannels
        self.conv = ConvBlock(3, 32, 3, stride=2, padding=1)
        self.inception1 = nn.Sequential(InceptionA(32, c1), InceptionB(c1, c1))
        self.ha1 = HarmAttn(c1)
        self.inception2 = nn.Sequential(InceptionA(c1, c2), InceptionB(c2, c2))
        self.ha2 = HarmAttn(c2)
        self.inception3 = nn.Sequential(InceptionA(c2, c3), InceptionB(c3, c3))
        self.ha3 = HarmAttn(c3)
        self.fc_global = _fc(c3, feat_dim)
        self.classifier_global = nn.Linear(feat_dim, num_classes)
        if learn_region:
            # (s_w, s_h) of every region: full width, a quarter of the height; a buffer that is not saved
            # (Torchreid keeps it outside the state dict) but follows the model across devices
            self.register_buffer('scale_factors', torch.tensor([[1.0, 0.0], [0.0, 0.25]]).repeat(_NUM_REGIONS, 1, 1),
                                 persistent=False)
            self.local_conv1 = InceptionB(32, c1)
            self.local_conv2 = InceptionB(c1, c2)
            self.local_conv3 = InceptionB(c2, c3)
            self.fc_local = _fc(c3 * _NUM_REGIONS, feat_dim)
            self.classifier_local = nn.Linear(feat_dim, num_classes)
            self.feature_dim = feat_dim * 2
        else:
            self.feature_dim = feat_dim
        self._init_params()

    def _init_params(self) -> None:
        hard = [m for m in self.modules() if isinstance(m, HardAttn)]
        init_params(self)
        for module in hard:  # their special initialisation, undone by the generic one
            module.reset_parameters()
        for classifier in self.classifiers:
            init_classifier(classifier)

    @property
    def classifiers(self) -> List[nn.Linear]:
        """The identity classifiers: global, and local when the local branch is on."""
        return [self.classifier_global] + ([self.classifier_local] if self.learn_region else [])

    @property
    def classifier(self) -> nn.ModuleList:
        """The classifiers as one (unregistered) ModuleList, for tools that look up ``model.classifier``.
        The registered names stay Torchreid's ``classifier_global`` / ``classifier_local``."""
        return nn.ModuleList(self.classifiers)

    def _regions(self, x: torch.Tensor, theta: torch.Tensor, size: Tuple[int, int]) -> List[torch.Tensor]:
        """The 4 regions of ``x`` at translations ``theta`` ``[B, 4, 2]``, each resized to ``size``."""
        regions = []
        for i in range(_NUM_REGIONS):
            affine = torch.cat([self.scale_factors[i].expand(x.size(0), 2, 2), theta[:, i, :].unsqueeze(2)], 2)
            grid = F.affine_grid(affine, list(x.size()), align_corners=False)
            region = F.grid_sample(x, grid, align_corners=False)
            regions.append(F.interpolate(region, size, mode='bilinear', align_corners=True))
        return regions

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[Any, ...]]:
        if tuple(x.shape[2:]) != HACNN_INPUT_SIZE:
            raise ValueError(f'HACNN: input must be {HACNN_INPUT_SIZE[0]}x{HACNN_INPUT_SIZE[1]} (height x width), '
                             f'got {x.size(2)}x{x.size(3)}; set the data manager height=160, width=64')
        x = self.conv(x)
        level_input = x
        local: Optional[List[torch.Tensor]] = None
        levels = ((self.inception1, self.ha1, 'local_conv1'), (self.inception2, self.ha2, 'local_conv2'),
                  (self.inception3, self.ha3, 'local_conv3'))
        for (inception, attention, local_name), size in zip(levels, _REGION_SIZES):
            out = inception(level_input)
            attn, theta = attention(out)
            if self.learn_region:
                regions = self._regions(level_input, theta, size)
                local_conv = getattr(self, local_name)
                local = [local_conv(r if local is None else r + prev)
                         for r, prev in zip(regions, local or [None] * _NUM_REGIONS)]
            level_input = out * attn
        x_global = self.fc_global(F.adaptive_avg_pool2d(level_input, 1).flatten(1))
        x_local = None
        if self.learn_region:
            x_local = self.fc_local(torch.cat([F.adaptive_avg_pool2d(r, 1).flatten(1) for r in local], 1))
        if not self.training:
            if x_local is None:
                return x_global
            return torch.cat([F.normalize(x_global, dim=1), F.normalize(x_local, dim=1)], 1)
        logits_global = self.classifier_global(x_global)
        if x_local is None:
            return logits_global if self.loss == 'softmax' else (logits_global, x_global)
        logits = (logits_global, self.classifier_local(x_local))
        return logits if self.loss == 'softmax' else (logits, (x_global, x_local))


@register_model('hacnn')
def hacnn(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> HACNN:
    """Torchreid's HA-CNN (input 160x64, 1024-d features); ``nchannels``, ``feat_dim`` and ``learn_region``
    accepted. No ImageNet weights exist: ``pretrained=True`` is logged and ignored, as in Torchreid."""
    head, opts, extras = parse_model_kwargs('hacnn', dict(kwargs, pretrained=pretrained), None,
                                            {'nchannels': (128, 256, 384), 'feat_dim': 512, 'learn_region': True})
    reject_shared_head_options('hacnn', head)
    if opts.pretrained:
        logger.info('hacnn: no ImageNet weights exist for HA-CNN; it is trained from scratch')
    return HACNN(num_classes, loss, nchannels=tuple(extras['nchannels']), feat_dim=extras['feat_dim'],
                 learn_region=extras['learn_region'])
