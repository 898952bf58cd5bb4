"""NASNet-A Mobile ReID model (Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition", CVPR'18), registered as ``nasnsetmobile`` (Torchreid's spelling) and ``nasnetmobile``.

Written here from the paper's NASNet-A cells (its Figure 4) and the public layout of the ImageNet weights
Torchreid uses (Cadene's ``nasnetamobile-7e03cead.pth``, http://data.lip6.fr/cadene/pretrainedmodels/), the
"4 @ 1056" network: 4 normal cells per stage, 1056 penultimate filters (44 per unit), 32 stem filters.

Every cell takes the two previous outputs, ``x`` (the current one) and ``x_prev``:

* ``conv_1x1`` (ReLU, 1x1 conv, BN) brings ``x`` to the cell's width; ``x_prev`` is brought there by
  ``conv_prev_1x1`` -- or, when it has twice the resolution (the cell after a reduction), by a factorized
  reduction: ReLU, two 1x1 convs on the even (``path_1``) and the one-pixel-shifted (``path_2``) positions,
  concatenated and normalised (``final_path_bn``). The first stem cell uses ``x`` itself.
* a **normal cell** (``FirstCell`` / ``NormalCell`` in the released weights) outputs ``x_prev`` and five
  combinations (``comb_iter_0`` ... ``comb_iter_4``) of separable convs (5x5, 3x3), 3x3 average pools and
  identities, concatenated: 6 x width channels.
* a **reduction cell** (the stems and ``reduction_cell_0/1``) outputs four combinations of stride-2 separable
  convs (7x7, 5x5), max/average pools and their compositions: 4 x width channels at half resolution.
  Outside the first stem cell, stride-2 ops use TensorFlow's "SAME" padding, which puts the extra zero
  row/column at the bottom/right: a one-pixel zero pad at the top/left, then the first row and column of the
  result dropped.
* a separable branch (``comb_iter_*``): ReLU, separable conv (``separable_1``: depthwise ``depthwise_conv2d`` +
  pointwise ``pointwise_conv2d``), BN (``bn_sep_1``), ReLU, separable conv (``separable_2``, stride 1), BN
  (``bn_sep_2``); every BN has eps 1e-3.

The features are the ReLU of the last cell, pooled: 1056-d. Torchreid's NASNet drops out (p 0.5) the pooled
feature; here the head's ``dropout`` defaults to 0.5 (applied before the classifier in training).

ImageNet weights: torchvision has none; ``pretrained=True`` loads ``<name>_imagenet.pth`` (``nasnsetmobile``
or ``nasnetmobile``) from the local weights places (see :mod:`torchreid.models.weights`), otherwise warns.
The input height and width must be multiples of 32 (or 1 less, 1 or 2 more), e.g. 256x128; other sizes
raise a ``ValueError``.
"""
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .head import ReIDModel
from .registry import register_model
from .backbones import build_stages_model

__all__ = ['SeparableBranch', 'NASNetNormalCell', 'NASNetReductionCell', 'NASNetReIDModel', 'nasnet_mobile_stages',
           'nasnsetmobile', 'nasnetmobile']

_BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


def _shifted(op: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``op`` with TensorFlow's "SAME" placement of the extra padding (see the module docstring)."""
    return op(F.pad(x, (1, 0, 1, 0)))[:, :, 1:, 1:]


class SeparableConv2d(nn.Module):
    """Depthwise conv (``depthwise_conv2d``) then pointwise 1x1 conv (``pointwise_conv2d``), no biases."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.depthwise_conv2d = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride,
                                          padding=kernel_size // 2, groups=in_channels, bias=False)
        self.pointwise_conv2d = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class SeparableBranch(nn.Module):
    """ReLU, separable conv (``stride``), BN, ReLU, separable conv, BN. ``shift``: "SAME" padding of the first
    separable conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, shift: bool = False):
        super().__init__()
        self.shift = shift
        self.separable_1 = SeparableConv2d(in_channels, out_channels, kernel_size, stride)
        self.bn_sep_1 = _bn(out_channels)
        self.separable_2 = SeparableConv2d(out_channels, out_channels, kernel_size, 1)
        self.bn_sep_2 = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        x = _shifted(self.separable_1, x) if self.shift else self.separable_1(x)
        return self.bn_sep_2(self.separable_2(F.relu(self.bn_sep_1(x))))


