"""Losses: cross entropy with label smoothing, batch-hard triplet, supervised contrastive (InfoNCE), centroid
and circle losses (all optionally action-aware), and the CosFace / ArcFace margin classifiers.

Every one can be built by name, ``build_loss('supcon', temperature=0.1)``, so configs can select them.
"""
import difflib
from typing import Any, Callable, Dict, List, Sequence, Union

import torch
import torch.nn as nn

from .centroid import CENTROID_MODES, CentroidLoss
from .circle import CircleLoss
from .contrastive import SupConLoss
from .cross_entropy import CrossEntropyLoss
from .margin import ArcFace, CosFace
from .pairs import pair_masks
from .triplet import TripletLoss

__all__ = ['CrossEntropyLoss', 'TripletLoss', 'SupConLoss', 'CentroidLoss', 'CircleLoss', 'CosFace', 'ArcFace',
           'DeepSupervision', 'build_loss', 'register_loss', 'list_losses', 'pair_masks', 'CENTROID_MODES']

_LOSSES: Dict[str, Callable[..., nn.Module]] = {
    'cross_entropy': CrossEntropyLoss,   # num_classes, eps=0.1, label_smooth=True
    'triplet': TripletLoss,              # margin=0.3, action_aware=False
    'supcon': SupConLoss,                # temperature=0.07, learnable_scale=False, max_scale=100, label_smoothing=0,
    'infonce': SupConLoss,               #   action_aware=False (InfoNCE: the same loss, one positive per anchor)
    'centroid': CentroidLoss,            # mode='centroid' | 'triplet_centroid', margin=0.3, action_aware=False
    'circle': CircleLoss,                # margin=0.25, gamma=128, action_aware=False
    'cosface': CosFace,                  # in_features, num_classes, scale=64, margin=0.35
    'arcface': ArcFace,                  # in_features, num_classes, scale=64, margin=0.5
}


def list_losses() -> List[str]:
    """Sorted names :func:`build_loss` knows."""
    return sorted(_LOSSES)


def register_loss(name: str, factory: Callable[..., nn.Module], *, override: bool = False) -> Callable[..., nn.Module]:
    """Make ``build_loss(name, **kwargs)`` call ``factory(**kwargs)``. A name is registered once unless
    ``override=True``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f'register_loss: name must be a non-empty str, got {name!r}')
    if not callable(factory):
        raise TypeError(f'register_loss({name!r}): the factory must be callable')
    if name in _LOSSES and not override and _LOSSES[name] is not factory:
        raise KeyError(f'register_loss: a loss named {name!r} is already registered; pass override=True')
    _LOSSES[name] = factory
    return factory


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """The loss (or margin classifier) registered as ``name``, built with ``kwargs``.

    An unknown name raises ``ValueError`` listing the known ones; an unknown keyword a ``TypeError`` naming
    the loss.
    """
    if name not in _LOSSES:
        close = difflib.get_close_matches(str(name), list(_LOSSES), n=2)
        hint = f' Did you mean {close}?' if close else ''
        raise ValueError(f'build_loss: unknown loss {name!r}.{hint} Known: {list_losses()}')
    try:
        return _LOSSES[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f'build_loss({name!r}): {exc}') from None


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
