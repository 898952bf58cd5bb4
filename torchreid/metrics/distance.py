"""Pairwise distances between two feature sets (Torchreid's ``compute_distance_matrix``).

``'euclidean'`` is the SQUARED Euclidean distance ``|a|^2 + |b|^2 - 2 a.b`` (as in Torchreid), ``'cosine'`` is
``1 - cos(a, b)``. The result is computed block by block over the rows of ``input1`` so the temporaries stay
bounded by ``block_rows x len(input2)`` whatever the number of queries.
"""
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from .ranking import DIST_METRICS

__all__ = ['compute_distance_matrix', 'euclidean_squared_distance', 'cosine_distance', 'DIST_METRICS']

#: Features as the distance functions take them.
ArrayLike = Union[torch.Tensor, np.ndarray]

# Rows of input1 per block: bounds the temporaries to ~16M elements whatever the gallery size.
_BLOCK_ELEMENTS = 1 << 24


def _as_tensor(x, name):
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} must be a torch.Tensor or a numpy array, got {type(x).__name__}')
    if x.dim() != 2:
        raise ValueError(f'{name} must be 2-D [num_samples, feature_dim], got shape {tuple(x.shape)}')
    if not torch.is_floating_point(x):
        x = x.float()
    return x


def _check_pair(input1, input2):
    a = _as_tensor(input1, 'input1')
    b = _as_tensor(input2, 'input2')
    if a.size(1) != b.size(1):
        raise ValueError(f'feature dimensions differ: input1 has {a.size(1)}, input2 has {b.size(1)}')
    if a.dtype != b.dtype:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    if a.device != b.device:
        raise ValueError(f'input1 is on {a.device} but input2 is on {b.device}')
    return a, b


def _block_rows(n_cols):
    return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def euclidean_squared_distance(input1: ArrayLike, input2: ArrayLike) -> torch.Tensor:
    """Squared Euclidean distance matrix ``[m, n]`` between the rows of ``input1`` and ``input2``."""
    a, b = _check_pair(input1, input2)
    m, n = a.size(0), b.size(0)
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    if m == 0 or n == 0:
        return out
    b_sq = b.pow(2).sum(dim=1)
    step = _block_rows(n)
    for i in range(0, m, step):
        blk = a[i:i + step]
        # |a|^2 + |b|^2 first, then addmm adds -2 a.b in place: one temporary of the block's size.
        torch.add(blk.pow(2).sum(dim=1, keepdim=True), b_sq.unsqueeze(0), out=out[i:i + step])
        out[i:i + step].addmm_(blk, b.t(), beta=1, alpha=-2)
    return out


def cosine_distance(input1: ArrayLike, input2: ArrayLike) -> torch.Tensor:
    """``1 - cosine similarity`` matrix ``[m, n]`` (inputs are L2-normalised first, as in Torchreid)."""
    a, b = _check_pair(input1, input2)
    a = F.normalize(a, p=2, dim=1)
    b = F.normalize(b, p=2, dim=1)
    m, n = a.size(0), b.size(0)
    out = torch.empty((m, n), dtype=a.dtype, device=a.device)
    step = _block_rows(n)
    for i in range(0, m, step):
        torch.mm(a[i:i + step], b.t(), out=out[i:i + step])
    return out.neg_().add_(1)


def compute_distance_matrix(input1: ArrayLike, input2: ArrayLike, metric: str = 'euclidean',
                            normalize: bool = False) -> torch.Tensor:
    """Distance matrix between two sets of features.

    Args:
        input1 (torch.Tensor | np.ndarray): ``[m, d]`` features.
        input2 (torch.Tensor | np.ndarray): ``[n, d]`` features.
        metric (str): ``'euclidean'`` (squared, as Torchreid) or ``'cosine'``.
        normalize (bool): L2-normalise the features first.

    Returns:
        torch.Tensor: ``[m, n]`` distances (on the inputs' device).
    """
    if metric not in DIST_METRICS:
        raise ValueError(f'Unknown distance metric {metric!r}; expected one of {DIST_METRICS}')
    a, b = _check_pair(input1, input2)
    if normalize:
        a = F.normalize(a, p=2, dim=1)
        b = F.normalize(b, p=2, dim=1)
    if metric == 'euclidean':
        return euclidean_squared_distance(a, b)
    return cosine_distance(a, b)
