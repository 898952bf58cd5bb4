"""MobileNetV2 ReID models (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR'18)
laid out and named as Torchreid's, so Torchreid's weight files (ImageNet and ReID) load completely.

Layers: ``conv1`` (3x3 stride-2 conv + BN + ReLU6); seven stages ``conv2`` ... ``conv8`` of inverted-residual
bottlenecks (expansion t, output channels c, blocks n, first stride s: (1, 16, 1, 1), (6, 24, 2, 2),
(6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)), each bottleneck being ``conv1``
(1x1 expansion + BN + ReLU6), ``dwconv2`` (depthwise 3x3 + BN + ReLU6) and ``conv3`` (linear 1x1 projection +
BN), with an identity shortcut when shape allows; ``conv9`` (1x1 conv + BN + ReLU6) to 1280 channels
(``int(1280 * width)`` above width 1). Channels at width w are ``int(c * w)``, as Torchreid computes them.

ImageNet weights: a local ``<name>_imagenet.pth`` (Torchreid's files, loaded by name) wins; otherwise, for
width 1.0, torchvision's ``MobileNet_V2_Weights`` are translated to these names by :func:`torchvision_to_torchreid`.
torchvision's first bottleneck has no expansion conv (t=1); ours has a 32x32 one, which is then set to the
identity so the pretrained network computes what torchvision's does.
"""
import re
from typing import Any, Dict, List, Mapping, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tvm

from .head import ReIDModel, parse_model_kwargs
from .registry import register_model
from .weights import (find_local_imagenet_file, init_params, load_local_imagenet_weights, load_matching_state_dict,
                      local_imagenet_candidates, report_unavailable, torchvision_weights_or_warn)

__all__ = ['ConvBNReLU6', 'InvertedResidual', 'mobilenetv2_stages', 'torchvision_to_torchreid',
           'mobilenetv2_x1_0', 'mobilenetv2_x1_4', 'MOBILENETV2_SETTINGS']