class ShiftedPool(nn.Module):
    """A 3x3 stride-2 max or average pool with "SAME" padding (see the module docstring)."""

    def __init__(self, kind: str):
        super().__init__()
        self.pool = (nn.MaxPool2d(3, stride=2, padding=1) if kind == 'max'
                     else nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shifted(self.pool, x)


def _relu_conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([('relu', nn.ReLU()), ('conv', nn.Conv2d(in_channels, out_channels, 1,
                                                                              bias=False)),
                                      ('bn', _bn(out_channels))]))


def _avg3() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class _ShiftedHalf(nn.Module):
    """Factorized reduction's second path: the input shifted by one pixel (up-left), every other position,
    1x1 conv (``conv``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.avgpool = nn.AvgPool2d(1, stride=2, count_include_pad=False)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.avgpool(F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))))


class _Cell(nn.Module):
    """What every cell shares: ``conv_1x1`` on ``x`` and the adapter of ``x_prev`` to ``prev_out`` channels.

    ``prev_mode``: ``'conv'`` (``conv_prev_1x1``), ``'reduce'`` (factorized reduction: ``path_1``, ``path_2``,
    ``final_path_bn``; ``x_prev`` has twice the resolution of ``x``) or ``'none'`` (no ``x_prev``: the cell works
    on ``x`` alone, the first stem cell).
    """

    def __init__(self, prev_mode: str, prev_in: int, prev_out: int, in_channels: int, width: int):
        super().__init__()
        if prev_mode not in ('conv', 'reduce', 'none'):
            raise ValueError(f'NASNet cell: prev_mode must be "conv", "reduce" or "none", got {prev_mode!r}')
        self.prev_mode = prev_mode
        self.conv_1x1 = _relu_conv_bn(in_channels, width)
        if prev_mode == 'conv':
            self.conv_prev_1x1 = _relu_conv_bn(prev_in, prev_out)
        elif prev_mode == 'reduce':
            if prev_out % 2:
                raise ValueError(f'NASNet cell: a factorized reduction needs an even width, got {prev_out}')
            self.path_1 = nn.Sequential(OrderedDict([
                ('avgpool', nn.AvgPool2d(1, stride=2, count_include_pad=False)),
                ('conv', nn.Conv2d(prev_in, prev_out // 2, 1, bias=False))]))
            self.path_2 = _ShiftedHalf(prev_in, prev_out // 2)
            self.final_path_bn = _bn(prev_out)

    def _inputs(self, x: torch.Tensor, x_prev: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(current, previous)`` brought to the cell's widths."""
        current = self.conv_1x1(x)
        if self.prev_mode == 'none':
            return current, x
        if x_prev is None:
            raise ValueError(f'{type(self).__name__}: this cell needs the previous cell\'s output (x_prev)')
        if self.prev_mode == 'conv':
            return current, self.conv_prev_1x1(x_prev)
        x_prev = F.relu(x_prev)
        return current, self.final_path_bn(torch.cat([self.path_1(x_prev), self.path_2(x_prev)], 1))


