"""Margin softmax classifiers: CosFace (Wang et al., "CosFace: Large Margin Cosine Loss", CVPR 2018) and
ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss", CVPR 2019), as in FastReID's heads.

Each is a bias-free linear layer on L2-normalised features and L2-normalised class weights, whose logits are
``scale * cos(theta_j)``; in training the target class gets a margin: ``scale * (cos(theta_y) - m)`` (CosFace)
or ``scale * cos(theta_y + m)`` (ArcFace). The cross entropy on these logits is the loss.

Two ways to use them:

* ``logits = head(features, targets)``: the margin is applied when targets are given;
* as a model's classifier (``model.classifier = CosFace(model.feature_dim, num_classes)``): the model's
  train forward then returns ``scale * cos`` logits, and ``head.apply_margin(logits, targets)`` adds the
  margin afterwards, so the engine needs no access to the features the classifier saw.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['CosFace', 'ArcFace']


class _CosineClassifier(nn.Module):
    def __init__(self, in_features: int, num_classes: int, scale: float, margin: float):
        super().__init__()
        name = type(self).__name__
        if int(in_features) != in_features or in_features < 1 or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f'{name}: in_features and num_classes must be positive ints, got '
                             f'{in_features!r}, {num_classes!r}')
        if not scale > 0:
            raise ValueError(f'{name}: scale must be > 0, got {scale!r}')
        if not 0 <= margin < 1:
            raise ValueError(f'{name}: margin must lie in [0, 1), got {margin!r}')
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        self.scale, self.margin = float(scale), float(margin)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.in_features))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """``cos(theta)`` ``[B, num_classes]`` between the features and the class weights."""
        return F.linear(F.normalize(features.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def forward(self, features: torch.Tensor, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        logits = self.scale * self.cosine(features)
        return logits if targets is None else self.apply_margin(logits, targets)

    def _check_targets(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if logits.dim() != 2 or logits.size(1) != self.num_classes:
            raise ValueError(f'{type(self).__name__}: logits must be [B, {self.num_classes}], got '
                             f'{tuple(logits.shape)}')
        if targets.dim() != 1 or targets.size(0) != logits.size(0):
            raise ValueError(f'{type(self).__name__}: targets must have shape [{logits.size(0)}], got '
                             f'{tuple(targets.shape)}')

    def _target_mask(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self._check_targets(logits, targets)
        return F.one_hot(targets.long().to(logits.device), self.num_classes).bool()

    def extra_repr(self) -> str:
        return (f'in_features={self.in_features}, num_classes={self.num_classes}, scale={self.scale}, '
                f'margin={self.margin}')


class CosFace(_CosineClassifier):
    """Large-margin cosine classifier: target logit ``scale * (cos(theta_y) - margin)``.

    ``apply_margin(logits, targets)`` takes this module's own ``scale * cos`` logits.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 64.0, margin: float = 0.35):
        super().__init__(in_features, num_classes, scale, margin)

    def apply_margin(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits - self._target_mask(logits, targets) * (self.scale * self.margin)


class ArcFace(_CosineClassifier):
    """Additive angular margin classifier: target logit ``scale * cos(theta_y + margin)``.

    Where ``theta_y + margin`` would pass pi (the cosine would rise again), the target logit is
    ``scale * (cos(theta_y) - margin * sin(margin))`` instead (InsightFace's rule, keeping it decreasing in
    theta). ``apply_margin(logits, targets)`` takes this module's own ``scale * cos`` logits.
    """

    def __init__(self, in_features: int, num_classes: int, scale: float = 64.0, margin: float = 0.5):
        super().__init__(in_features, num_classes, scale, margin)

    def apply_margin(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        mask = self._target_mask(logits, targets)
        m = self.margin
        cos = (logits.float() / self.scale).clamp(-1.0, 1.0)
        sin = (1.0 - cos.pow(2)).clamp(min=1e-12).sqrt()
        cos_plus_m = cos * math.cos(m) - sin * math.sin(m)
        target_cos = torch.where(cos > math.cos(math.pi - m), cos_plus_m, cos - m * math.sin(m))
        return torch.where(mask, target_cos, cos) * self.scale
