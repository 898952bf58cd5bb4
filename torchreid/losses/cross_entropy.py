"""Cross entropy with label smoothing (Szegedy et al., "Rethinking the Inception Architecture", 2016)."""
import logging
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = ['CrossEntropyLoss']


class CrossEntropyLoss(nn.Module):
    """Softmax cross entropy whose targets are ``(1 - eps) * onehot + eps / num_classes``.

    Args:
        num_classes (int): number of classes (width of the logits).
        eps (float): smoothing weight in [0, 1]. Ignored when ``label_smooth`` is False.
        label_smooth (bool): smooth the targets (True) or use plain one-hot targets (False).
        use_gpu: deprecated and ignored (kept so Torchreid calls still work); the loss follows the
            device of its inputs.

    ``forward(inputs, targets)``: ``inputs`` are logits ``[B, num_classes]``, ``targets`` class indices
    ``[B]``. Returns the batch mean of the per-sample loss.
    """

    def __init__(self, num_classes: int, eps: float = 0.1, label_smooth: bool = True,
                 use_gpu: Optional[bool] = None):
        super().__init__()
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f'CrossEntropyLoss: num_classes must be a positive int, got {num_classes!r}')
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f'CrossEntropyLoss: eps must lie in [0, 1], got {eps!r}')
        if use_gpu is not None:
            logger.debug('CrossEntropyLoss: use_gpu is deprecated and ignored (the inputs decide the device)')
        self.num_classes = int(num_classes)
        self.eps = float(eps) if label_smooth else 0.0
        self.label_smooth = bool(label_smooth)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if inputs.dim() != 2 or inputs.size(1) != self.num_classes:
            raise ValueError(
                f'CrossEntropyLoss: inputs must be logits of shape [B, {self.num_classes}], '
                f'got {tuple(inputs.shape)}'
            )
        if targets.dim() != 1 or targets.size(0) != inputs.size(0):
            raise ValueError(
                f'CrossEntropyLoss: targets must have shape [{inputs.size(0)}], got {tuple(targets.shape)}'
            )
        if targets.numel() > 0:
            lo, hi = torch.stack([targets.min(), targets.max()]).tolist()  # one device sync
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(
                    f'CrossEntropyLoss: targets must lie in [0, {self.num_classes - 1}], got values in [{lo}, {hi}]'
                )
        # Computed in float32 so that mixed-precision logits do not lose the small smoothing terms.
        log_probs = F.log_softmax(inputs.float(), dim=1)
        onehot = torch.zeros_like(log_probs).scatter_(1, targets.long().unsqueeze(1), 1.0)
        smoothed = (1.0 - self.eps) * onehot + self.eps / self.num_classes
        return (-smoothed * log_probs).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, eps={self.eps}, label_smooth={self.label_smooth}'
