"""Which pairs of a batch are positives and negatives, optionally inside one action only.

SoccerNet-v3 identity labels (``person_uid``) only hold inside one action: the same footballer gets another
uid in every action. With ``actions`` given, a pair of samples from two different actions is therefore
neither a positive nor a negative. Every pair-based loss of this package takes its masks from here.
"""
from typing import Optional, Tuple

import torch

__all__ = ['pair_masks', 'check_batch']


def check_batch(loss_name: str, features: torch.Tensor, targets: torch.Tensor,
                actions: Optional[torch.Tensor], action_aware: bool = False) -> None:
    """Raise ``ValueError`` naming ``loss_name`` unless ``features`` is ``[N, D]`` and ``targets`` /
    ``actions`` are ``[N]``; with ``action_aware`` the actions are required."""
    if features.dim() != 2:
        raise ValueError(f'{loss_name}: features must be [N, D], got shape {tuple(features.shape)}')
    n = features.size(0)
    if targets.dim() != 1 or targets.size(0) != n:
        raise ValueError(f'{loss_name}: targets must have shape [{n}], got {tuple(targets.shape)}')
    if action_aware and actions is None:
        raise ValueError(f'{loss_name}(action_aware=True) needs actions: call loss(features, targets, actions=...) '
                         f'with the action index (camid) of every sample')
    if actions is not None and (actions.dim() != 1 or actions.size(0) != n):
        raise ValueError(f'{loss_name}: actions must have shape [{n}], got {tuple(actions.shape)}')


def pair_masks(targets: torch.Tensor, actions: Optional[torch.Tensor] = None,
               device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(positive, negative)`` boolean ``[N, N]`` masks.

    positive[i, j]: same identity, ``i != j``, and (with ``actions``) same action;
    negative[i, j]: other identity and (with ``actions``) same action.
    """
    targets = targets.to(device) if device is not None else targets
    n = targets.size(0)
    same_id = targets.unsqueeze(0) == targets.unsqueeze(1)
    not_self = ~torch.eye(n, dtype=torch.bool, device=targets.device)
    pos, neg = same_id & not_self, ~same_id
    if actions is not None:
        actions = actions.to(targets.device)
        same_action = actions.unsqueeze(0) == actions.unsqueeze(1)
        pos, neg = pos & same_action, neg & same_action
    return pos, neg
