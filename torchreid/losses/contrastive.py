"""Supervised contrastive loss / InfoNCE over a batch with identity labels (Khosla et al., "Supervised
Contrastive Learning", NeurIPS 2020; the in-batch InfoNCE of CLIP-ReIdent and of the SoccerNet 2022-2023 top
entries), optionally action-aware and with CLIP's learnable logit scale.

For anchor ``i`` with L2-normalised embedding ``z_i``, candidates ``A(i)`` (every other sample; with
``actions``, every other sample of the same action) and positives ``P(i)`` (candidates of the same identity):

    p_ij = exp(s z_i.z_j) / sum_{a in A(i)} exp(s z_i.z_a),      s = 1 / temperature (or the learnt scale)
    loss_i = - sum_{j in A(i)} q_ij log p_ij,   q_ij = (1 - eps) [j in P(i)] / |P(i)| + eps / |A(i)|

(``eps`` = ``label_smoothing``; with eps = 0 this is SupCon's L_out, and with one positive per anchor exactly
InfoNCE). The loss is the mean of ``loss_i`` over the anchors having at least one positive.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pairs import check_batch, pair_masks

# Finite, not -inf: a row with nothing unmasked must not give NaN gradients through logsumexp.
_MASKED = -1e9

__all__ = ['SupConLoss']


class SupConLoss(nn.Module):
    """In-batch supervised contrastive loss (InfoNCE with identity labels); see the module docstring.

    Args:
        temperature: the softmax temperature (``s = 1 / temperature``), > 0.
        learnable_scale: learn ``s`` as CLIP does (a parameter ``logit_scale = log s`` initialised at
            ``log(1 / temperature)``, ``s`` clipped at ``max_scale``). The parameter must then be given to the
            optimizer (``list(model.parameters()) + list(loss.parameters())``).
        max_scale: upper bound of the learnt scale (CLIP: 100).
        label_smoothing: ``eps`` in [0, 1).
        action_aware: require ``actions`` in ``forward`` (pairs of different actions are then ignored;
            ``actions`` given without this flag are used the same way).

    ``forward(features [N, D], targets [N], actions [N] or None)`` -> scalar. With no anchor having a
    positive the result is a zero that still belongs to the graph.
    """

    def __init__(self, temperature: float = 0.07, learnable_scale: bool = False, max_scale: float = 100.0,
                 label_smoothing: float = 0.0, action_aware: bool = False):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f'SupConLoss: temperature must be > 0, got {temperature!r}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'SupConLoss: label_smoothing must lie in [0, 1), got {label_smoothing!r}')
        if not max_scale > 0:
            raise ValueError(f'SupConLoss: max_scale must be > 0, got {max_scale!r}')
        self.temperature = float(temperature)
        self.max_scale = float(max_scale)
        self.label_smoothing = float(label_smoothing)
        self.action_aware = bool(action_aware)
        if learnable_scale:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        else:
            self.logit_scale = None

    def scale(self) -> torch.Tensor:
        """The current ``s`` (a tensor; learnt or ``1 / temperature``)."""
        if self.logit_scale is None:
            return torch.tensor(1.0 / self.temperature)
        return self.logit_scale.exp().clamp(max=self.max_scale)

    def forward(self, features: torch.Tensor, targets: torch.Tensor,
                actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_batch('SupConLoss', features, targets, actions, self.action_aware)
        z = F.normalize(features.float(), dim=1)
        logits = self.scale().to(z.device) * (z @ z.t())
        pos, neg = pair_masks(targets, actions, device=z.device)
        candidates = pos | neg
        log_denominator = torch.logsumexp(logits.masked_fill(~candidates, _MASKED), dim=1, keepdim=True)
        log_prob = torch.where(candidates, logits - log_denominator, torch.zeros_like(logits))
        n_pos = pos.sum(dim=1)
        target = pos.float() / n_pos.clamp(min=1).unsqueeze(1)
        if self.label_smoothing:
            uniform = candidates.float() / candidates.sum(dim=1).clamp(min=1).unsqueeze(1)
            target = (1.0 - self.label_smoothing) * target + self.label_smoothing * uniform
        per_anchor = -(target * log_prob).sum(dim=1)
        valid = n_pos > 0
        return (per_anchor * valid).sum() / valid.sum().clamp(min=1)

    def extra_repr(self) -> str:
        scale = 'learnable' if self.logit_scale is not None else 'fixed'
        return (f'temperature={self.temperature}, scale={scale}, label_smoothing={self.label_smoothing}, '
                f'action_aware={self.action_aware}')
