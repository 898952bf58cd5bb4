"""OSNet: Omni-Scale Network (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV'19).

Written here from the paper's description:

* **Lite 3x3** (:class:`LiteConv3x3`): a 1x1 (pointwise) conv followed by a depthwise 3x3 conv, then BN + ReLU
  -- a 3x3 conv's receptive field at a fraction of its parameters.
* **Omni-scale residual block** (:class:`OSBlock`): 1x1 reduction to ``out/4`` channels; ``T=4`` streams, stream
  ``t`` stacking ``t`` Lite 3x3 layers (receptive fields 3, 5, 7, 9); a **unified aggregation gate**
  (:class:`AggregationGate`, one small network shared by all streams, producing channel-wise weights in
  (0, 1)) weighs each stream before they are summed; a linear 1x1 expansion; a residual connection (a linear
  1x1 projection when the channels change); ReLU.
* **Network**: conv1 7x7 stride 2 + 3x3 max pool stride 2; stages conv2, conv3, conv4 of two blocks each;
  conv2 and conv3 end with a transition (1x1 conv + 2x2 average pool stride 2); conv5 is a 1x1 conv; global
  average pooling; fc 512 (+ BN + ReLU). Channels ``[64, 256, 384, 512] * width``; the feature is 512-d at
  every width.
* **OSNet-IBN** (``osnet_ibn_x1_0``, the paper's cross-domain variant): instance normalisation in the early
  layers -- the stem uses InstanceNorm instead of BatchNorm and the blocks of conv2 normalise their
  output with InstanceNorm (after the residual sum, before the ReLU).

Layer names and shapes follow Torchreid's OSNet (``conv1.conv.weight``, ``conv2.0.conv2b.1.conv1.weight``,
``conv2.0.gate.fc1.weight``, ``conv2.2.0.conv.weight``, ``conv5.conv.weight``, ``fc.0.weight``, ...), so
Torchreid's ImageNet and ReID weight files for osnet_x1_0 ... osnet_x0_25 and osnet_ibn_x1_0 load by name
(``pretrained=True`` or ``model.load_weights``). OSNet-AIN, whose blocks are laid out differently, is in
:mod:`torchreid.models.osnet_ain` (it reuses :class:`ConvLayer`, :class:`LiteConv3x3`, :class:`AggregationGate`
and :func:`build_osnet_model`).

No torchvision weights exist: ``pretrained=True`` looks for ``<name>_imagenet.pth`` locally (see
:mod:`torchreid.models.weights`), otherwise warns and keeps the random initialisation.
"""
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .head import ReIDModel, parse_model_kwargs
from .registry import register_model
from .weights import (find_local_imagenet_file, init_params, load_local_imagenet_weights,
                      local_imagenet_candidates, report_unavailable)

__all__ = ['ConvLayer', 'LiteConv3x3', 'AggregationGate', 'OSBlock', 'osnet_stages', 'build_osnet', 'build_osnet_model',
           'osnet_x1_0', 'osnet_x0_75', 'osnet_x0_5', 'osnet_x0_25', 'osnet_ibn_x1_0', 'OSNET_CHANNELS']

#: channels of conv1, conv2, conv3, conv4 at width 1.0
OSNET_CHANNELS = (64, 256, 384, 512)
#: OS blocks per stage (conv2, conv3, conv4)
OSNET_BLOCKS = (2, 2, 2)


def _norm(kind: str, channels: int) -> Optional[nn.Module]:
    if kind == 'none':
        return None
    if kind == 'bn':
        return nn.BatchNorm2d(channels)
    if kind == 'in':
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f'norm must be "bn", "in" or "none", got {kind!r}')


