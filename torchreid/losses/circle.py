"""Circle loss, pair-wise form (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
Optimization", CVPR 2020), over cosine similarities in a batch, optionally action-aware.

For anchor ``i`` with positive similarities ``s_p`` and negative ones ``s_n``:

    loss_i = softplus( logsumexp_n( gamma * a_n * (s_n - m) ) + logsumexp_p( -gamma * a_p * (s_p - 1 + m) ) )

with the self-paced weights ``a_p = relu(1 + m - s_p)`` and ``a_n = relu(s_n + m)`` (no gradient through
them). The loss is the mean over the anchors having a positive and a negative.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pairs import check_batch, pair_masks

# Finite, not -inf: a row with nothing unmasked must not give NaN gradients through logsumexp.
_MASKED = -1e9

__all__ = ['CircleLoss']


class CircleLoss(nn.Module):
    """See the module docstring. ``forward(features [N, D], targets [N], actions [N] or None)`` -> scalar.

    Args:
        margin: the relaxation ``m`` (> 0, < 1).
        gamma: the scale (> 0).
        action_aware: require ``actions`` in ``forward``.
    """

    def __init__(self, margin: float = 0.25, gamma: float = 128.0, action_aware: bool = False):
        super().__init__()
        if not 0.0 < margin < 1.0:
            raise ValueError(f'CircleLoss: margin must lie in (0, 1), got {margin!r}')
        if not gamma > 0:
            raise ValueError(f'CircleLoss: gamma must be > 0, got {gamma!r}')
        self.margin = float(margin)
        self.gamma = float(gamma)
        self.action_aware = bool(action_aware)

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_batch('CircleLoss', features, targets, actions, self.action_aware)
        z = F.normalize(features.float(), dim=1)
        sim = z @ z.t()
        pos, neg = pair_masks(targets, actions, device=z.device)
        m = self.margin
        alpha_p = F.relu(1.0 + m - sim.detach())
        alpha_n = F.relu(sim.detach() + m)
        logit_p = (-self.gamma * alpha_p * (sim - (1.0 - m))).masked_fill(~pos, _MASKED)
        logit_n = (self.gamma * alpha_n * (sim - m)).masked_fill(~neg, _MASKED)
        valid = pos.any(dim=1) & neg.any(dim=1)
        inner = torch.logsumexp(logit_n, dim=1) + torch.logsumexp(logit_p, dim=1)
        # rows without a positive or a negative are zeroed before the mean (no data-dependent branch)
        per_anchor = torch.where(valid, F.softplus(inner.masked_fill(~valid, 0.0)), torch.zeros_like(inner))
        return per_anchor.sum() / valid.sum().clamp(min=1)

    def extra_repr(self) -> str:
        return f'margin={self.margin}, gamma={self.gamma}, action_aware={self.action_aware}'