#: (expansion t, output channels c, blocks n, first stride s) of conv2 ... conv8
MOBILENETV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Module):
    """conv (no bias) -> BN -> ReLU6, children ``conv`` and ``bn`` (Torchreid's ConvBlock names)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: ``conv1`` expansion, ``dwconv2`` depthwise 3x3, ``conv3`` linear projection
    (Sequential conv, BN); identity shortcut when stride is 1 and the channels are unchanged."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int = 1):
        super().__init__()
        mid = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.conv1 = ConvBNReLU6(in_channels, mid, 1)
        self.dwconv2 = ConvBNReLU6(mid, mid, 3, stride, 1, groups=mid)
        self.conv3 = nn.Sequential(nn.Conv2d(mid, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.dwconv2(self.conv1(x)))
        return x + out if self.use_residual else out


def mobilenetv2_stages(width: float = 1.0) -> Tuple[List[Tuple[str, nn.Module]], int]:
    """``([(name, module), ...], feature_channels)``: conv1, conv2 ... conv8, conv9 at width ``width``."""
    if width <= 0:
        raise ValueError(f'MobileNetV2 width must be > 0, got {width}')
    in_ch = int(32 * width)
    stages: List[Tuple[str, nn.Module]] = [('conv1', ConvBNReLU6(3, in_ch, 3, stride=2, padding=1))]
    for i, (t, c, n, s) in enumerate(MOBILENETV2_SETTINGS):
        out_ch = int(c * width)
        blocks = [InvertedResidual(in_ch if b == 0 else out_ch, out_ch, t, s if b == 0 else 1) for b in range(n)]
        stages.append((f'conv{i + 2}', nn.Sequential(*blocks)))
        in_ch = out_ch
    feature_channels = int(1280 * width) if width > 1 else 1280
    stages.append(('conv9', ConvBNReLU6(in_ch, feature_channels, 1)))
    for _, module in stages:
        init_params(module)
    return stages, feature_channels


_BN_SUFFIXES = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


def torchvision_to_torchreid(tv_state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """torchvision ``mobilenet_v2`` (width 1.0) state-dict keys renamed to Torchreid's layout.

    ``features.0`` -> ``conv1``; ``features.1`` (t=1: depthwise, projection) -> ``conv2.0.dwconv2`` /
    ``conv2.0.conv3``; ``features.k`` (k=2..17, expansion, depthwise, projection) -> ``conv<j>.<b>.conv1`` /
    ``dwconv2`` / ``conv3``; ``features.18`` -> ``conv9``; the ImageNet classifier is dropped. ``conv2.0.conv1``,
    which torchvision lacks, is filled with the identity, so the result is a complete backbone that computes
    torchvision's features exactly (eval mode).
    A key that fits none of these raises ``KeyError`` naming it.
    """
    # block index (features.k) -> (stage name, index in the stage)
    where = {}
    k = 1
    for i, (_, _, n, _) in enumerate(MOBILENETV2_SETTINGS):
        for b in range(n):
            where[k] = (f'conv{i + 2}', b)
            k += 1
    last = k  # features.18: the final 1x1 conv
    out = {}
    for key, value in tv_state.items():
        if key.startswith('classifier.'):
            continue
        m = re.fullmatch(r'features\.(\d+)\.(.+)', key)
        if m is None:
            raise KeyError(f'torchvision_to_torchreid: unexpected torchvision MobileNetV2 key {key!r}')
        idx, rest = int(m.group(1)), m.group(2)
        if idx in (0, last):
            m2 = re.fullmatch(r'([01])\.(\w+)', rest)
            if m2 is None:
                raise KeyError(f'torchvision_to_torchreid: unexpected torchvision MobileNetV2 key {key!r}')
            out[f"{'conv1' if idx == 0 else 'conv9'}.{'conv' if m2.group(1) == '0' else 'bn'}.{m2.group(2)}"] = value
            continue
        if idx not in where:
            raise KeyError(f'torchvision_to_torchreid: unexpected torchvision MobileNetV2 key {key!r}')
        stage, b = where[idx]
        prefix = f'{stage}.{b}'
        # torchvision's parts of block idx, in order: [expansion (ConvBNReLU: 0 conv, 1 bn)], depthwise
        # (ConvBNReLU), projection conv, projection BN. The t=1 block has no expansion.
        parts = ['dwconv2', 'proj_conv', 'proj_bn'] if idx == 1 else ['conv1', 'dwconv2', 'proj_conv', 'proj_bn']
        m2 = re.fullmatch(r'conv\.(\d+)\.(?:(\d+)\.)?(\w+)', rest)
        if m2 is None or int(m2.group(1)) >= len(parts):
            raise KeyError(f'torchvision_to_torchreid: unexpected torchvision MobileNetV2 key {key!r}')
        part, sub, leaf = parts[int(m2.group(1))], m2.group(2), m2.group(3)
        if part in ('conv1', 'dwconv2'):
            out[f"{prefix}.{part}.{'conv' if sub == '0' else 'bn'}.{leaf}"] = value
        elif part == 'proj_conv':
            out[f'{prefix}.conv3.0.{leaf}'] = value
        else:
            out[f'{prefix}.conv3.1.{leaf}'] = value
    stem = tv_state.get('features.0.0.weight')
    if stem is not None:
        out.update(_identity_expansion(stem.shape[0]))
    return out


def _identity_expansion(channels: int, eps: float = 1e-5) -> Dict[str, torch.Tensor]:
    """Tensors making ``conv2.0.conv1`` (absent from torchvision's t=1 block) the identity on its ReLU6 input
    at eval: a 1x1 identity conv, then a BN with mean 0, variance 1 and a scale undoing its ``sqrt(1 + eps)``."""
    prefix = 'conv2.0.conv1.'
    return {prefix + 'conv.weight': torch.eye(channels).view(channels, channels, 1, 1),
            prefix + 'bn.weight': torch.full((channels,), (1.0 + eps) ** 0.5),
            prefix + 'bn.bias': torch.zeros(channels), prefix + 'bn.running_mean': torch.zeros(channels),
            prefix + 'bn.running_var': torch.ones(channels),
            prefix + 'bn.num_batches_tracked': torch.tensor(0, dtype=torch.long)}


def _build(name: str, width: float, num_classes: int, loss: str, pretrained: bool,
           kwargs: Mapping[str, Any]) -> ReIDModel:
    head, opts, _ = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained))
    stages, channels = mobilenetv2_stages(width)
    model = ReIDModel(num_classes, loss, stages, channels, head)
    if not opts.pretrained:
        return model
    local = find_local_imagenet_file(name, opts)
    if local is not None:
        load_local_imagenet_weights(model, name, local, opts, exclude_prefixes=('classifier.',))
    elif width == 1.0:
        tv_net = torchvision_weights_or_warn(name, tvm.mobilenet_v2, tvm.MobileNet_V2_Weights, opts)
        # torchvision_weights_or_warn returns a randomly initialised network (after warning) on failure;
        # only weights it really loaded are worth translating.
        if not _looks_random(tv_net):
            load_matching_state_dict(model, torchvision_to_torchreid(tv_net.state_dict()),
                                     source=f'torchvision MobileNet_V2_Weights.{opts.imagenet_weights}',
                                     exclude_prefixes=('classifier.',), strict=opts.strict)
    else:
        report_unavailable(name, 'torchvision provides none for width 1.4',
                           f'no local file found (looked for {local_imagenet_candidates(name)})', opts)
    return model


def _looks_random(net: nn.Module) -> bool:
    """True for a torchvision MobileNetV2 still at its initialisation (BN running stats untouched)."""
    bn = net.features[0][1]
    return bool(torch.all(bn.running_mean == 0)) and bool(torch.all(bn.running_var == 1))


@register_model('mobilenetv2_x1_0')
def mobilenetv2_x1_0(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> ReIDModel:
    """MobileNetV2 x1.0 (1280-d features); ImageNet weights from a local file or torchvision."""
    return _build('mobilenetv2_x1_0', 1.0, num_classes, loss, pretrained, kwargs)


@register_model('mobilenetv2_x1_4')
def mobilenetv2_x1_4(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                     **kwargs: Any) -> ReIDModel:
    """MobileNetV2 x1.4 (1792-d features); ImageNet weights from a local ``mobilenetv2_x1_4_imagenet.pth``."""
    return _build('mobilenetv2_x1_4', 1.4, num_classes, loss, pretrained, kwargs)
