"""Losses: cross entropy with label smoothing, batch-hard triplet (optionally action-aware)."""
from typing import Any, Callable, Sequence, Union

import torch

from .cross_entropy import CrossEntropyLoss
from .triplet import TripletLoss

__all__ = ['CrossEntropyLoss', 'TripletLoss', 'DeepSupervision']


def DeepSupervision(criterion: Callable[..., torch.Tensor], xs: Union[torch.Tensor, Sequence[torch.Tensor]],
                    y: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """Average ``criterion(x, y, *args, **kwargs)`` over the outputs ``xs`` (a tuple or list).

    Used when a model returns several heads (Torchreid's helper). A single tensor is treated as a
    one-element list; extra arguments (e.g. ``actions=`` for an action-aware triplet) are forwarded.
    """
    if not isinstance(xs, (tuple, list)):
        xs = [xs]
    if len(xs) == 0:
        raise ValueError('DeepSupervision: xs is empty; expected at least one output to supervise')
    loss = 0.0
    for x in xs:
        loss = loss + criterion(x, y, *args, **kwargs)
    return loss / len(xs)
