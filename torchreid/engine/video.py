"""Engines for video (tracklet) data: Torchreid's ``VideoSoftmaxEngine`` and ``VideoTripletEngine``.

A batch of clips ``[B, S, C, H, W]`` trains the image model on its ``B * S`` frames, each frame labelled with
its tracklet's identity. At test time every frame goes through the model and a tracklet's feature is the
mean (``pooling_method='avg'``) or the element-wise maximum (``'max'``) of its frames' features.
"""
from typing import Any, Dict, Tuple, Union

import torch
import torch.nn as nn

from .softmax import ImageSoftmaxEngine
from .triplet import ImageTripletEngine

__all__ = ['VideoSoftmaxEngine', 'VideoTripletEngine', 'POOLING_METHODS', 'flatten_clips', 'pool_frames']

POOLING_METHODS = ('avg', 'max')


def _check_pooling(pooling_method: str) -> str:
    if pooling_method not in POOLING_METHODS:
        raise ValueError(f"pooling_method must be one of {', '.join(POOLING_METHODS)}, got {pooling_method!r}")
    return pooling_method


def flatten_clips(imgs: torch.Tensor, pids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[B, S, C, H, W]`` clips and ``[B]`` pids -> ``[B*S, C, H, W]`` frames and their ``[B*S]`` pids."""
    if imgs.dim() != 5:
        raise ValueError(f'a video batch must be [B, S, C, H, W], got shape {tuple(imgs.shape)}')
    b, s = imgs.shape[:2]
    return imgs.flatten(0, 1), torch.as_tensor(pids).view(b, 1).expand(b, s).reshape(b * s)


def pool_frames(features: torch.Tensor, pooling_method: str = 'avg') -> torch.Tensor:
    """``[B, S, D]`` frame features -> ``[B, D]``: their mean (``'avg'``) or element-wise maximum (``'max'``)."""
    _check_pooling(pooling_method)
    return features.mean(1) if pooling_method == 'avg' else features.max(1)[0]


class _VideoEngineMixin:
    """Frame flattening for training, temporal pooling in the per-batch feature hook."""
    pooling_method = 'avg'

    def parse_data_for_train(self, data: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Clips become frames; each frame keeps its tracklet's pid (Torchreid semantics)."""
        return flatten_clips(data['img'], data['pid'])

    def extract_features(self, input: Any) -> Any:
        """Clips ``[B, S, C, H, W]`` -> one pooled feature per clip ``[B, D]`` (every frame through the model)."""
        if not isinstance(input, torch.Tensor):
            return super().extract_features(input)  # the base class's handling of other call shapes
        if input.dim() != 5:
            raise ValueError(f'{type(self).__name__}: expected clips [B, S, C, H, W], got shape {tuple(input.shape)}')
        b, s = input.shape[:2]
        features = super().extract_features(input.flatten(0, 1))
        return pool_frames(features.reshape(b, s, -1), self.pooling_method)


class VideoSoftmaxEngine(_VideoEngineMixin, ImageSoftmaxEngine):
    """Softmax engine for video data (:class:`~torchreid.engine.ImageSoftmaxEngine` on the clips' frames).

    Args: those of :class:`~torchreid.engine.ImageSoftmaxEngine`, plus
        pooling_method: ``'avg'`` or ``'max'``: how frame features make a tracklet's feature at test time.
    """

    def __init__(self, datamanager: Any, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
                 device: Union[None, str, torch.device] = None, label_smooth: bool = True,
                 pooling_method: str = 'avg', **kwargs: Any):
        self.pooling_method = _check_pooling(pooling_method)
        super().__init__(datamanager, model, optimizer, scheduler=scheduler, device=device,
                         label_smooth=label_smooth, **kwargs)


class VideoTripletEngine(_VideoEngineMixin, ImageTripletEngine):
    """Triplet + softmax engine for video data: frames of a tracklet are positives of each other.

    Args: those of :class:`~torchreid.engine.ImageTripletEngine` (``action_aware`` is not available: it needs
    one action per image), plus ``pooling_method`` (``'avg'`` or ``'max'``).
    """

    def __init__(self, datamanager: Any, model: nn.Module, optimizer: torch.optim.Optimizer, margin: float = 0.3,
                 weight_t: float = 1, weight_x: float = 1, scheduler: Any = None,
                 device: Union[None, str, torch.device] = None, label_smooth: bool = True,
                 pooling_method: str = 'avg', **kwargs: Any):
        if kwargs.get('action_aware'):
            raise ValueError('VideoTripletEngine: action_aware=True is not supported (actions are per image, '
                             'a video batch is flattened to frames)')
        self.pooling_method = _check_pooling(pooling_method)
        super().__init__(datamanager, model, optimizer, margin=margin, weight_t=weight_t, weight_x=weight_x,
                         scheduler=scheduler, device=device, label_smooth=label_smooth, **kwargs)
