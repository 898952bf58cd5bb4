"""Top-k classification accuracy (Torchreid's ``metrics.accuracy``), used by the engines for training logs."""
from typing import List, Sequence, Tuple, Union

import torch

__all__ = ['accuracy']


def accuracy(output: Union[torch.Tensor, Tuple[torch.Tensor, ...], List[torch.Tensor]], target: torch.Tensor,
             topk: Sequence[int] = (1,)) -> List[torch.Tensor]:
    """Top-k accuracy in percent for each k in ``topk``.

    Args:
        output (torch.Tensor): ``[batch, num_classes]`` scores (a tuple/list: its first element is used).
        target (torch.LongTensor): ``[batch]`` class indices.
        topk (tuple of int): the k values.

    Returns:
        list of torch.Tensor: one scalar tensor per k, in percent.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    if output.dim() != 2 or target.dim() != 1 or output.size(0) != target.size(0):
        raise ValueError(f'accuracy: expected output [B, C] and target [B], got {tuple(output.shape)} and '
                         f'{tuple(target.shape)}')
    maxk = max(topk)
    if maxk > output.size(1):
        raise ValueError(f'accuracy: top-{maxk} requested but there are only {output.size(1)} classes')
    batch_size = target.size(0)
    with torch.no_grad():
        _, pred = output.topk(maxk, 1, True, True)
        correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
        res = []
        for k in topk:
            correct_k = correct[:k].reshape(-1).float().sum(0, keepdim=True)
            res.append(correct_k.mul_(100.0 / max(batch_size, 1)))
    return res