class NASNetNormalCell(_Cell):
    """NASNet-A normal cell: outputs ``[previous, comb_0 ... comb_4]``, 6 x ``width`` channels, same resolution.

    ``prev_mode`` ``'reduce'`` is the released weights' ``FirstCell`` (after a reduction; each path gives
    ``width / 2`` channels), ``'conv'`` their ``NormalCell``. Both inputs are brought to ``width`` channels.
    """

    def __init__(self, prev_mode: str, prev_in: int, in_channels: int, width: int):
        super().__init__(prev_mode, prev_in, width, in_channels, width)
        self.comb_iter_0_left = SeparableBranch(width, width, 5)
        self.comb_iter_0_right = SeparableBranch(width, width, 3)
        self.comb_iter_1_left = SeparableBranch(width, width, 5)
        self.comb_iter_1_right = SeparableBranch(width, width, 3)
        self.comb_iter_2_left = _avg3()
        self.comb_iter_3_left = _avg3()
        self.comb_iter_3_right = _avg3()
        self.comb_iter_4_left = SeparableBranch(width, width, 3)

    def forward(self, x: torch.Tensor, x_prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        cur, prev = self._inputs(x, x_prev)
        return torch.cat([
            prev,
            self.comb_iter_0_left(cur) + self.comb_iter_0_right(prev),
            self.comb_iter_1_left(prev) + self.comb_iter_1_right(prev),
            self.comb_iter_2_left(cur) + prev,
            self.comb_iter_3_left(prev) + self.comb_iter_3_right(prev),
            self.comb_iter_4_left(cur) + cur,
        ], 1)


class NASNetReductionCell(_Cell):
    """NASNet-A reduction cell: outputs ``[comb_1 ... comb_4]``, 4 x ``width`` channels, half resolution.

    ``prev_mode='none'`` is the released weights' ``CellStem0`` (its right branches start from ``x`` itself,
    ``prev_in`` channels, with plain padding); ``'reduce'`` is ``CellStem1``; ``'conv'`` the
    ``ReductionCell0/1``. All but the first stem cell use "SAME" padding for their stride-2 ops.
    """

    def __init__(self, prev_mode: str, prev_in: int, in_channels: int, width: int):
        super().__init__(prev_mode, prev_in, width, in_channels, width)
        shift = prev_mode != 'none'
        right_in = prev_in if prev_mode == 'none' else width
        if shift:
            max_pool, avg_pool = ShiftedPool('max'), ShiftedPool('avg')
            max_pool_4 = ShiftedPool('max')
        else:
            max_pool = nn.MaxPool2d(3, stride=2, padding=1)
            avg_pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
            max_pool_4 = nn.MaxPool2d(3, stride=2, padding=1)
        self.comb_iter_0_left = SeparableBranch(width, width, 5, 2, shift)
        self.comb_iter_0_right = SeparableBranch(right_in, width, 7, 2, shift)
        self.comb_iter_1_left = max_pool
        self.comb_iter_1_right = SeparableBranch(right_in, width, 7, 2, shift)
        self.comb_iter_2_left = avg_pool
        self.comb_iter_2_right = SeparableBranch(right_in, width, 5, 2, shift)
        self.comb_iter_3_right = _avg3()
        self.comb_iter_4_left = SeparableBranch(width, width, 3, 1, shift)
        self.comb_iter_4_right = max_pool_4

    def forward(self, x: torch.Tensor, x_prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        cur, prev = self._inputs(x, x_prev)
        comb_0 = self.comb_iter_0_left(cur) + self.comb_iter_0_right(prev)
        comb_1 = self.comb_iter_1_left(cur) + self.comb_iter_1_right(prev)
        comb_2 = self.comb_iter_2_left(cur) + self.comb_iter_2_right(prev)
        comb_3 = self.comb_iter_3_right(comb_0) + comb_1
        comb_4 = self.comb_iter_4_left(comb_0) + self.comb_iter_4_right(cur)
        return torch.cat([comb_1, comb_2, comb_3, comb_4], 1)


class NASNetReIDModel(ReIDModel):
    """:class:`ReIDModel` whose stages are NASNet cells: ``conv0``, then every cell fed with the outputs of the
    two stages before it, then ``relu``."""

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        # Five stride-2 stages whose branches must agree in size: only sizes near a multiple of 32 work.
        bad = [int(size) for size in x.shape[-2:] if (int(size) + 1) % 32 > 3]
        if bad:
            raise ValueError(f'NASNet: input height and width must be a multiple of 32 (or 1 less, 1 or 2 more), '
                             f'e.g. 256x128; got {tuple(x.shape[-2:])}')
        cur, prev = self.conv0(x), None
        for stage_name in self._stage_names[1:-1]:
            cur, prev = getattr(self, stage_name)(cur, prev), cur
        return self.relu(cur)


def nasnet_mobile_stages(stem_filters: int = 32, penultimate_filters: int = 1056, cells_per_stage: int = 4
                         ) -> Tuple[List[Tuple[str, nn.Module]], int]:
    """NASNet-A's stages under the released weights' names, and the output channels (``penultimate_filters``).

    The defaults are NASNet-A Mobile (4 @ 1056); ``(96, 4032, 6)`` is NASNet-A Large's layout. Cell names keep
    the released numbering: stage ``s`` starts at ``cell_{6 s}`` (Mobile: ``cell_0``-``cell_3``,
    ``reduction_cell_0``, ``cell_6``-``cell_9``, ``reduction_cell_1``, ``cell_12``-``cell_15``).
    """
    if penultimate_filters % 24:
        raise ValueError(f'penultimate_filters must be a multiple of 24, got {penultimate_filters}')
    if not 1 <= cells_per_stage <= 6:
        raise ValueError(f'cells_per_stage must be in 1..6 (the released numbering), got {cells_per_stage}')
    unit = penultimate_filters // 24
    stages: List[Tuple[str, nn.Module]] = [('conv0', nn.Sequential(OrderedDict([
        ('conv', nn.Conv2d(3, stem_filters, 3, stride=2, bias=False)), ('bn', _bn(stem_filters))])))]
    stages.append(('cell_stem_0', NASNetReductionCell('none', stem_filters, stem_filters, unit // 4)))
    stages.append(('cell_stem_1', NASNetReductionCell('reduce', stem_filters, unit, unit // 2)))
    # (channels of x_prev, channels of x) entering the next cell
    prev_ch, cur_ch = unit, 2 * unit
    for stage in range(3):
        width = unit * 2 ** stage
        if stage > 0:
            stages.append((f'reduction_cell_{stage - 1}', NASNetReductionCell('conv', prev_ch, cur_ch, width)))
            prev_ch, cur_ch = cur_ch, 4 * width
        for c in range(cells_per_stage):
            mode = 'reduce' if c == 0 else 'conv'
            # the released numbering: stage s starts at cell_{6 s} (Mobile: cell_0-3, cell_6-9, cell_12-15)
            stages.append((f'cell_{6 * stage + c}', NASNetNormalCell(mode, prev_ch, cur_ch, width)))
            prev_ch, cur_ch = cur_ch, 6 * width
    stages.append(('relu', nn.ReLU()))
    return stages, cur_ch


def _factory(name: str) -> Callable[..., ReIDModel]:
    def factory(num_classes: int = 1000, loss: str = 'softmax', pretrained: bool = True,
                **kwargs: Any) -> ReIDModel:
        return build_stages_model(name, num_classes, loss, pretrained, kwargs,
                                  lambda extras: nasnet_mobile_stages(),
                                  weights_source="Cadene's nasnetamobile-7e03cead.pth "
                                                 "(http://data.lip6.fr/cadene/pretrainedmodels/)",
                                  head_defaults={'dropout': 0.5},
                                  imagenet_head_prefixes=('last_linear.', 'classifier.'),
                                  model_class=NASNetReIDModel)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = 'NASNet-A Mobile (4 @ 1056) ReID model (1056-d features).'
    return register_model(name, factory)


#: Torchreid's name (sic) and the correctly spelled alias build the same network.
nasnsetmobile = _factory('nasnsetmobile')
nasnetmobile = _factory('nasnetmobile')
