"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss", 2017), optionally action-aware.

SoccerNet-v3 identity labels (``person_uid``) are only meaningful inside one action: the same footballer
gets a different uid in every action. In action-aware mode a pair of samples from two different actions
is therefore neither a positive nor a negative; it is ignored.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pairs import pair_masks

__all__ = ['TripletLoss', 'pairwise_euclidean']


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[N, N]`` between the rows of ``x``; ``sqrt`` of the squared distance clamped
    at 1e-12 so the gradient stays finite for identical rows."""
    sq = x.pow(2).sum(dim=1, keepdim=True)
    dist = sq + sq.t() - 2.0 * (x @ x.t())
    return dist.clamp(min=1e-12).sqrt()


class TripletLoss(nn.Module):
    """Batch-hard triplet loss with margin (margin ranking loss on Euclidean distances).

    For each anchor the hardest positive (farthest sample with the same label, the anchor itself
    excluded) and the hardest negative (closest sample with another label) are mined inside the batch;
    the loss is ``mean(relu(d_ap - d_an + margin))`` over the anchors that have at least one positive and
    one negative. With no such anchor the loss is a zero that still belongs to the graph, so
    ``backward()`` works.

    Args:
        margin (float): margin of the ranking loss.
        action_aware (bool): mine positives and negatives only among samples of the anchor's action;
            ``forward`` then requires ``actions``.

    ``forward(inputs, targets, actions=None)``: ``inputs`` features ``[N, D]``, ``targets`` identity labels
    ``[N]``, ``actions`` action indices ``[N]`` (SoccerNet ``camid``).
    """

    def __init__(self, margin: float = 0.3, action_aware: bool = False):
        super().__init__()
        if margin < 0:
            raise ValueError(f'TripletLoss: margin must be >= 0, got {margin!r}')
        self.margin = float(margin)
        self.action_aware = bool(action_aware)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor,
                actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        if inputs.dim() != 2:
            raise ValueError(f'TripletLoss: inputs must be features [N, D], got shape {tuple(inputs.shape)}')
        n = inputs.size(0)
        if targets.dim() != 1 or targets.size(0) != n:
            raise ValueError(f'TripletLoss: targets must have shape [{n}], got {tuple(targets.shape)}')
        if self.action_aware and actions is None:
            raise ValueError(
                'TripletLoss(action_aware=True) needs actions: call loss(features, targets, actions=...) with '
                'the action index (camid) of every sample'
            )
        if actions is not None and (actions.dim() != 1 or actions.size(0) != n):
            raise ValueError(f'TripletLoss: actions must have shape [{n}], got {tuple(actions.shape)}')

        # float32 distances: fp16 would make the expanded-square formula lose the small distances.
        dist = pairwise_euclidean(inputs.float())
        pos_mask, neg_mask = pair_masks(targets, actions if self.action_aware else None, device=dist.device)

        valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
        dist_ap = dist.masked_fill(~pos_mask, float('-inf')).max(dim=1).values
        dist_an = dist.masked_fill(~neg_mask, float('inf')).min(dim=1).values
        # Rows without a positive (-inf) or a negative (+inf) give relu(-inf) = 0 and are left out of the
        # mean by the mask; no branch on the data, so no host-device synchronisation. With no valid anchor
        # the result is a 0 that is still attached to the graph.
        per_anchor = F.relu(dist_ap - dist_an + self.margin) * valid
        return per_anchor.sum() / valid.sum().clamp(min=1)

    def extra_repr(self) -> str:
        return f'margin={self.margin}, action_aware={self.action_aware}'