class ConvLayer(nn.Module):
    """conv (no bias) -> BatchNorm or InstanceNorm (or none) -> optional ReLU.

    The children are named ``conv`` and ``bn`` (also when the norm is an InstanceNorm), as in Torchreid's
    OSNet, so its state dicts load by name. ``norm='none'`` leaves the conv alone (``bn`` is None): OSNet-AIN's
    instance-normalised blocks normalise their expansion conv outside this layer.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, norm: str = 'bn', relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              groups=groups, bias=False)
        self.bn = _norm(norm, out_channels)
        self.relu = nn.ReLU(inplace=True) if relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x) if self.relu is not None else x


class LiteConv3x3(nn.Module):
    """Lite 3x3: pointwise 1x1 conv (``conv1``), then depthwise 3x3 conv (``conv2``), then BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class AggregationGate(nn.Module):
    """The unified aggregation gate: global average pool -> 1x1 conv (C/r) -> ReLU -> 1x1 conv (C) -> sigmoid.

    Returns the input scaled channel-wise by the gate. One gate is shared by all streams of a block, so the
    weighting of scales is learned jointly and depends on the input (dynamic scale fusion).
    """

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_activation(self.fc2(self.relu(self.fc1(self.global_avgpool(x)))))
        return x * gate


#: the most streams a block can have (one letter each: conv2a ... conv2z)
MAX_STREAMS = 26


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck with ``num_streams`` Lite-3x3 streams and a shared aggregation gate.

    Children, named as in Torchreid's OSNet so its weights load by name: ``conv1`` (1x1 reduction),
    ``conv2a`` (one Lite 3x3), ``conv2b`` ... (stream t stacks t Lite 3x3 layers), ``gate``, ``conv3`` (linear
    1x1 expansion), ``downsample`` (projection shortcut, when the channels change) and ``IN`` (OSNet-IBN).

    Args:
        in_channels, out_channels: block input / output channels (the streams run at ``out_channels // 4``).
        num_streams: T, the number of scales (1 to 26); stream t (1-based) stacks t Lite 3x3 layers.
        instance_norm_out: InstanceNorm on the block output after the residual sum (OSNet-IBN).
    """

    def __init__(self, in_channels: int, out_channels: int, num_streams: int = 4, bottleneck_reduction: int = 4,
                 instance_norm_out: bool = False):
        super().__init__()
        if not 1 <= num_streams <= MAX_STREAMS:
            raise ValueError(f'OSBlock: num_streams must be in [1, {MAX_STREAMS}], got {num_streams}')
        mid = max(1, out_channels // bottleneck_reduction)
        self.conv1 = ConvLayer(in_channels, mid, 1)
        self.stream_names = []
        for t in range(1, num_streams + 1):
            name = 'conv2' + chr(ord('a') + t - 1)
            layers = [LiteConv3x3(mid, mid) for _ in range(t)]
            self.add_module(name, layers[0] if t == 1 else nn.Sequential(*layers))
            self.stream_names.append(name)
        self.gate = AggregationGate(mid)
        self.conv3 = ConvLayer(mid, out_channels, 1, relu=False)
        self.downsample = ConvLayer(in_channels, out_channels, 1, relu=False) if in_channels != out_channels else None
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm_out else None
        self.relu = nn.ReLU(inplace=True)

    @property
    def streams(self) -> List[nn.Module]:
        """The streams in order (stream t stacks t Lite 3x3 layers)."""
        return [getattr(self, name) for name in self.stream_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(x)
        aggregated = None
        for stream in self.streams:
            gated = self.gate(stream(reduced))
            aggregated = gated if aggregated is None else aggregated + gated
        out = self.conv3(aggregated)
        out = out + (self.downsample(x) if self.downsample is not None else x)
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


def _transition(channels: int) -> nn.Sequential:
    """Between stages: 1x1 conv + 2x2 average pooling (halves the resolution)."""
    return nn.Sequential(ConvLayer(channels, channels, 1), nn.AvgPool2d(2, stride=2))


def osnet_stages(width: float = 1.0, stem_norm: str = 'bn',
                 block_options: Optional[Sequence[Sequence[Mapping[str, Any]]]] = None,
                 num_blocks: Sequence[int] = OSNET_BLOCKS) -> Tuple[List[Tuple[str, nn.Module]], int]:
    """OSNet's feature layers as ``[(name, module), ...]``: conv1, maxpool, conv2, conv3, conv4, conv5.

    ``block_options[s][b]`` (optional) are the kwargs of block ``b`` of stage ``s`` (0: conv2 ... 2: conv4).
    Returns ``(stages, feature_channels)``.
    """
    if width <= 0:
        raise ValueError(f'OSNet width must be > 0, got {width}')
    c = [max(1, int(round(ch * width))) for ch in OSNET_CHANNELS]
    block_options = block_options or [[{}] * n for n in num_blocks]
    stages = [('conv1', ConvLayer(3, c[0], 7, stride=2, padding=3, norm=stem_norm)),
              ('maxpool', nn.MaxPool2d(3, stride=2, padding=1))]
    in_ch = c[0]
    for s, n in enumerate(num_blocks):
        out_ch = c[s + 1]
        blocks = []
        for b in range(n):
            blocks.append(OSBlock(in_ch if b == 0 else out_ch, out_ch, **block_options[s][b]))
        if s < len(num_blocks) - 1:  # conv2 and conv3 end with a transition; conv4 does not
            blocks.append(_transition(out_ch))
        stages.append((f'conv{s + 2}', nn.Sequential(*blocks)))
        in_ch = out_ch
    stages.append(('conv5', ConvLayer(in_ch, in_ch, 1)))
    for _, module in stages:
        init_params(module)
    return stages, in_ch


def build_osnet_model(name: str, num_classes: int, loss: str, pretrained: bool, kwargs: Mapping[str, Any],
                      make_stages: Callable[[], Tuple[List[Tuple[str, nn.Module]], int]]) -> ReIDModel:
    """An OSNet-family :class:`ReIDModel` from ``make_stages() -> (stages, channels)`` (head default: fc 512,
    as Torchreid's), with ``<name>_imagenet.pth`` loaded when found locally (torchvision has no OSNet)."""
    head, opts, _ = parse_model_kwargs(name, dict(kwargs, pretrained=pretrained), {'fc_dims': [512]})
    local = find_local_imagenet_file(name, opts) if opts.pretrained else None
    if opts.pretrained and local is None:
        report_unavailable(name, f'{name}_imagenet.pth; torchvision provides none',
                           f'no local file found (looked for {local_imagenet_candidates(name)})', opts)
    stages, channels = make_stages()
    model = ReIDModel(num_classes, loss, stages, channels, head)
    if local is not None:
        load_local_imagenet_weights(model, name, local, opts, exclude_prefixes=('classifier.',))
    return model


def build_osnet(name: str, num_classes: int, loss: str, pretrained: bool, kwargs: Mapping[str, Any],
                width: float = 1.0, stem_norm: str = 'bn',
                block_options: Optional[Sequence[Sequence[Mapping[str, Any]]]] = None) -> ReIDModel:
    """An OSNet :class:`ReIDModel` of the given width (see :func:`osnet_stages`)."""
    return build_osnet_model(name, num_classes, loss, pretrained, kwargs,
                             lambda: osnet_stages(width, stem_norm, block_options))


@register_model('osnet_x1_0')
def osnet_x1_0(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_osnet('osnet_x1_0', num_classes, loss, pretrained, kwargs, width=1.0)


@register_model('osnet_x0_75')
def osnet_x0_75(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_osnet('osnet_x0_75', num_classes, loss, pretrained, kwargs, width=0.75)


@register_model('osnet_x0_5')
def osnet_x0_5(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_osnet('osnet_x0_5', num_classes, loss, pretrained, kwargs, width=0.5)


@register_model('osnet_x0_25')
def osnet_x0_25(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    return build_osnet('osnet_x0_25', num_classes, loss, pretrained, kwargs, width=0.25)


@register_model('osnet_ibn_x1_0')
def osnet_ibn_x1_0(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True, **kwargs: Any) -> ReIDModel:
    # IN in the stem and in the blocks of conv2 (the early layers), where Torchreid's osnet_ibn_x1_0 has it,
    # so its weights load; conv3 and conv4 keep pure BN.
    ibn = {'instance_norm_out': True}
    return build_osnet('osnet_ibn_x1_0', num_classes, loss, pretrained, kwargs, width=1.0, stem_norm='in',
                       block_options=[[ibn, ibn], [{}, {}], [{}, {}]])
