"""Centroid losses of Comandur ("Sports Re-ID: Improving Re-Identification of players in broadcast videos of
team sports", 2022), optionally action-aware.

For anchor ``i`` two centroids are computed in the batch: ``c+`` the mean embedding of its identity (itself
included) and ``c-`` the mean embedding of all samples of other identities (with ``actions``: of the same
action only, since identities only hold inside one action). Two forms, as in the paper's code:

* ``'centroid'`` (the paper's "simple centroid loss based on euclidean distances", which it found better than
  the triplet-centroid one with little data): ``loss_i = -||c+ - c-||``, pushing the two centroids apart.
  It is unbounded below: it is meant as a weighted term beside a triplet and an ID loss (the authors' recipe
  weights it 0.5, with triplet 0.9 and cross entropy 0.5).
* ``'triplet_centroid'``: ``loss_i = relu(||x_i - c+|| - ||x_i - c-|| + margin)``.

The loss is the mean over the anchors having at least one negative.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pairs import check_batch, pair_masks

__all__ = ['CentroidLoss', 'CENTROID_MODES']

CENTROID_MODES = ('centroid', 'triplet_centroid')


def _euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # clamped before the sqrt so that the gradient stays finite for equal vectors
    return (a - b).pow(2).sum(dim=1).clamp(min=1e-12).sqrt()


class CentroidLoss(nn.Module):
    """See the module docstring. ``forward(features [N, D], targets [N], actions [N] or None)`` -> scalar.

    Args:
        mode: ``'centroid'`` or ``'triplet_centroid'``.
        margin: margin of ``'triplet_centroid'`` (>= 0).
        action_aware: require ``actions`` in ``forward``.
    """

    def __init__(self, mode: str = 'centroid', margin: float = 0.3, action_aware: bool = False):
        super().__init__()
        if mode not in CENTROID_MODES:
            raise ValueError(f'CentroidLoss: mode must be one of {CENTROID_MODES}, got {mode!r}')
        if margin < 0:
            raise ValueError(f'CentroidLoss: margin must be >= 0, got {margin!r}')
        self.mode = mode
        self.margin = float(margin)
        self.action_aware = bool(action_aware)

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_batch('CentroidLoss', features, targets, actions, self.action_aware)
        x = features.float()
        pos, neg = pair_masks(targets, actions, device=x.device)
        own = pos | torch.eye(x.size(0), dtype=torch.bool, device=x.device)
        c_pos = (own.float() @ x) / own.sum(dim=1, keepdim=True)
        c_neg = (neg.float() @ x) / neg.sum(dim=1, keepdim=True).clamp(min=1)
        if self.mode == 'centroid':
            per_anchor = -_euclidean(c_pos, c_neg)
        else:
            per_anchor = F.relu(_euclidean(x, c_pos) - _euclidean(x, c_neg) + self.margin)
        valid = neg.any(dim=1)
        return (per_anchor * valid).sum() / valid.sum().clamp(min=1)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, margin={self.margin}, action_aware={self.action_aware}'
